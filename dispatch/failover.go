package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/failover"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// healthMetrics are the collectors of health-driven failover. A nil one records nothing.
type healthMetrics struct {
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	errors      prometheus.Counter
	actions     *prometheus.CounterVec
}

func newHealthMetrics(reg prometheus.Registerer) (*healthMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &healthMetrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: metricPrefix + "cluster_health", Help: "1 for each cluster's health state (unknown, healthy, unhealthy) at the last evaluation.",
		}, []string{"cluster", "state"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "cluster_health_transitions_total", Help: "Changes of a cluster's health state.",
		}, []string{"cluster", "from", "to"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricPrefix + "health_query_errors_total", Help: "Failed health evaluations (no state changed, nothing was drained).",
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "health_actions_total", Help: "What health-driven failover did or, in report mode, would have done, by mode and action.",
		}, []string{"mode", "action"}),
	}
	for _, c := range []prometheus.Collector{m.state, m.transitions, m.errors, m.actions} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering health metrics: %w", err)
		}
	}
	return m, nil
}

// The outcomes of health-driven failover besides failover.Plan's kinds, in
// the "action" label of health_actions_total.
const (
	healthRefusedStranded failover.Kind = "refused_stranded"
	healthFailed          failover.Kind = "failed"
)

func (m *healthMetrics) record(states map[string]health.Status, ts []health.Transition) {
	if m == nil {
		return
	}
	m.state.Reset()
	for c, st := range states {
		m.state.WithLabelValues(c, string(st.State)).Set(1)
	}
	for _, t := range ts {
		m.transitions.WithLabelValues(t.Cluster, string(t.From), string(t.To)).Inc()
	}
}

func (m *healthMetrics) action(mode health.Mode, action string) {
	if m != nil {
		m.actions.WithLabelValues(string(mode), action).Inc()
	}
}

func (m *healthMetrics) failed() {
	if m != nil {
		m.errors.Inc()
	}
}

// failoverCore is what health-driven failover asks of the core: part of
// its exported API, nothing of its state.
type failoverCore interface {
	Drain(ctx context.Context, req DrainRequest) (*DrainPlan, error)
	PreviewDrain(ctx context.Context, req DrainRequest) (*DrainPlan, error)
	Undrain(ctx context.Context, cluster, by string) (*engine.Report, error)
	Drains() []table.Drain
}

// healthFailover is health-driven failover, a client of the core: it
// judges the clusters' health, keeps the states and the last error under a
// lock of its own, and applies failover.Plan's actions through core.
type healthFailover struct {
	core    failoverCore
	opts    HealthOptions
	clock   clock.PassiveClock
	log     logr.Logger
	metrics *healthMetrics

	mu     sync.Mutex
	states map[string]health.Status // each cluster's health at the last evaluation
	err    string                   // the last evaluation's error, empty once one works
}

// get returns each build cluster's health at the last evaluation and the
// last evaluation's error; nil before the first evaluation or with health
// off. Clusters and Status show them.
func (f *healthFailover) get() (map[string]health.Status, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.states), f.err
}

func (f *healthFailover) setError(err string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *healthFailover) setStates(states map[string]health.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = states
}

// evaluateHealth evaluates the health of the clusters of the cluster
// config in force, when health is on and the configs are loaded.
func (d *Dispatcher) evaluateHealth(ctx context.Context) ([]health.Transition, error) {
	if !d.opts.Health.enabled() || d.needInputs("health") != nil {
		return nil, nil
	}
	return d.healthMonitor.evaluate(ctx, d.in.Load().clusters.All())
}

