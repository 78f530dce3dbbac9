package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
)

func TestHealth(t *testing.T) {
	lastDispatch := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		status   dispatch.Status
		path     string
		wantCode int
		want     dispatch.Status
	}{
		{name: "healthz while not ready", status: dispatch.Status{Reason: "no table"}, path: "/healthz", wantCode: 200},
		{name: "not ready", status: dispatch.Status{Reason: "no table yet", LastError: "cluster config: bad"}, path: "/readyz", wantCode: 503,
			want: dispatch.Status{Reason: "no table yet", LastError: "cluster config: bad"}},
		{name: "ready", status: dispatch.Status{Ready: true, TableSize: 42, LastDispatch: lastDispatch}, path: "/readyz", wantCode: 200,
			want: dispatch.Status{Ready: true, TableSize: 42, LastDispatch: lastDispatch}},
		{name: "ready while Prometheus fails", status: dispatch.Status{Ready: true, TableSize: 42, DemandError: "prometheus: timeout"}, path: "/readyz", wantCode: 200,
			want: dispatch.Status{Ready: true, TableSize: 42, DemandError: "prometheus: timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			RegisterHealth(mux, HealthOptions{Status: fixedStatus(tc.status)})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			code, body := call(t, "GET", srv.URL+tc.path, "", "")
			if code != tc.wantCode {
				t.Errorf("HTTP %d, want %d: %s", code, tc.wantCode, body)
			}
			if tc.path != "/readyz" {
				return
			}
			var got dispatch.Status
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("readyz body %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestReadyzReportsTheBackup: the Git backup's and the replication's
// status are in /readyz's body, and their failures leave readiness as the
// dispatcher's status says.
func TestReadyzReportsTheBackup(t *testing.T) {
	type backupStatus struct {
		LastError string `json:"lastError"`
	}
	mux := http.NewServeMux()
	RegisterHealth(mux, HealthOptions{
		Status:      fixedStatus(dispatch.Status{Ready: true, TableSize: 7}),
		Backup:      func() any { return backupStatus{LastError: "github: 502"} },
		Replication: func() any { return backupStatus{LastError: "kubernetes API: connection refused"} },
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	code, body := call(t, "GET", srv.URL+"/readyz", "", "")
	if code != http.StatusOK {
		t.Errorf("HTTP %d with a failing backup, want 200: %s", code, body)
	}
	var got struct {
		dispatch.Status
		Backup      *backupStatus `json:"backup"`
		Replication *backupStatus `json:"replication"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.TableSize != 7 || got.Backup == nil || got.Backup.LastError != "github: 502" {
		t.Errorf("readyz body %s: want tableSize 7 and backup.lastError", body)
	}
	if got.Replication == nil || !strings.Contains(got.Replication.LastError, "connection refused") {
		t.Errorf("readyz body %s: want replication.lastError", body)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	RegisterHealth(mux, HealthOptions{Status: fixedStatus{Ready: true}, Gatherer: reg})
	srv := httptest.NewServer(m.Instrument(mux))
	defer srv.Close()
	if code, _ := call(t, "GET", srv.URL+"/healthz", "", ""); code != 200 {
		t.Fatalf("/healthz: HTTP %d", code)
	}
	code, body := call(t, "GET", srv.URL+"/metrics", "", "")
	if code != 200 {
		t.Fatalf("HTTP %d", code)
	}
	for _, want := range []string{
		`prowjob_dispatcher_http_requests_total{code="200",handler="GET /healthz"} 1`,
		`prowjob_dispatcher_http_request_duration_seconds_count{handler="GET /healthz"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Without a gatherer there is no /metrics.
	mux = http.NewServeMux()
	RegisterHealth(mux, HealthOptions{Status: fixedStatus{Ready: true}})
	srv2 := httptest.NewServer(mux)
	defer srv2.Close()
	if code, _ := call(t, "GET", srv2.URL+"/metrics", "", ""); code != 404 {
		t.Errorf("/metrics without a gatherer: HTTP %d, want 404", code)
	}
}
