package dispatch

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
)

// fakeHealth is a health source whose samples and error the test sets.
type fakeHealth struct {
	mu      sync.Mutex
	samples map[string]health.Sample
	err     error
}

func (f *fakeHealth) Samples(context.Context) (map[string]health.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := map[string]health.Sample{}
	for c, s := range f.samples {
		out[c] = s
	}
	return out, nil
}

func (f *fakeHealth) set(errorShare map[string]float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.samples = map[string]health.Sample{}
	for c, e := range errorShare {
		f.samples[c] = health.Sample{ErrorShare: e, Samples: 100}
	}
}

var allHealthy = map[string]float64{"build01": 0, "build02": 0, "build03": 0, "build04": 0, "build05": 0}

func with(m map[string]float64, c string, v float64) map[string]float64 {
	out := map[string]float64{}
	for k, x := range m {
		out[k] = x
	}
	out[c] = v
	return out
}

// healthEnv is a dispatched env whose dispatcher judges health from a fakeHealth.
func healthEnv(t *testing.T, mode health.Mode, src *fakeHealth, extraClusters ...string) (*env, *Dispatcher) {
	e := newEnv(t)
	if len(extraClusters) > 0 {
		cfg := "aws:\n- name: build01\n  capabilities: [arm64]\n- name: build03\n  capacity: 50\n"
		for _, c := range extraClusters {
			cfg += "- name: " + c + "\n"
		}
		cfg += "gcp:\n- name: build02\n  capabilities: [kvm]\n- name: build04\n  blocked: true\n"
		writeFile(t, e.clusterConfig, cfg)
	}
	opts := e.options()
	th := health.DefaultThresholds()
	th.Dwell = 2 * time.Minute
	opts.Health = HealthOptions{Source: src, Mode: mode, Thresholds: th}
	d := e.newDispatcher(opts)
	e.dispatch(d)
	return e, d
}

// evaluate advances the clock a minute and evaluates, n times.
func evaluate(t *testing.T, e *env, d *Dispatcher, n int) []health.Transition {
	t.Helper()
	var all []health.Transition
	for range n {
		e.clock.SetTime(e.clock.Now().Add(time.Minute))
		ts, err := d.evaluateHealth(context.Background())
		if err != nil {
			t.Fatalf("evaluateHealth: %v", err)
		}
		all = append(all, ts...)
	}
	return all
}

func jobsOn(d *Dispatcher, cluster string) int {
	n := 0
	for _, a := range d.cache.Snapshot().Assignments {
		if a.Cluster == cluster {
			n++
		}
	}
	return n
}

func TestHealthReportModeMovesNothing(t *testing.T) {
	src := &fakeHealth{}
	src.set(with(allHealthy, "build03", 0.6))
	e, d := healthEnv(t, "", src) // the default mode is report
	before := d.cache.Snapshot()
	ts := evaluate(t, e, d, 3)
	if !slicesContainTransition(ts, "build03", health.Unknown, health.Unhealthy) {
		t.Fatalf("transitions %+v, want build03 unknown>unhealthy", ts)
	}
	if len(d.Drains()) != 0 || !reflect.DeepEqual(d.cache.Snapshot(), before) {
		t.Fatal("report mode drained or moved something")
	}
	states, _ := d.healthMonitor.get()
	st := states["build03"]
	if st.Mode != health.ModeReport || !strings.HasPrefix(st.Action, "would drain") || !strings.Contains(st.Reason, "60.0%") {
		t.Errorf("build03: %+v, want report mode saying it would drain, with the error share", st)
	}
	var shown *health.Status
	for _, c := range d.Clusters() {
		if c.Name == "build03" {
			shown = c.Health
		}
	}
	if shown == nil || shown.State != health.Unhealthy {
		t.Errorf("Clusters shows build03's health %+v, want unhealthy", shown)
	}
	if v := e.metricValue("prowjob_dispatcher_cluster_health", "cluster", "build03", "state", "unhealthy"); v != 1 {
		t.Errorf("cluster_health{build03,unhealthy} = %v, want 1", v)
	}
	if v := e.metricValue("prowjob_dispatcher_cluster_health_transitions_total", "cluster", "build03", "to", "unhealthy"); v != 1 {
		t.Errorf("transitions to unhealthy of build03 = %v, want 1", v)
	}
}

