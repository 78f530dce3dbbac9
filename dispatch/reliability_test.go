package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// TestMadeUpJobsAreProvisional: names nobody configured, sent to admission,
// get bounded rows that weigh only what they ran and go away when unseen.
func TestMadeUpJobsAreProvisional(t *testing.T) {
	e := newEnv(t)
	opts := e.options()
	opts.MaxProvisional, opts.ProvisionalTTL = 10, time.Hour
	d := e.newDispatcher(opts)
	e.dispatch(d)
	configured := d.cache.Len()

	for i := range 50 {
		dec, err := d.Admit(context.Background(), AdmissionRequest{Job: fmt.Sprintf("made-up-%02d", i), Agent: jobs.Agent})
		if err != nil || dec.Cluster == "" {
			t.Fatalf("admitting a made-up job: %+v, %v", dec, err) // still placed, by every rule
		}
	}
	if got := d.cache.Len(); got != configured+10 {
		t.Errorf("table has %d rows after 50 made-up jobs, want %d + the limit 10", got, configured)
	}
	if got := e.metricValue("prowjob_dispatcher_provisional_over_limit_total"); got != 40 {
		t.Errorf("provisional_over_limit_total = %v, want 40", got)
	}
	admit(t, d, "made-up-00") // a second run of a provisional job
	e.dispatch(d)
	if a := mustLookup(t, d, "made-up-00"); a.Demand != 2 {
		t.Errorf("made-up-00 weighs %v after a dispatch, want its 2 admissions (not the median demand)", a.Demand)
	}
	if a := mustLookup(t, d, "made-up-01"); a.Demand != 1 {
		t.Errorf("made-up-01 weighs %v, want its 1 admission", a.Demand)
	}
	if got := d.Status().Provisional; got != 10 {
		t.Errorf("Status().Provisional = %d, want 10", got)
	}

	// A restart keeps them, with their counts.
	restarted := e.newDispatcher(e.options())
	if got := restarted.Status().Provisional; got != 10 {
		t.Errorf("after a restart: %d provisional jobs, want 10", got)
	}

	// Unseen for the TTL: dropped from the table and from the saved state.
	e.clock.SetTime(e.clock.Now().Add(30 * time.Minute))
	admit(t, d, "made-up-03")
	e.clock.SetTime(e.clock.Now().Add(45 * time.Minute))
	if n, err := d.expireProvisional(); err != nil || n != 9 {
		t.Fatalf("expireProvisional: %d, %v; want 9 dropped", n, err)
	}
	if _, ok := d.Lookup("made-up-00"); ok {
		t.Error("made-up-00 kept a row after its TTL")
	}
	mustLookup(t, d, "made-up-03") // admitted within the TTL
	st, err := store.ReadDir(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Table.ByJob()["made-up-00"]; ok || len(st.Provisional) != 1 {
		t.Errorf("saved state: made-up-00 row %v, provisional %+v; want only made-up-03", ok, st.Provisional)
	}
}

// TestAFailedSaveIsNotAcknowledged: writes answer success only once saved;
// a state dir removed under the dispatcher is created again.
func TestAFailedSaveIsNotAcknowledged(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	ctx := context.Background()

	// The state dir removed: recreated by the next save, nothing lost.
	if err := os.RemoveAll(e.stateDir); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Reschedule(ctx, RescheduleRequest{Job: "pull-ci-org-repo-main-lint", Cluster: "build02", Reason: "r"}); err != nil {
		t.Fatalf("reschedule after the state dir was removed: %v", err)
	}
	if st, err := store.ReadDir(e.stateDir); err != nil || len(st.Overrides) != 1 {
		t.Errorf("state after the dir was removed: %+v, %v", st, err)
	}

	// The state dir unusable (a file in its place): refused with the reason.
	if err := os.RemoveAll(e.stateDir); err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.stateDir, "not a dir")
	_, err := d.Reschedule(ctx, RescheduleRequest{Job: "pull-ci-org-repo-main-unit", Cluster: "build02", Reason: "r"})
	if !errors.Is(err, ErrNotSaved) || !strings.Contains(err.Error(), e.stateDir) {
		t.Errorf("reschedule with an unusable state dir: %v, want ErrNotSaved naming the dir", err)
	}
	if err := d.DeleteOverride(ctx, "pull-ci-org-repo-main-lint"); !errors.Is(err, ErrNotSaved) {
		t.Errorf("override deletion with an unusable state dir: %v, want ErrNotSaved", err)
	}
	if _, err := d.Dispatch(ctx); !errors.Is(err, ErrNotSaved) {
		t.Errorf("dispatch with an unusable state dir: %v, want ErrNotSaved", err)
	}
	if s := d.Status(); s.SaveError == "" || !s.Ready {
		t.Errorf("status while saves fail: %+v, want ready with the save error", s)
	}

	// Usable again: the next save writes everything in force and clears the error.
	if err := os.Remove(e.stateDir); err != nil {
		t.Fatal(err)
	}
	if err := d.save(); err != nil {
		t.Fatal(err)
	}
	if s := d.Status(); s.SaveError != "" {
		t.Errorf("save error %q after a good save", s.SaveError)
	}
	st, err := store.ReadDir(e.stateDir)
	if err != nil || len(st.Overrides) != 1 || st.Overrides[0].Job != "pull-ci-org-repo-main-unit" {
		t.Errorf("state after recovery: %+v, %v; want the unit job's override", st, err)
	}
}

