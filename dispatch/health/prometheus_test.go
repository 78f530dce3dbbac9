package health

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// promServer answers /api/v1/query like Prometheus: a body per query, 400 for any other.
type promServer map[string]string

func (p promServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	body, ok := p[r.Form.Get("query")]
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"unexpected query"}`))
		return
	}
	_, _ = w.Write([]byte(body))
}

func vector(pairs ...string) string {
	var rs []string
	for i := 0; i+1 < len(pairs); i += 2 {
		rs = append(rs, `{"metric":{"cluster":"`+pairs[i]+`"},"value":[1764590400,"`+pairs[i+1]+`"]}`)
	}
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(rs, ",") + `]}}`
}

const (
	errors30m   = `sum by (cluster) (increase(prowjob_state_transitions{state="error"}[30m]))`
	finished30m = `sum by (cluster) (increase(prowjob_state_transitions{state=~"success|failure|error|aborted"}[30m]))`
	pending30m  = `sum by (cluster) (prowjobs{state="triggered"}) / sum by (cluster) (rate(prowjob_state_transitions{state="pending"}[30m]))`
)

func TestPrometheusSamples(t *testing.T) {
	srv := httptest.NewServer(promServer{
		finished30m: vector("build01", "40", "build02", "20", "build03", "0", "", "9"),
		errors30m:   vector("build01", "10", "build04", "3"),
		pending30m:  vector("build01", "90", "build02", "+Inf", "build03", "NaN"),
	})
	defer srv.Close()
	p, err := NewPrometheus(PrometheusOptions{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Samples(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("samples %+v: want build01..03 (those the finished query names)", got)
	}
	if s := got["build01"]; s.ErrorShare != 0.25 || s.Samples != 40 || s.PendingSeconds != 90 {
		t.Errorf("build01: %+v, want 10/40 errors and 90s pending", s)
	}
	if s := got["build02"]; s.ErrorShare != 0 || s.Samples != 20 || !math.IsInf(s.PendingSeconds, 1) {
		t.Errorf("build02: %+v, want no errors and an infinite pending (nothing starts)", s)
	}
	if s := got["build03"]; s.Samples != 0 || !math.IsNaN(s.PendingSeconds) {
		t.Errorf("build03: %+v, want no samples and an unknown pending", s)
	}
}

func TestPrometheusSamplesCustomQueriesAndWindow(t *testing.T) {
	srv := httptest.NewServer(promServer{
		`sum by (cluster) (increase(errs[1h]))`: vector("build01", "5"),
		`sum by (cluster) (increase(done[1h]))`: vector("build01", "10"),
	})
	defer srv.Close()
	p, err := NewPrometheus(PrometheusOptions{URL: srv.URL, Window: time.Hour, PendingQuery: "-",
		ErrorsQuery: `sum by (cluster) (increase(errs[{{.Window}}]))`, FinishedQuery: `sum by (cluster) (increase(done[{{.Window}}]))`})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Samples(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := got["build01"]; s.ErrorShare != 0.5 || !math.IsNaN(s.PendingSeconds) {
		t.Errorf("build01: %+v, want 5/10 errors and no pending (skipped)", s)
	}
}

func TestPrometheusSamplesFailures(t *testing.T) {
	for name, answers := range map[string]promServer{
		"the errors query fails":  {finished30m: vector("build01", "10"), pending30m: vector()},
		"the pending query fails": {finished30m: vector("build01", "10"), errors30m: vector()},
		"a scalar answer":         {finished30m: `{"status":"success","data":{"resultType":"scalar","result":[1764590400,"3"]}}`, errors30m: vector(), pending30m: vector()},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(answers)
			defer srv.Close()
			p, err := NewPrometheus(PrometheusOptions{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Samples(context.Background())
			if err == nil || !strings.Contains(err.Error(), "prometheus health: query") {
				t.Errorf("samples %+v, error %v: want a wrapped query error and no samples", got, err)
			}
			if got != nil {
				t.Errorf("samples %+v on error: want none", got)
			}
		})
	}
	if _, err := NewPrometheus(PrometheusOptions{}); err == nil {
		t.Error("no URL: no error")
	}
	if _, err := NewPrometheus(PrometheusOptions{URL: "http://x", ErrorsQuery: "{{.Nope}}"}); err == nil {
		t.Error("a template with an unknown field: no error")
	}
}