func TestHealthActDrainsBoundedAndUndrainsOnRecovery(t *testing.T) {
	src := &fakeHealth{}
	src.set(with(with(allHealthy, "build03", 0.6), "build05", 0.6))
	e, d := healthEnv(t, health.ModeAct, src, "build05")
	if jobsOn(d, "build03") == 0 {
		t.Fatal("build03 runs no job before the drain: the test proves nothing")
	}
	evaluate(t, e, d, 3)
	os := d.Drains()
	if len(os) != 1 || os[0].Cluster != "build03" || os[0].By != HealthDrainBy || !strings.Contains(os[0].Reason, "60.0%") {
		t.Fatalf("overrides %+v, want one automatic drain (build03, the first by name) with the numbers", os)
	}
	if got := d.opts.Health.DrainTTL; !os[0].Expires.Equal(e.clock.Now().Add(got)) {
		t.Errorf("expires %s, want now + %s", os[0].Expires, got)
	}
	states, _ := d.healthMonitor.get()
	if a := states["build05"].Action; !strings.Contains(a, "the most allowed at once is 1") {
		t.Errorf("build05's action %q, want a refusal by the bound", a)
	}
	if n := jobsOn(d, "build03"); n != 0 {
		t.Errorf("build03 still runs %d jobs while drained", n)
	}
	// build03 recovers; build05 is still unhealthy and now may be drained.
	src.set(with(allHealthy, "build05", 0.6))
	evaluate(t, e, d, 1)
	if os := d.Drains(); len(os) != 1 || os[0].Cluster != "build03" {
		t.Fatalf("overrides %+v after one healthy minute: want build03 still drained (dwell)", os)
	}
	evaluate(t, e, d, 2)
	os = d.Drains()
	if len(os) != 1 || os[0].Cluster != "build05" || os[0].By != HealthDrainBy {
		t.Fatalf("overrides %+v, want build03 undrained after the dwell and build05 drained in its place", os)
	}
	if n := jobsOn(d, "build03"); n == 0 {
		t.Errorf("no job returned to build03 after its drain was cancelled")
	}
	src.set(allHealthy)
	evaluate(t, e, d, 3)
	if os := d.Drains(); len(os) != 0 {
		t.Fatalf("overrides %+v after recovery, want none", os)
	}
	if v := e.metricValue("prowjob_dispatcher_health_actions_total", "mode", "act", "action", "undrain"); v != 2 {
		t.Errorf("undrains = %v, want 2", v)
	}
}

func TestHealthActNeverStrandsNorTouchesAnOperatorDrain(t *testing.T) {
	src := &fakeHealth{}
	src.set(with(allHealthy, "build01", 0.6)) // build01 is the only arm64 cluster
	e, d := healthEnv(t, health.ModeAct, src)
	evaluate(t, e, d, 3)
	states, _ := d.healthMonitor.get()
	if os := d.Drains(); len(os) != 0 {
		t.Fatalf("overrides %+v: the last arm64 cluster was drained", os)
	}
	if a := states["build01"].Action; !strings.Contains(a, "need what no other usable cluster has") {
		t.Errorf("build01's action %q, want a refusal for stranded jobs", a)
	}

	// An operator's cap of build03 is not replaced by an automatic drain.
	if _, err := d.Drain(context.Background(), DrainRequest{Cluster: "build03", Capacity: 40, TTL: time.Hour, Reason: "half the nodes", By: "bob"}); err != nil {
		t.Fatal(err)
	}
	src.set(with(allHealthy, "build03", 0.6))
	evaluate(t, e, d, 3)
	if os := d.Drains(); len(os) != 1 || os[0].By != "bob" || os[0].Capacity != 40 {
		t.Fatalf("overrides %+v, want bob's cap untouched", os)
	}
	if states, _ := d.healthMonitor.get(); !strings.Contains(states["build03"].Action, "left alone: capped to 40 by bob") {
		t.Errorf("build03's action %q, want it left alone", states["build03"].Action)
	}
	if _, err := d.Undrain(context.Background(), "build03", "bob"); err != nil {
		t.Fatal(err)
	}

	// An operator's drain of build03 outlives build03's recovery.
	if _, err := d.Drain(context.Background(), DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "upgrade", By: "alice"}); err != nil {
		t.Fatal(err)
	}
	src.set(with(allHealthy, "build03", 0.6))
	evaluate(t, e, d, 3)
	src.set(allHealthy)
	evaluate(t, e, d, 3)
	os := d.Drains()
	if len(os) != 1 || os[0].By != "alice" || os[0].Reason != "upgrade" {
		t.Errorf("overrides %+v, want alice's drain untouched", os)
	}
}

