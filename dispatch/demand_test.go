package dispatch

import (
	"context"
	"errors"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
)

// flakyPrometheus answers the demand query with its current mode: "ok"
// (unit 900, lint 300), "500", or "hang" (until the client gives up).
type flakyPrometheus struct {
	mode atomic.Value
	stop chan struct{} // closed at the end of the test: releases hanging requests
}

func newFlakyPrometheus(t *testing.T, mode string) *httptest.Server {
	p := &flakyPrometheus{stop: make(chan struct{})}
	p.mode.Store(mode)
	srv := httptest.NewServer(p)
	t.Cleanup(func() { close(p.stop); srv.Close() })
	return srv
}

func (p *flakyPrometheus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm() // read the body, so a client that gives up cancels r.Context()
	switch p.mode.Load().(string) {
	case "500":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"status":"error","errorType":"internal","error":"query processing would load too many samples"}`))
	case "hang":
		select {
		case <-r.Context().Done():
		case <-p.stop:
		}
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"job_name":"pull-ci-org-repo-main-unit"},"value":[1762000000,"900"]},
			{"metric":{"job_name":"pull-ci-org-repo-main-lint"},"value":[1762000000,"300"]}]}}`))
	}
}

func TestDemandFailureKeepsLastGoodDemand(t *testing.T) {
	srv := newFlakyPrometheus(t, "ok")
	prom := srv.Config.Handler.(*flakyPrometheus)
	e := newEnv(t)
	src, err := demand.NewPrometheus(demand.PrometheusOptions{URL: srv.URL, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	opts := e.options()
	opts.Demand = src
	d := e.newDispatcher(opts)
	e.dispatch(d)
	good := d.cache.Snapshot()
	if a := mustLookup(t, d, "pull-ci-org-repo-main-lint"); a.Demand != 300 {
		t.Fatalf("demand from Prometheus not used: %+v", a)
	}
	for i, mode := range []string{"500", "hang"} {
		prom.mode.Store(mode)
		e.clock.SetTime(e.clock.Now().Add(time.Hour))
		if _, err := d.Dispatch(context.Background()); err != nil {
			t.Fatalf("%s: a demand failure failed the dispatch: %v", mode, err)
		}
		s := d.Status()
		if s.DemandError == "" || s.LastError != "" {
			t.Errorf("%s: status %+v, want a DemandError and no LastError", mode, s)
		}
		if a := mustLookup(t, d, "pull-ci-org-repo-main-lint"); a.Demand != 300 {
			t.Errorf("%s: last good demand not kept: %+v", mode, a)
		}
		if got := d.cache.Snapshot().Assignments; len(got) != len(good.Assignments) {
			t.Errorf("%s: table has %d rows, want %d", mode, len(got), len(good.Assignments))
		}
		if got := e.metricValue("prowjob_dispatcher_demand_query_errors_total"); got != float64(i+1) {
			t.Errorf("%s: demand_query_errors_total = %v, want %d", mode, got, i+1)
		}
	}
	prom.mode.Store("ok")
	e.dispatch(d)
	if s := d.Status(); s.DemandError != "" {
		t.Errorf("DemandError not cleared by a good query: %+v", s)
	}
}

func TestNoDemandAtAllUsesDefault(t *testing.T) {
	srv := newFlakyPrometheus(t, "500")
	e := newEnv(t)
	src, err := demand.NewPrometheus(demand.PrometheusOptions{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	opts := e.options()
	opts.Demand = src
	d := e.newDispatcher(opts)
	e.dispatch(d)
	for _, a := range d.cache.Snapshot().Assignments {
		if a.Demand != 1 {
			t.Errorf("%s: demand %v without any demand data, want the default 1", a.Job, a.Demand)
		}
	}
	if d.Status().DemandError == "" {
		t.Error("no DemandError")
	}
}

// TestAdmissionDemand: without a demand source, admissions are the demand,
// and they survive a restart.
func TestAdmissionDemand(t *testing.T) {
	e := newEnv(t)
	opts := e.options()
	opts.Demand = nil
	d := e.newDispatcher(opts)
	for i := 0; i < 5; i++ {
		admit(t, d, "pull-ci-org-repo-main-unit")
	}
	admit(t, d, "pull-ci-org-repo-main-lint")
	for i := 0; i < 3; i++ { // dry runs (sideEffects: NoneOnDryRun) count nothing
		if _, err := d.Admit(context.Background(), AdmissionRequest{Job: "pull-ci-org-repo-main-unit", Agent: jobs.Agent, DryRun: true}); err != nil && !errors.Is(err, ErrNotReady) {
			t.Fatal(err)
		}
	}
	e.dispatch(d)
	if a := mustLookup(t, d, "pull-ci-org-repo-main-unit"); a.Demand != 5 {
		t.Errorf("admission demand %v, want 5", a.Demand)
	}
	opts = e.options() // a new registry for the restarted dispatcher
	opts.Demand = nil
	again := e.newDispatcher(opts)
	e.dispatch(again)
	if a := mustLookup(t, again, "pull-ci-org-repo-main-unit"); a.Demand != 5 {
		t.Errorf("admission demand after restart %v, want 5", a.Demand)
	}
}

// TestAdmissionCountsSavedApart: the counts saved each housekeeping tick go
// to their own file; the state file, holding the table, is not rewritten.
func TestAdmissionCountsSavedApart(t *testing.T) {
	e := newEnv(t)
	opts := e.options()
	opts.Demand = nil
	d := e.newDispatcher(opts)
	e.dispatch(d)
	before, err := os.ReadFile(filepath.Join(e.stateDir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	admit(t, d, "pull-ci-org-repo-main-unit")
	admit(t, d, "pull-ci-org-repo-main-unit")
	if err := d.saveAdmissions(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(e.stateDir, store.FileName)); string(after) != string(before) {
		t.Error("saving the admission counts rewrote the state file")
	}
	st, err := store.ReadDir(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, day := range st.Admissions.Days {
		total += day.Jobs["pull-ci-org-repo-main-unit"]
	}
	if total != 2 {
		t.Errorf("saved counts of the unit job: %v, want 2", total)
	}
}