// evaluate queries the health source, judges every cluster of clusters
// and, in act mode, drains the unhealthy (within the bounds, never
// stranding a job) and undrains the recovered, as failover.Plan says. A
// failing source changes nothing: the states are kept and the error is
// reported.
func (f *healthFailover) evaluate(ctx context.Context, clusters []config.Cluster) ([]health.Transition, error) {
	ho := f.opts
	samples, err := ho.Source.Samples(ctx)
	now := f.clock.Now()
	if err != nil {
		err = fmt.Errorf("health evaluation: %w", err)
		f.metrics.failed()
		f.log.Error(err, "Cluster health not evaluated: states kept, nothing drained or undrained")
		f.setError(err.Error())
		return nil, err
	}
	var names []string
	for _, c := range clusters {
		names = append(names, c.Name)
	}
	last, _ := f.get()
	prev := make(map[string]health.ClusterState, len(last))
	prevActions := make(map[string]string, len(last))
	for c, st := range last {
		prev[c], prevActions[c] = st.ClusterState, st.Action
	}
	next, transitions := health.Evaluate(names, samples, prev, now, ho.Thresholds)
	overrides := map[string]table.Drain{}
	for _, o := range f.core.Drains() {
		overrides[o.Cluster] = o
	}
	f.setError("")

	for _, t := range transitions {
		f.log.Info("Cluster health changed", "cluster", t.Cluster, "from", t.From, "to", t.To, "reason", t.Reason, "mode", ho.Mode)
	}
	publish := func(actions map[string]string) map[string]health.Status {
		states := make(map[string]health.Status, len(next))
		for c, st := range next {
			states[c] = health.Status{ClusterState: st, Mode: ho.Mode, Action: actions[c], Evaluated: now}
		}
		f.setStates(states)
		return states
	}
	// In act mode the new states are shown before any drain changes, so a
	// reader never sees a drain cancelled for a cluster still shown
	// unhealthy; the actions (the previous ones until then) follow once
	// taken. Report mode changes nothing, so states and actions show at once.
	if ho.Mode == health.ModeAct {
		publish(prevActions)
	}
	actions := f.apply(ctx, failover.Input{
		Now: now, Act: ho.Mode == health.ModeAct, Clusters: clusters, States: next, Overrides: overrides, By: HealthDrainBy,
		Bounds: failover.Bounds{MaxDrained: ho.MaxDrained, MaxDrainedShare: ho.MaxDrainedShare, DrainTTL: ho.DrainTTL},
	})
	states := publish(actions)
	f.metrics.record(states, transitions)
	if ho.Events != nil {
		for _, t := range transitions {
			ho.Events.HealthTransition(t, ho.Mode, actions[t.Cluster])
		}
	}
	return transitions, nil
}

// apply applies the actions of failover.Plan through the core (in report
// mode a drain is only previewed, for its moves and stranded jobs) and
// returns what it did per cluster. A drain or undrain that fails is noted,
// and the clusters after it are planned again without it, so that the
// bounds count only what happened.
func (f *healthFailover) apply(ctx context.Context, in failover.Input) map[string]string {
	notes := map[string]string{}
	done := map[string]bool{}
	in.Failed = map[string]bool{}
	for again := true; again; {
		again = false
		for _, a := range failover.Plan(in) {
			if done[a.Cluster] {
				continue
			}
			done[a.Cluster] = true
			if !f.applyAction(ctx, in, a, notes) && (a.Kind == failover.Drain || a.Kind == failover.Undrain) {
				in.Failed[a.Cluster], again = true, true
				break
			}
		}
	}
	return notes
}

// applyAction applies a, notes what it did in notes and reports whether
// it did what a asks.
func (f *healthFailover) applyAction(ctx context.Context, in failover.Input, a failover.Action, notes map[string]string) bool {
	mode := f.opts.Mode
	c := a.Cluster
	note := func(action failover.Kind, text string) {
		notes[c] = text
		f.metrics.action(mode, string(action))
		if action != failover.Renew {
			f.log.Info("Health failover: "+text, "cluster", c, "mode", mode, "action", action)
		}
	}
	req := DrainRequest{Cluster: c, TTL: in.Bounds.DrainTTL, By: in.By, Reason: a.Reason}
	switch a.Kind {
	case failover.None:
		notes[c] = a.Note
	case failover.RefusedBound:
		note(a.Kind, a.Note)
	case failover.Renew:
		if _, err := f.core.Drain(ctx, req); err != nil {
			note(healthFailed, fmt.Sprintf("renewing the automatic drain failed: %v", err))
			return false
		}
		note(a.Kind, a.Note)
	case failover.Undrain:
		if in.Act {
			// Undrain by HealthDrainBy cancels an automatic drain only: an
			// operator's drain set meanwhile is left, and one gone is done.
			if _, err := f.core.Undrain(ctx, c, in.By); err != nil && !errors.Is(err, ErrNotFound) {
				note(healthFailed, fmt.Sprintf("cancelling the automatic drain failed: %v", err))
				return false
			}
		}
		note(a.Kind, a.Note)
	case failover.Drain:
		// One engine run: the preview in report mode, the drain itself
		// (refused when it would strand jobs) in act mode.
		apply := f.core.PreviewDrain
		if in.Act {
			apply = f.core.Drain
		}
		plan, err := apply(ctx, req)
		if err == nil && len(plan.Stranded) > 0 { // a preview lists them
			err = ErrStranded
		}
		switch {
		case errors.Is(err, ErrStranded) && plan != nil:
			note(healthRefusedStranded, fmt.Sprintf("not drained: %d job(s) need what no other usable cluster has: %s", len(plan.Stranded), strandedNames(plan.Stranded, 5)))
			return false
		case err != nil && plan == nil:
			note(healthFailed, fmt.Sprintf("not drained: %v", err))
			return false
		case !in.Act:
			note(a.Kind, fmt.Sprintf("would drain for %s, moving %d job(s) (report mode)", in.Bounds.DrainTTL, len(plan.Moves)))
		default:
			note(a.Kind, fmt.Sprintf("drained automatically for %s, moving %d job(s)", in.Bounds.DrainTTL, len(plan.Moves)))
		}
	}
	return true
}