func TestHealthFailingSourceKeepsStates(t *testing.T) {
	src := &fakeHealth{}
	src.set(with(allHealthy, "build03", 0.6))
	e, d := healthEnv(t, health.ModeAct, src)
	evaluate(t, e, d, 3)
	before, _ := d.healthMonitor.get()
	src.mu.Lock()
	src.err = errors.New("connection refused")
	src.mu.Unlock()
	for range 5 {
		e.clock.SetTime(e.clock.Now().Add(time.Minute))
		if _, err := d.evaluateHealth(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("evaluateHealth: %v, want the source's error", err)
		}
	}
	after, msg := d.healthMonitor.get()
	if !reflect.DeepEqual(before, after) || !strings.Contains(msg, "connection refused") {
		t.Errorf("a failing source changed the states or hid its error (%q)", msg)
	}
	if st := d.Status(); !st.Ready || !strings.Contains(st.HealthError, "connection refused") {
		t.Errorf("status %+v, want ready with the health error", st)
	}
	src.mu.Lock()
	src.err = nil
	src.mu.Unlock()
	evaluate(t, e, d, 1)
	if st := d.Status(); st.HealthError != "" {
		t.Errorf("health error %q after a good evaluation, want none", st.HealthError)
	}
	if os := d.Drains(); len(os) != 1 || os[0].Cluster != "build03" {
		t.Errorf("overrides %+v, want build03's drain kept", os)
	}
	if v := e.metricValue("prowjob_dispatcher_health_query_errors_total"); v != 5 {
		t.Errorf("health_query_errors_total = %v, want 5", v)
	}
}

// recordedEvents keeps the transitions told to HealthEvents.
type recordedEvents struct {
	mu   sync.Mutex
	seen []string
}

func (r *recordedEvents) HealthTransition(t health.Transition, mode health.Mode, action string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, t.Cluster+" "+string(t.From)+">"+string(t.To)+" "+string(mode)+": "+action)
}

func TestHealthEventsPerTransition(t *testing.T) {
	src := &fakeHealth{}
	src.set(with(allHealthy, "build03", 0.6))
	e := newEnv(t)
	opts := e.options()
	th := health.DefaultThresholds()
	th.Dwell = 0
	events := &recordedEvents{}
	opts.Health = HealthOptions{Source: src, Mode: health.ModeAct, Thresholds: th, Events: events}
	d := e.newDispatcher(opts)
	e.dispatch(d)
	evaluate(t, e, d, 2) // the second evaluation changes nothing: no event
	events.mu.Lock()
	defer events.mu.Unlock()
	var build03 []string
	for _, s := range events.seen {
		if strings.HasPrefix(s, "build03 ") {
			build03 = append(build03, s)
		}
	}
	if len(events.seen) != 4 || len(build03) != 1 || !strings.HasPrefix(build03[0], "build03 unknown>unhealthy act: drained automatically for 6h0m0s") {
		t.Errorf("events %q, want one per cluster, build03's with its drain", events.seen)
	}
}

func TestHealthOffEvaluatesNothing(t *testing.T) {
	src := &fakeHealth{}
	src.set(with(allHealthy, "build03", 0.6))
	e, d := healthEnv(t, health.ModeOff, src)
	evaluate(t, e, d, 3)
	if states, _ := d.healthMonitor.get(); states != nil || len(d.Drains()) != 0 {
		t.Errorf("health off: states %+v, overrides %+v; want none", states, d.Drains())
	}
}

func slicesContainTransition(ts []health.Transition, c string, from, to health.State) bool {
	for _, t := range ts {
		if t.Cluster == c && t.From == from && t.To == to {
			return true
		}
	}
	return false
}

