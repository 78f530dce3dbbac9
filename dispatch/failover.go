package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
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

// The actions of health-driven failover, the "action" label of health_actions_total.
const (
	healthDrain           = "drain"
	healthRenew           = "renew"
	healthUndrain         = "undrain"
	healthRefusedBound    = "refused_bound"
	healthRefusedStranded = "refused_stranded"
	healthFailed          = "failed"
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

// Health returns each build cluster's health at the last evaluation and
// the last evaluation's error; nil before the first evaluation or with health off.
func (d *Dispatcher) Health() (map[string]health.Status, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.health), d.healthError
}

// evaluateHealth queries the health source, judges every cluster of the
// cluster config and, in act mode, drains the unhealthy (within the bounds,
// never stranding a job) and undrains the recovered. A failing source
// changes nothing: the states are kept and the error is reported. Callers hold no lock.
func (d *Dispatcher) evaluateHealth(ctx context.Context) ([]health.Transition, error) {
	ho := d.opts.Health
	if !ho.enabled() || d.needInputs("health") != nil {
		return nil, nil
	}
	samples, err := ho.Source.Samples(ctx)
	now := d.clock.Now()
	if err != nil {
		err = fmt.Errorf("health evaluation: %w", err)
		d.healthMetrics.failed()
		d.log.Error(err, "Cluster health not evaluated: states kept, nothing drained or undrained")
		d.mu.Lock()
		d.healthError = err.Error()
		d.mu.Unlock()
		return nil, err
	}
	in := d.in.Load()
	var names []string
	for _, c := range in.clusters.All() {
		names = append(names, c.Name)
	}
	d.mu.Lock()
	prev := make(map[string]health.ClusterState, len(d.health))
	prevActions := make(map[string]string, len(d.health))
	for c, st := range d.health {
		prev[c], prevActions[c] = st.ClusterState, st.Action
	}
	next, transitions := health.Evaluate(names, samples, prev, now, ho.Thresholds)
	overrides := maps.Clone(d.clusterOverrides)
	d.healthError = ""
	d.mu.Unlock()

	for _, t := range transitions {
		d.log.Info("Cluster health changed", "cluster", t.Cluster, "from", t.From, "to", t.To, "reason", t.Reason, "mode", ho.Mode)
	}
	publish := func(actions map[string]string) map[string]health.Status {
		states := make(map[string]health.Status, len(next))
		for c, st := range next {
			states[c] = health.Status{ClusterState: st, Mode: ho.Mode, Action: actions[c], Evaluated: now}
		}
		d.mu.Lock()
		d.health = states
		d.mu.Unlock()
		return states
	}
	// In act mode the new states are shown before any drain changes, so a
	// reader never sees a drain cancelled for a cluster still shown
	// unhealthy; the actions (the previous ones until then) follow once
	// taken. Report mode changes nothing, so states and actions show at once.
	if ho.Mode == health.ModeAct {
		publish(prevActions)
	}
	actions := d.healthActions(ctx, in.clusters.All(), next, overrides)
	states := publish(actions)
	d.healthMetrics.record(states, transitions)
	if ho.Events != nil {
		for _, t := range transitions {
			ho.Events.HealthTransition(t, ho.Mode, actions[t.Cluster])
		}
	}
	return transitions, nil
}

