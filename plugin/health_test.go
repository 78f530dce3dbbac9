package plugin

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterHealth(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	var notReady error
	mux := http.NewServeMux()
	RegisterHealth(mux, reg, func() error { return notReady })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d, want 200", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d, want 200", code)
	}
	notReady = errors.New("shutting down")
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while shutting down: %d %q, want 503 naming why", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{
		`prowjob_dispatcher_plugin_commands_total{command="dispatch_drain",outcome="refused"} 0`,
		`prowjob_dispatcher_plugin_github_errors_total{operation="create_comment"} 0`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics %d lacks %s (every series exists from 0):\n%s", code, want, body)
		}
	}
}