func TestHealthActBoundedByCapacityShare(t *testing.T) {
	src := &fakeHealth{}
	src.set(with(with(allHealthy, "build03", 0.6), "build05", 0.6))
	e := newEnv(t)
	writeFile(t, e.clusterConfig, "aws:\n- name: build01\n  capabilities: [arm64]\n- name: build03\n  capacity: 50\n- name: build05\ngcp:\n- name: build02\n  capabilities: [kvm]\n")
	opts := e.options()
	th := health.DefaultThresholds()
	th.Dwell = 0
	// Capacity 350: build03 (50) is 14 %, build03 and build05 (150) 43 %.
	opts.Health = HealthOptions{Source: src, Mode: health.ModeAct, Thresholds: th, MaxDrained: 3, MaxDrainedShare: 0.25}
	d := e.newDispatcher(opts)
	e.dispatch(d)
	evaluate(t, e, d, 1)
	os := d.Drains()
	if len(os) != 1 || os[0].Cluster != "build03" {
		t.Fatalf("overrides %+v, want build03 only", os)
	}
	states, _ := d.healthMonitor.get()
	if a := states["build05"].Action; !strings.Contains(a, "43% of the capacity, over the 25% allowed") {
		t.Errorf("build05's action %q, want a refusal by the capacity share", a)
	}
}

// TestRunEvaluatesHealthEveryInterval: the dispatch loop evaluates health
// on its own every Options.Health.Interval.
func TestRunEvaluatesHealthEveryInterval(t *testing.T) {
	src := &fakeHealth{}
	src.set(with(allHealthy, "build03", 0.6))
	e := newEnv(t)
	opts := e.options()
	th := health.DefaultThresholds()
	th.Dwell = 0
	opts.Health = HealthOptions{Source: src, Interval: 10 * time.Millisecond, Thresholds: th}
	d := e.newDispatcher(opts)
	e.dispatch(d)
	startRun(t, d)
	eventually(t, "build03 judged unhealthy by the loop", func() bool {
		states, _ := d.healthMonitor.get()
		return states["build03"].State == health.Unhealthy
	})
	if len(d.Drains()) != 0 {
		t.Errorf("report mode (the default) drained: %+v", d.Drains())
	}
}

// TestHealthDrainTTLDefaultsWithinMaxDrainTTL: a --max-drain-ttl shorter
// than the default automatic drain TTL shortens it, and does not refuse the start.
func TestHealthDrainTTLDefaultsWithinMaxDrainTTL(t *testing.T) {
	e := newEnv(t)
	opts := e.options()
	opts.MaxDrainTTL = time.Hour
	opts.Health = HealthOptions{Source: &fakeHealth{}}
	d := e.newDispatcher(opts)
	if got := d.opts.Health.DrainTTL; got != time.Hour {
		t.Errorf("automatic drain TTL %s, want the 1h of MaxDrainTTL", got)
	}
	opts = e.options()
	opts.MaxDrainTTL = time.Hour
	opts.Health = HealthOptions{Source: &fakeHealth{}, DrainTTL: 2 * time.Hour}
	if _, err := New(context.Background(), opts, e.files()); err == nil || !strings.Contains(err.Error(), "over the maximum drain TTL") {
		t.Errorf("New with a health drain TTL over MaxDrainTTL: %v, want a refusal", err)
	}
}

// TestUndrainByHealthCancelsOnlyAnAutomaticDrain: failover undrains
// through Undrain with HealthDrainBy, which never cancels an operator's
// drain (not found), and counts its run as health-undrain.
func TestUndrainByHealthCancelsOnlyAnAutomaticDrain(t *testing.T) {
	ctx := context.Background()
	src := &fakeHealth{}
	src.set(allHealthy)
	e, d := healthEnv(t, health.ModeAct, src, "build05")
	if _, err := d.Drain(ctx, DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "upgrade", By: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Undrain(ctx, "build03", HealthDrainBy); !errors.Is(err, ErrNotFound) {
		t.Errorf("health undraining alice's drain: %v, want ErrNotFound", err)
	}
	if os := d.Drains(); len(os) != 1 || os[0].By != "alice" {
		t.Fatalf("overrides %+v, want alice's drain kept", os)
	}
	if _, err := d.Drain(ctx, DrainRequest{Cluster: "build05", TTL: time.Hour, Reason: "unhealthy: test", By: HealthDrainBy}); err != nil {
		t.Fatal(err)
	}
	before := engineRuns(e, "health-undrain")
	if _, err := d.Undrain(ctx, "build05", HealthDrainBy); err != nil {
		t.Fatalf("health undraining its own drain: %v", err)
	}
	if os := d.Drains(); len(os) != 1 || os[0].Cluster != "build03" {
		t.Errorf("overrides %+v, want only alice's drain of build03", os)
	}
	if n := engineRuns(e, "health-undrain") - before; n != 1 {
		t.Errorf("engine_runs_total{operation=health-undrain} grew by %v, want 1", n)
	}
}