// healthActions drains, renews and undrains as the states ask (in report
// mode it only says what it would do) and returns what it did per cluster.
func (d *Dispatcher) healthActions(ctx context.Context, clusters []config.Cluster, states map[string]health.ClusterState, overrides map[string]table.ClusterOverride) map[string]string {
	ho := d.opts.Health
	now := d.clock.Now()
	act := ho.Mode == health.ModeAct
	actions := map[string]string{}
	capacity := map[string]int{}
	blocked := map[string]bool{}
	total := 0
	for _, c := range clusters {
		capacity[c.Name] = c.Capacity
		blocked[c.Name] = c.Blocked
		if !c.Blocked {
			total += c.Capacity
		}
	}
	drained := map[string]bool{} // the automatic drains in force
	for c, o := range overrides {
		if o.By == HealthDrainBy && o.Drain() && o.Active(now) {
			drained[c] = true
		}
	}
	note := func(c, action, text string) {
		actions[c] = text
		d.healthMetrics.action(ho.Mode, action)
		if action != healthRenew {
			d.log.Info("Health failover: "+text, "cluster", c, "mode", ho.Mode, "action", action)
		}
	}
	would := func(s string) string {
		if act {
			return s
		}
		return "would " + s + " (report mode)"
	}
	for _, c := range slices.Sorted(maps.Keys(states)) {
		st := states[c]
		o, overridden := overrides[c]
		switch {
		case st.State == health.Unhealthy && st.Evidence == health.Unhealthy && drained[c]:
			if !act {
				actions[c] = "drained automatically; renewing is left to act mode"
				continue
			}
			if o.Expires.Sub(now) > ho.DrainTTL/2 {
				actions[c] = "drained automatically until " + o.Expires.UTC().Format("2006-01-02T15:04:05Z")
				continue
			}
			if _, err := d.Drain(ctx, DrainRequest{Cluster: c, TTL: ho.DrainTTL, By: HealthDrainBy, Reason: "unhealthy: " + st.Reason}); err != nil {
				note(c, healthFailed, fmt.Sprintf("renewing the automatic drain failed: %v", err))
				continue
			}
			note(c, healthRenew, "automatic drain renewed for "+ho.DrainTTL.String())
		case st.State == health.Unhealthy && blocked[c]:
			actions[c] = "left alone: blocked by the cluster config"
		case st.State == health.Unhealthy && st.Evidence == health.Unhealthy && overridden && o.By != HealthDrainBy:
			what := "drained"
			if !o.Drain() {
				what = fmt.Sprintf("capped to %d", o.Capacity)
			}
			actions[c] = fmt.Sprintf("left alone: %s by %s: %s", what, o.By, o.Reason)
		case st.State == health.Unhealthy && st.Evidence == health.Unhealthy:
			share := 0.0
			if total > 0 {
				for dc := range drained {
					share += float64(capacity[dc])
				}
				share = (share + float64(capacity[c])) / float64(total)
			}
			if len(drained) >= ho.MaxDrained {
				note(c, healthRefusedBound, fmt.Sprintf("not drained: %d cluster(s) already drained automatically, the most allowed at once is %d", len(drained), ho.MaxDrained))
				continue
			}
			if ho.MaxDrainedShare > 0 && share > ho.MaxDrainedShare {
				note(c, healthRefusedBound, fmt.Sprintf("not drained: automatic drains would take %.0f%% of the capacity, over the %.0f%% allowed", 100*share, 100*ho.MaxDrainedShare))
				continue
			}
			// One engine run: the preview in report mode, the drain itself
			// (refused when it would strand jobs) in act mode.
			req := DrainRequest{Cluster: c, TTL: ho.DrainTTL, By: HealthDrainBy, Reason: "unhealthy: " + st.Reason}
			apply := d.PreviewDrain
			if act {
				apply = d.Drain
			}
			plan, err := apply(ctx, req)
			if err == nil && len(plan.Stranded) > 0 { // a preview lists them
				err = ErrStranded
			}
			switch {
			case errors.Is(err, ErrStranded) && plan != nil:
				note(c, healthRefusedStranded, fmt.Sprintf("not drained: %d job(s) need what no other usable cluster has: %s", len(plan.Stranded), strandedNames(plan.Stranded, 5)))
				continue
			case err != nil && plan == nil:
				note(c, healthFailed, fmt.Sprintf("not drained: %v", err))
				continue
			case !act:
				drained[c] = true // counts toward the bounds as it would in act mode
				note(c, healthDrain, would(fmt.Sprintf("drain for %s, moving %d job(s)", ho.DrainTTL, len(plan.Moves))))
				continue
			}
			drained[c] = true
			note(c, healthDrain, fmt.Sprintf("drained automatically for %s, moving %d job(s)", ho.DrainTTL, len(plan.Moves)))
		case st.State == health.Healthy && drained[c]:
			if !act {
				note(c, healthUndrain, would("cancel the automatic drain"))
				continue
			}
			if err := d.undrainHealth(ctx, c); err != nil {
				note(c, healthFailed, fmt.Sprintf("cancelling the automatic drain failed: %v", err))
				continue
			}
			delete(drained, c)
			note(c, healthUndrain, "healthy again: automatic drain cancelled; jobs return within the move budget")
		case drained[c]:
			actions[c] = "drained automatically until " + o.Expires.UTC().Format("2006-01-02T15:04:05Z") + " (no evidence of recovery yet)"
		}
	}
	return actions
}

// undrainHealth cancels the cluster's drain if it is still an automatic
// one: an operator's drain set since is never touched.
func (d *Dispatcher) undrainHealth(ctx context.Context, cluster string) error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	o, ok := d.clusterOverrides[cluster]
	if !ok || o.By != HealthDrainBy {
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	if err := d.deleteSharedClusterOverride(ctx, cluster); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.clusterOverrides, cluster)
	d.mu.Unlock()
	d.log.Info("Cluster override cancelled", "cluster", cluster, "by", HealthDrainBy, "was", o.Reason)
	_, err := d.afterClusterOverrideChange("health-undrain", "undrain "+cluster)
	return err
}
