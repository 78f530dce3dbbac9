package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/admission"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// syncBuffer is a bytes.Buffer safe for the server's and the test's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// TestServe runs `serve` on the example configs with a self-signed
// certificate on loopback ports, asks each port a question, then cancels
// its context (SIGTERM) and checks that it stops cleanly and saved its state.
func TestServe(t *testing.T) {
	ex := filepath.Join("..", "..", "docs", "examples")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3)
	stateDir, certDir := filepath.Join(dir, "state"), filepath.Join(dir, "certs")
	args := []string{
		"--dispatcher-config", filepath.Join(ex, "dispatcher.yaml"),
		"--cluster-config", filepath.Join(ex, "clusters.yaml"),
		"--job-config", filepath.Join(ex, "jobs"),
		"--demand-file", filepath.Join(ex, "demand.yaml"),
		"--state-dir", stateDir,
		"--cert-dir", certDir, "--self-signed", "--tls-hosts", "localhost",
		"--bind-address", "127.0.0.1",
		"--webhook-port", strconv.Itoa(ports[0]), "--api-port", strconv.Itoa(ports[1]), "--probe-port", strconv.Itoa(ports[2]),
		"--token-file", tokenFile,
	}
	ctx := context.Background()
	srv := startServe(t, args, ports[2])
	health := "http://127.0.0.1:" + strconv.Itoa(ports[2])
	apiURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	stdout := &srv.stdout

	// The CA file named in the log verifies the served certificate; no
	// certificate goes to stdout.
	if out := stdout.String(); out != "" {
		t.Errorf("serve wrote to stdout: %q", out)
	}
	if !strings.Contains(srv.stderr.String(), `"caFile":"`+filepath.Join(certDir, "ca.crt")+`"`) {
		t.Errorf("the log does not name the CA file %s:\n%s", filepath.Join(certDir, "ca.crt"), srv.stderr.String())
	}
	caPEM, err := os.ReadFile(filepath.Join(certDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("the caBundle holds no certificate")
	}
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	review, err := os.ReadFile(filepath.Join(ex, "admissionreview.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tlsClient.Post("https://localhost:"+strconv.Itoa(ports[0])+admission.MutatePath, "application/json", bytes.NewReader(review))
	if err != nil {
		t.Fatal(err)
	}
	var ar admissionv1.AdmissionReview
	err = json.NewDecoder(resp.Body).Decode(&ar)
	resp.Body.Close()
	if err != nil || ar.Response == nil || !ar.Response.Allowed {
		t.Fatalf("admission: %+v, %v", ar.Response, err)
	}

	c := &api.Client{BaseURL: apiURL, Token: "test-token", HTTP: &http.Client{Timeout: 30 * time.Second}}
	as, err := c.Assignment(ctx, "pull-ci-openshift-origin-main-e2e-aws-arm64")
	if err != nil {
		t.Fatal(err)
	}
	if as.Cluster != "build01" { // the only arm64 cluster
		t.Errorf("arm64 job on %s, want build01", as.Cluster)
	}
	if want := fmt.Sprintf(`[{"op":"replace","path":"/spec/cluster","value":%q}]`, as.Cluster); string(ar.Response.Patch) != want {
		t.Errorf("admission patch %s, want %s", ar.Response.Patch, want)
	}
	if _, err := c.Dispatch(ctx); err != nil {
		t.Errorf("dispatch with the token: %v", err)
	}
	if _, err := (&api.Client{BaseURL: apiURL}).Dispatch(ctx); err == nil {
		t.Error("dispatch without the token succeeded")
	}
	resp, err = http.Get(health + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `prowjob_dispatcher_admissions_total{cluster="build01",outcome="patched"} 1`) {
		t.Errorf("/metrics does not count the admission:\n%s", metrics)
	}
	if want := fmt.Sprintf(`prowjob_dispatcher_build_info{goversion="%s",revision="%s",version="%s"} 1`, runtime.Version(), revision, version); !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	// An override, then a restart on the same state dir: the same table and
	// the same override come back, before any dispatch.
	from := as.Cluster
	rs, err := c.Reschedule(ctx, api.RescheduleRequest{Job: "pull-ci-openshift-origin-main-unit", TTL: "1h", Reason: "restart test"})
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Overrides(ctx)
	if err != nil || len(before) != 1 {
		t.Fatalf("overrides before restart: %+v, %v", before, err)
	}
	unitBefore, err := c.Assignment(ctx, "pull-ci-openshift-origin-main-unit")
	if err != nil {
		t.Fatal(err)
	}

	// A second dispatcher on the same state dir refuses to start, naming the holder.
	second := slices.Clone(args)
	for i, p := range freePorts(t, 3) {
		flagName := []string{"--webhook-port", "--api-port", "--probe-port"}[i]
		second[slices.Index(second, flagName)+1] = strconv.Itoa(p)
	}
	err = serve(ctx, second, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by another prowjob-dispatcher (pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("a second serve on the same state dir: %v, want a refusal naming this process", err)
	}
	srv.stop(t)
	// One log format: every line of the run is one JSON object, durations
	// as strings, and no certificate in it.
	for i, line := range strings.Split(strings.TrimSpace(srv.stderr.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("log line %d is not JSON (%v): %s", i+1, err, line)
			continue
		}
		if entry["msg"] == nil || entry["level"] == nil {
			t.Errorf("log line %d has no msg or level: %s", i+1, line)
		}
		if strings.Contains(line, "BEGIN CERTIFICATE") || strings.Contains(line, "LS0tLS1CRUdJTi") {
			t.Errorf("log line %d holds a certificate: %s", i+1, line)
		}
	}
	entries, err := os.ReadDir(stateDir)
	if err != nil || len(entries) == 0 {
		t.Errorf("no state saved in %s: %v", stateDir, err)
	}

	srv = startServe(t, args, ports[2])
	defer srv.stop(t)
	after, err := c.Overrides(ctx)
	if err != nil || !reflect.DeepEqual(after, before) {
		t.Errorf("overrides after restart: %+v, %v; want %+v", after, err, before)
	}
	unitAfter, err := c.Assignment(ctx, "pull-ci-openshift-origin-main-unit")
	if err != nil || !reflect.DeepEqual(unitAfter, unitBefore) || unitAfter.Cluster != rs.To {
		t.Errorf("overridden job after restart: %+v, %v; want %+v on %s", unitAfter, err, unitBefore, rs.To)
	}
	if a, err := c.Assignment(ctx, "pull-ci-openshift-origin-main-e2e-aws-arm64"); err != nil || a.Cluster != from {
		t.Errorf("arm64 job after restart: %+v, %v; want it on %s", a, err, from)
	}
}

// servedProcess is one in-process `serve` run.
type servedProcess struct {
	cancel         context.CancelFunc
	done           chan error
	stdout, stderr syncBuffer
}

// startServe runs serve with args until stop and waits until /readyz on
// healthPort answers 200.
func startServe(t *testing.T, args []string, healthPort int) *servedProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &servedProcess{cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- serve(ctx, args, &p.stdout, &p.stderr) }()
	health := "http://127.0.0.1:" + strconv.Itoa(healthPort)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-p.done:
			t.Fatalf("serve stopped: %v\n%s", err, p.stderr.String())
		default:
		}
		if resp, err := http.Get(health + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
	}
	cancel()
	t.Fatalf("not ready within 30s\n%s", p.stderr.String())
	return nil
}

// stop cancels serve's context, as SIGTERM does, and checks it returns cleanly.
func (p *servedProcess) stop(t *testing.T) {
	t.Helper()
	if p.done == nil {
		return
	}
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("serve returned %v\n%s", err, p.stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatal("serve did not stop within 90s of cancel")
	}
	p.done = nil
}

// TestServeStopsWhenAServerFails: a server that cannot start (the webhook's
// port is taken) stops the others and serve returns its error, having let
// go of the API port and the state dir.
func TestServeStopsWhenAServerFails(t *testing.T) {
	ex := filepath.Join("..", "..", "docs", "examples")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ports := freePorts(t, 2)
	stateDir := filepath.Join(t.TempDir(), "state")
	args := []string{
		"--dispatcher-config", filepath.Join(ex, "dispatcher.yaml"),
		"--cluster-config", filepath.Join(ex, "clusters.yaml"),
		"--job-config", filepath.Join(ex, "jobs"),
		"--demand-file", filepath.Join(ex, "demand.yaml"),
		"--state-dir", stateDir,
		"--cert-dir", filepath.Join(t.TempDir(), "certs"), "--self-signed", "--tls-hosts", "localhost",
		"--bind-address", "127.0.0.1", "--insecure-allow-unauthenticated",
		"--webhook-port", strconv.Itoa(taken.Addr().(*net.TCPAddr).Port),
		"--api-port", strconv.Itoa(ports[0]), "--probe-port", strconv.Itoa(ports[1]),
	}
	done := make(chan error, 1)
	var stderr syncBuffer
	go func() { done <- serve(context.Background(), args, io.Discard, &stderr) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "webhook server") {
			t.Errorf("serve returned %v, want the webhook server's error", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop within 60s of its webhook server failing\n%s", stderr.String())
	}
	for _, p := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d still taken after serve returned: %v", p, err)
			continue
		}
		ln.Close()
	}
	lock, err := store.LockDir(stateDir)
	if err != nil {
		t.Fatalf("the state dir is still locked after serve returned: %v", err)
	}
	_ = lock.Release()
}

func TestServeFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "required", args: nil, want: "--dispatcher-config is required"},
		{name: "exclusive demand", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--prometheus-url", "http://p", "--demand-file", "d"}, want: "exclusive"},
		{name: "port", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--api-port", "70000"}, want: "--api-port 70000"},
		{name: "log level", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--log-level", "loud"}, want: "--log-level"},
		{name: "token and insecure", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--token-file", "t", "--insecure-allow-unauthenticated"}, want: "exclusive"},
		{name: "stray argument", args: []string{"extra"}, want: "unexpected arguments"},
		{name: "weight without prometheus", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--prometheus-weight-query", "avg(x) by (job_name)"}, want: "--prometheus-weight-query needs --prometheus-url"},
		{name: "health mode", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--health-mode", "auto"}, want: `health mode "auto": want off, report or act`},
		{name: "health hysteresis", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--health-healthy-error-share", "0.5"}, want: "healthy error share 0.5 not in [0, unhealthy error share 0.3)"},
		{name: "health max drained", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--health-max-drained", "0"}, want: "--health-max-drained 0"},
		{name: "health drain ttl over the max", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--health-drain-ttl", "200h"}, want: "--health-drain-ttl 200h0m0s is over --max-drain-ttl"},
		{name: "health drain ttl over a short max", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--max-drain-ttl", "1h", "--health-drain-ttl", "2h"}, want: "--health-drain-ttl 2h0m0s is over --max-drain-ttl 1h0m0s"},
		{name: "max drain ttl under the min", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--max-drain-ttl", "1ns", "--health-drain-ttl", "1ns"}, want: "--max-drain-ttl 1ns: want at least 1m0s"},
		{name: "max override ttl under the min", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--max-override-ttl", "30s"}, want: "--max-override-ttl 30s: want at least 1m0s"},
		{name: "health drain ttl under the min", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--health-drain-ttl", "1s"}, want: "--health-drain-ttl 1s: want at least 1m0s"},
		{name: "tolerance", args: []string{"--dispatcher-config", "a", "--cluster-config", "b", "--job-config", "c", "--balance-tolerance", "20"}, want: "--balance-tolerance 20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := serve(context.Background(), tc.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	var stderr bytes.Buffer
	if err := serve(context.Background(), []string{"-h"}, io.Discard, &stderr); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "--token-file") && !strings.Contains(stderr.String(), "-token-file") {
		t.Errorf("-h: %v, usage %q", err, stderr.String())
	}
}
