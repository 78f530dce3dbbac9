package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// fakeHealthProm answers the default health queries: build05 has 30 of 50
// finished ProwJobs in error, the others none.
func fakeHealthProm(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		q := r.Form.Get("query")
		var result string
		switch {
		case strings.Contains(q, `state="error"`) && !strings.Contains(q, "success"):
			result = `{"metric":{"cluster":"build05"},"value":[1764590400,"30"]}`
		case strings.Contains(q, "success|failure|error|aborted"):
			result = `{"metric":{"cluster":"build01"},"value":[1764590400,"50"]},{"metric":{"cluster":"build02"},"value":[1764590400,"50"]},{"metric":{"cluster":"build05"},"value":[1764590400,"50"]}`
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[` + result + `]}}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestServeHealthReport: serve's default health mode judges the clusters
// from Prometheus and reports, in /api/v1/clusters, that it would drain the
// failing one, and drains nothing.
func TestServeHealthReport(t *testing.T) {
	ex := filepath.Join("..", "..", "docs", "examples")
	prom := fakeHealthProm(t)
	ports := freePorts(t, 3)
	dir := t.TempDir()
	// The example clusters each have a capability of their own; build05 has none, so it can be drained.
	clusters := filepath.Join(dir, "clusters.yaml")
	if err := os.WriteFile(clusters, []byte("aws:\n- name: build01\n  capabilities: [arm64, sshd-bastion]\n- name: build03\n  capacity: 50\n  capabilities: [rce]\n- name: build05\ngcp:\n- name: build02\n  capabilities: [kvm]\n- name: build04\n  blocked: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--dispatcher-config", filepath.Join(ex, "dispatcher.yaml"),
		"--cluster-config", clusters,
		"--job-config", filepath.Join(ex, "jobs"),
		"--demand-file", filepath.Join(ex, "demand.yaml"),
		"--cert-dir", filepath.Join(dir, "certs"), "--self-signed", "--tls-hosts", "localhost",
		"--bind-address", "127.0.0.1",
		"--webhook-port", strconv.Itoa(ports[0]), "--api-port", strconv.Itoa(ports[1]), "--probe-port", strconv.Itoa(ports[2]),
		"--health-prometheus-url", prom.URL, "--health-interval", "100ms", "--health-dwell", "0", "--health-pending-query", "-",
	}
	srv := startServe(t, args, ports[2])
	defer srv.stop(t)
	c := &api.Client{BaseURL: "http://127.0.0.1:" + strconv.Itoa(ports[1]), HTTP: &http.Client{Timeout: 10 * time.Second}}
	var got map[string]*api.ClusterHealth
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		cs, err := c.Clusters(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]*api.ClusterHealth{}
		for _, cl := range cs {
			got[cl.Name] = cl.Health
			if cl.Override != nil {
				t.Fatalf("report mode drained %s: %+v", cl.Name, cl.Override)
			}
		}
		if h := got["build05"]; h != nil && h.State == "unhealthy" && h.Action != "" {
			break
		}
	}
	h := got["build05"]
	if h == nil || h.State != "unhealthy" || h.Mode != "report" || h.ErrorShare == nil || *h.ErrorShare != 0.6 || !strings.HasPrefix(h.Action, "would drain") {
		t.Fatalf("build05's health %+v, want unhealthy at 60%% with a would-drain action in report mode", h)
	}
	if h := got["build01"]; h == nil || h.State != "healthy" {
		t.Errorf("build01's health %+v, want healthy", h)
	}
	if h := got["build04"]; h == nil || h.State != "unknown" || h.ErrorShare != nil {
		t.Errorf("build04 (no data)'s health %+v, want unknown without numbers", h)
	}
}
