package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func TestHosts(t *testing.T) {
	got := Hosts([]string{" svc.ns.svc ", "", "localhost", "10.0.0.1", "svc.ns.svc"})
	want := []string{"localhost", "127.0.0.1", "svc.ns.svc", "10.0.0.1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Hosts (-want +got):\n%s", diff)
	}
}

func TestGenerateVerify(t *testing.T) {
	hosts := Hosts([]string{"prowjob-dispatcher.prowjob-dispatcher.svc"})
	b, err := Generate(hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		hosts   []string
		at      time.Time
		wantErr bool
	}{
		{name: "every host now", hosts: hosts, at: now},
		{name: "just before expiry", hosts: hosts, at: now.Add(CertValidity - time.Minute)},
		{name: "after expiry", hosts: hosts, at: now.Add(CertValidity + time.Minute), wantErr: true},
		{name: "other host", hosts: []string{"evil.example.com"}, at: now, wantErr: true},
		{name: "other IP", hosts: []string{"127.0.0.2"}, at: now, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.Verify(tc.hosts, tc.at); (err != nil) != tc.wantErr {
				t.Errorf("Verify: %v, want error %v", err, tc.wantErr)
			}
		})
	}
	other, err := Generate(hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	mixed := &Bundle{CA: other.CA, Cert: b.Cert, Key: b.Key}
	if err := mixed.Verify(hosts, now); err == nil {
		t.Error("a certificate verified against another CA")
	}
	mixed = &Bundle{CA: b.CA, Cert: b.Cert, Key: other.Key}
	if err := mixed.Verify(hosts, now); err == nil {
		t.Error("a certificate verified with another key")
	}
	dec, err := base64.StdEncoding.DecodeString(b.CABundle())
	if err != nil || !bytes.Equal(dec, b.CA) {
		t.Errorf("CABundle does not decode to the CA PEM: %v", err)
	}
}

func TestEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	hosts := Hosts(nil)

	first, reused, err := Ensure(dir, hosts, now)
	if err != nil || reused {
		t.Fatalf("first Ensure: reused %v, %v", reused, err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}

	again, reused, err := Ensure(dir, hosts, now.Add(24*time.Hour))
	if err != nil || !reused || !bytes.Equal(again.CA, first.CA) {
		t.Errorf("Ensure on a valid bundle: reused %v, same CA %v, %v", reused, bytes.Equal(again.CA, first.CA), err)
	}

	tests := []struct {
		name  string
		edit  func(t *testing.T)
		hosts []string
		at    time.Time
	}{
		{name: "new host", hosts: Hosts([]string{"svc.example"}), at: now},
		{name: "close to expiry", hosts: hosts, at: now.Add(CertValidity - RenewBefore + time.Hour)},
		{name: "corrupt key", hosts: hosts, at: now, edit: func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("junk"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "missing CA", hosts: hosts, at: now, edit: func(t *testing.T) {
			if err := os.Remove(filepath.Join(dir, CAFile)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(filepath.Join(dir, CertFile))
			if tc.edit != nil {
				tc.edit(t)
			}
			b, reused, err := Ensure(dir, tc.hosts, tc.at)
			if err != nil || reused {
				t.Fatalf("Ensure: reused %v, %v; want a new bundle", reused, err)
			}
			if bytes.Equal(before, b.Cert) {
				t.Error("the certificate did not change")
			}
			onDisk, err := Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := onDisk.Verify(tc.hosts, tc.at); err != nil {
				t.Errorf("the bundle written does not verify: %v", err)
			}
		})
	}
}

// TestTLSRoundTrip serves TLS on 127.0.0.1 with the generated certificate and
// connects with a client that trusts only the generated CA.
func TestTLSRoundTrip(t *testing.T) {
	dir := t.TempDir()
	b, _, err := Ensure(dir, Hosts(nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the listener is closed
			}
			_, _ = io.WriteString(c, "hello")
			c.Close()
		}
	}()

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b.CA)
	for _, tc := range []struct {
		serverName string
		wantErr    bool
	}{{"localhost", false}, {"127.0.0.1", false}, {"other.example", true}} {
		t.Run(tc.serverName, func(t *testing.T) {
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: tc.serverName})
			if (err != nil) != tc.wantErr {
				t.Fatalf("dial: %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer conn.Close()
			got, err := io.ReadAll(conn)
			if err != nil || string(got) != "hello" {
				t.Errorf("read %q, %v", got, err)
			}
		})
	}
}