// TestCorruptStateFileStartsFromThePreviousGeneration: a flipped byte costs
// neither the table nor an override, and is reported.
func TestCorruptStateFileStartsFromThePreviousGeneration(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	e.dispatch(d) // a second state file: the first is the previous generation
	ctx := context.Background()
	if _, err := d.Reschedule(ctx, RescheduleRequest{Job: "pull-ci-org-repo-main-lint", Cluster: "build01", Reason: "r", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := d.flush(); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(e.stateDir, store.FileName)
	data, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	writeFile(t, statePath, string(data))

	again := e.newDispatcher(e.options())
	s := again.Status()
	if !s.Ready || s.TableSize != d.cache.Len() || len(s.Recovery) == 0 {
		t.Errorf("status after a corrupt state file: %+v; want ready on the previous generation, saying so", s)
	}
	if a := mustLookup(t, again, "pull-ci-org-repo-main-lint"); a.Cluster != "build01" || a.Reason != table.ReasonOverride {
		t.Errorf("overridden job after the restart: %+v, want the override to build01", a)
	}
	if got := e.metricValue("prowjob_dispatcher_state_recovered"); got != 1 {
		t.Errorf("state_recovered = %v, want 1", got)
	}
	aside, _ := filepath.Glob(statePath + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt copies %v, want one", aside)
	}
	if kept, _ := os.ReadFile(aside[0]); string(kept) != string(data) {
		t.Error("the corrupt copy is not the corrupt file")
	}
}

// TestDemandSurvivesARestart: the last good demand is saved, so a restart
// places a new job of the job config with its real demand at once.
func TestDemandSurvivesARestart(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	writeFile(t, e.demandFile, "{}\n") // the source now has nothing: the restart must not need it

	again := e.newDispatcher(e.options())
	again.cache.Delete("pull-ci-org-repo-main-unit") // as if the job were new to the table
	if _, err := again.Admit(context.Background(), AdmissionRequest{Job: "pull-ci-org-repo-main-unit", Agent: jobs.Agent}); err != nil {
		t.Fatal(err)
	}
	if a := mustLookup(t, again, "pull-ci-org-repo-main-unit"); a.Demand != 900 {
		t.Errorf("demand after a restart %v, want 900 from the saved demand", a.Demand)
	}
}

// answers is a demand source that returns its answers in turn, then the last.
type answers struct {
	mu   sync.Mutex
	list []map[string]float64
}

func (a *answers) Demand(context.Context) (map[string]float64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := a.list[0]
	if len(a.list) > 1 {
		a.list = a.list[1:]
	}
	return maps.Clone(next), nil
}

// TestImplausibleDemandKeepsTheLastGood: an empty answer, a collapse or a
// value that is not a number of runs is a failed query.
func TestImplausibleDemandKeepsTheLastGood(t *testing.T) {
	good := map[string]float64{"pull-ci-org-repo-main-unit": 900, "pull-ci-org-repo-main-lint": 300}
	for _, tc := range []struct {
		name, reason string
		next         map[string]float64
	}{
		{"empty", "empty", map[string]float64{}},
		{"collapse", "drop", map[string]float64{"pull-ci-org-repo-main-unit": 1}},
		{"not a number of runs", "invalid_value", map[string]float64{"pull-ci-org-repo-main-unit": 1e308, "pull-ci-org-repo-main-lint": 300}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			opts := e.options()
			opts.Demand = &answers{list: []map[string]float64{good, tc.next}}
			d := e.newDispatcher(opts)
			e.dispatch(d)
			e.dispatch(d)
			if a := mustLookup(t, d, "pull-ci-org-repo-main-unit"); a.Demand != 900 {
				t.Errorf("demand %v after an implausible answer, want the last good 900", a.Demand)
			}
			if s := d.Status(); !strings.Contains(s.DemandError, "implausible demand") {
				t.Errorf("status %+v, want the refusal in demandError", s)
			}
			if got := e.metricValue("prowjob_dispatcher_demand_refused_total", "reason", tc.reason); got != 1 {
				t.Errorf("demand_refused_total{reason=%s} = %v, want 1", tc.reason, got)
			}
		})
	}
}

// TestAdmissionPinsFollowTheRules: a new job's pin label to a blocked or
// unknown cluster is not honoured, as in a full dispatch.
func TestAdmissionPinsFollowTheRules(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	for _, pin := range []string{"build04", "build99"} { // blocked; nowhere
		job := "pull-ci-new-pinned-to-" + pin
		dec, err := d.Admit(context.Background(), AdmissionRequest{Job: job, Agent: jobs.Agent,
			Labels: map[string]string{jobs.DefaultLabels().Cluster: pin}})
		if err != nil || dec.Cluster == pin || dec.Cluster == "" || dec.Reason == table.ReasonPinned {
			t.Errorf("a new job pinned to %s: %+v, %v; want it placed elsewhere by the other rules", pin, dec, err)
		}
	}
}

// blockingSource answers once released, like a slow Prometheus.
type blockingSource struct{ release chan struct{} }

func (b blockingSource) Demand(ctx context.Context) (map[string]float64, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return map[string]float64{"pull-ci-org-repo-main-unit": 900}, nil
}

// TestRescheduleDoesNotWaitForTheDemandQuery: a full dispatch queries
// demand before it takes the table, so operators are never queued behind it.
func TestRescheduleDoesNotWaitForTheDemandQuery(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	slow := blockingSource{release: make(chan struct{})}
	d.source = slow
	done := make(chan error, 1)
	go func() { _, err := d.Dispatch(context.Background()); done <- err }()
	time.Sleep(50 * time.Millisecond) // let the dispatch reach the query (the reschedule must pass it either way)
	if _, err := d.Reschedule(context.Background(), RescheduleRequest{Job: "pull-ci-org-repo-main-lint", Cluster: "build01", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("the dispatch ended before its query was answered: %v", err)
	default:
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
