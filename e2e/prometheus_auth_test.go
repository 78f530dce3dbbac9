package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/certs"
)

// TestPrometheusAuthenticated runs the dispatcher against a real Prometheus
// behind TLS and basic auth (its own --web.config.file), directly and
// through a proxy that wants a bearer token, as OpenShift CI's
// thanos-querier does. Demand and health queries go through both; a wrong
// CA or a missing token shows in /readyz as a demandError and a
// healthError that name the cause.
func TestPrometheusAuthenticated(t *testing.T) {
	s := require(t)
	bin := s.requireBinary(t)
	ctx := testContext(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	bundle, err := certs.Generate([]string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := certs.Generate([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caFile := write("prometheus-ca.crt", bundle.CA)
	otherCA := write("other-ca.crt", other.CA)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := write("web.yml", []byte(fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  ci: %q\n",
		write("tls.crt", bundle.Cert), write("tls.key", bundle.Key), hash)))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle.CA)
	promTransport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	authed := &http.Client{Transport: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.SetBasicAuth("ci", "s3cret")
		return promTransport.RoundTrip(r)
	})}

	promDir := filepath.Join(s.workDir, "prometheus-auth")
	if err := framework.CopyDir(s.blocks, promDir); err != nil {
		t.Fatal(err)
	}
	prom, err := framework.StartSecurePrometheus(ctx, s.assets.Prometheus, promDir, s.workDir, webConfig, authed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prom.Kill)
	if resp, err := promTransport.RoundTrip(mustRequest(t, prom.URL+"/api/v1/query?query=up")); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Prometheus without credentials answered %v, %v; want 401", resp, err)
	}

	// The bearer token proxy: a token in, basic auth out.
	const token = "sa-token-1"
	target, _ := url.Parse(prom.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = promTransport
	proxy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization")
		r.SetBasicAuth("ci", "s3cret")
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	proxyCA := write("proxy-ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}))
	tokenFile := write("token", []byte(token+"\n"))
	emptyToken := write("empty-token", nil)
	httpConfig := write("http.yml", []byte(fmt.Sprintf("basic_auth:\n  username: ci\n  password_file: %s\ntls_config:\n  ca_file: %s\n",
		write("password", []byte("s3cret")), caFile)))

	// Weighted demand as the previous dispatcher weighs it, on the real
	// history: each run counted as one job hour and one GiB-hour, so a job's
	// demand is runs·1 + runs·1 (hours) + runs·0.25 (GiB-hours) = 2.25·runs.
	const runs = `sum by (job_name) (increase(prowjob_state_transitions{state="pending"}[{{.Window}}]))`
	weighted := []string{"--prometheus-job-duration-query", runs + " * 3600", "--prometheus-job-memory-query", runs + " * 3600 * 1073741824"}
	for _, tc := range []struct {
		name, url    string
		args         []string
		wantErr      string  // in demandError and healthError; "" for none
		demandFactor float64 // weighted demand over runs; 0 means 1
	}{
		{name: "basic auth and TLS from an http config", url: prom.URL, args: []string{"--prometheus-http-config", httpConfig}},
		{name: "bearer token through the proxy", url: proxy.URL, args: []string{"--prometheus-bearer-token-path", tokenFile, "--prometheus-ca-file", proxyCA}},
		{name: "weighted demand through the proxy", url: proxy.URL, demandFactor: 2.25,
			args: append([]string{"--prometheus-bearer-token-path", tokenFile, "--prometheus-ca-file", proxyCA}, weighted...)},
		{name: "missing token", url: proxy.URL, args: []string{"--prometheus-bearer-token-path", emptyToken, "--prometheus-ca-file", proxyCA}, wantErr: "unauthenticated (HTTP 401 Unauthorized)"},
		{name: "wrong CA", url: prom.URL, args: []string{"--prometheus-username", "ci", "--prometheus-password-path", filepath.Join(dir, "password"), "--prometheus-ca-file", otherCA}, wantErr: "serving certificate is not trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			ddir := filepath.Join(s.workDir, "prom-auth-"+name)
			if err := framework.CopyDir("testdata", filepath.Join(ddir, "config")); err != nil {
				t.Fatal(err)
			}
			d, err := framework.StartServe(ctx, framework.ServeConfig{
				Bin: bin, Dir: ddir, Name: "dispatcher-prom-auth-" + name,
				DispatcherConfig: filepath.Join(ddir, "config", "dispatcher.yaml"),
				ClusterConfig:    filepath.Join(ddir, "config", "clusters.yaml"),
				JobConfig:        filepath.Join(ddir, "config", "jobs"),
				PrometheusURL:    tc.url,
				ExtraArgs:        append([]string{"--health-interval=1s", "--demand-window=336h"}, tc.args...),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(d.Kill)
			if _, err := d.API.Dispatch(ctx); err != nil {
				t.Logf("dispatch: %v", err)
			}
			var st dispatch.Status
			deadline := time.Now().Add(30 * time.Second)
			for {
				if err := getJSON(ctx, d.HealthURL+"/readyz", &st); err != nil {
					t.Fatal(err)
				}
				settled := st.HealthError != "" && st.DemandError != ""
				if tc.wantErr == "" {
					settled = st.HealthError == "" && st.DemandError == "" && !st.LastDispatch.IsZero()
				}
				if settled || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Logf("/readyz: demandError %q, healthError %q", st.DemandError, st.HealthError)
			for what, got := range map[string]string{"demandError": st.DemandError, "healthError": st.HealthError} {
				if tc.wantErr == "" && got != "" {
					t.Errorf("%s %q, want none", what, got)
				}
				if tc.wantErr != "" && !strings.Contains(got, tc.wantErr) {
					t.Errorf("%s %q, want one naming %q", what, got, tc.wantErr)
				}
			}
			if tc.wantErr != "" {
				return
			}
			// Demand came from Prometheus: the clusters' demand adds up to the generated history.
			clusters, err := d.API.Clusters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			total, want := 0.0, 0.0
			for _, c := range clusters {
				total += c.Demand
			}
			for job, v := range demand {
				if job != jobRemoved {
					want += v
				}
			}
			if tc.demandFactor != 0 {
				want *= tc.demandFactor
			}
			if !within(total, want, 0.05) {
				t.Errorf("the clusters' demand adds up to %.1f, want the generated %.1f: demand did not come from Prometheus", total, want)
			}
		})
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
