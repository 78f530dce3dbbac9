package main

import (
	"encoding/pem"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrometheusClientFlags: the transport the flags build sends what a
// real authenticated Prometheus wants (a bearer token read at every
// request, so a rotated one is used; basic auth; a CA it trusts), from the
// flags or from a file in Prometheus' own format.
func TestPrometheusClientFlags(t *testing.T) {
	var gotAuth string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		if user, pass, ok := r.BasicAuth(); ok {
			gotAuth = "basic " + user + ":" + pass
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := write("ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	token := write("token", "first\n")
	password := write("password", "s3cret")
	httpConfig := write("http.yaml", "basic_auth:\n  username: ci\n  password_file: password\ntls_config:\n  ca_file: ca.crt\n")

	get := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		var f prometheusClientFlags
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f.AddFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		rt, err := f.roundTripper()
		if err != nil {
			t.Fatal(err)
		}
		gotAuth = ""
		resp, err := (&http.Client{Transport: rt}).Get(srv.URL)
		if err != nil {
			return "", err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return gotAuth, nil
	}

	t.Run("bearer token file, re-read when it rotates", func(t *testing.T) {
		var f prometheusClientFlags
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f.AddFlags(fs)
		if err := fs.Parse([]string{"--prometheus-bearer-token-path", token, "--prometheus-ca-file", ca}); err != nil {
			t.Fatal(err)
		}
		rt, err := f.roundTripper()
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: rt}
		for _, want := range []string{"first", "second"} {
			write("token", want+"\n")
			resp, err := client.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if gotAuth != "Bearer "+want {
				t.Errorf("Authorization %q, want %q", gotAuth, "Bearer "+want)
			}
		}
	})
	t.Run("basic auth flags", func(t *testing.T) {
		got, err := get(t, "--prometheus-username", "ci", "--prometheus-password-path", password, "--prometheus-ca-file", ca)
		if err != nil || got != "basic ci:s3cret" {
			t.Errorf("got %q, %v; want basic ci:s3cret", got, err)
		}
	})
	t.Run("http config file, paths relative to it", func(t *testing.T) {
		got, err := get(t, "--prometheus-http-config", httpConfig)
		if err != nil || got != "basic ci:s3cret" {
			t.Errorf("got %q, %v; want basic ci:s3cret", got, err)
		}
	})
	t.Run("no CA: the server is not trusted", func(t *testing.T) {
		_, err := get(t, "--prometheus-bearer-token-path", token)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("err = %v, want a certificate error", err)
		}
	})
}

func TestPrometheusClientFlagErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("bearer_token_file: a\nbasic_auth: {username: u, password: p}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--prometheus-http-config", bad, "--prometheus-ca-file", "ca"}, "exclusive"},
		{[]string{"--prometheus-username", "u"}, "--prometheus-username and --prometheus-password-path go together"},
		{[]string{"--prometheus-username", "u", "--prometheus-password-path", "p", "--prometheus-bearer-token-path", "t"}, "exclusive"},
		{[]string{"--prometheus-cert-file", "c"}, "go together"},
		{[]string{"--prometheus-http-config", bad}, "--prometheus-http-config " + bad},
		{[]string{"--prometheus-http-config", filepath.Join(dir, "absent.yaml")}, "absent.yaml"},
	} {
		var f prometheusClientFlags
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f.AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := f.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}
