package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// DefaultMaxDrainTTL bounds how long a drain or capacity cap may last.
const DefaultMaxDrainTTL = 7 * 24 * time.Hour

// ErrStranded: a drain would leave jobs that no other usable cluster can
// run (the cluster is the last with a capability they need); it is refused
// unless forced (HTTP 409).
var ErrStranded = errors.New("would strand jobs")

// DrainRequest drains a cluster of the cluster config (every job that can
// move leaves it and no job is balanced onto it) or, with Capacity above 0,
// caps its capacity, for TTL.
type DrainRequest struct {
	Cluster string
	// Capacity, when above 0, caps the capacity instead of draining.
	Capacity int
	// TTL is how long the override lasts: required, MinTTL to Options.MaxDrainTTL.
	TTL        time.Duration
	Reason, By string
	// Force drains even when jobs would be stranded (see ErrStranded).
	Force bool
}

// DrainPlan is what a drain or cap does to the table in force.
type DrainPlan struct {
	// Override is the cluster override the plan applies.
	Override table.Drain `json:"override"`
	// Moves are the jobs whose cluster changes, sorted by job.
	Moves []engine.Move `json:"moves,omitempty"`
	// To sums the moves by the cluster they go to.
	To map[string]Flow `json:"to,omitempty"`
	// Staying are the jobs that stay on a drained cluster, with why.
	Staying []StayingJob `json:"staying,omitempty"`
	// Stranded are the jobs that would need what no usable cluster has
	// once the override applies, and did not before.
	Stranded []engine.Unplaceable `json:"stranded,omitempty"`
	// Unconfirmed, for a drain applied with shared state, are the live
	// replicas that had not confirmed it in force when Drain returned.
	Unconfirmed []string `json:"unconfirmed,omitempty"`
}

// Flow is the jobs and demand a plan moves to one cluster.
type Flow struct {
	Jobs   int     `json:"jobs"`
	Demand float64 `json:"demand"`
}

// StayingJob is a job that cannot leave a drained cluster.
type StayingJob struct {
	Job    string       `json:"job"`
	Reason table.Reason `json:"reason"`
	Detail string       `json:"detail"`
}

// PreviewDrain computes what Drain would do, changing nothing. It refuses
// what Drain refuses, except stranded jobs, which it lists. Like WhatIf it
// runs on a snapshot, without the locks that admissions and operations
// take, within Options.PreviewTimeout.
func (d *Dispatcher) PreviewDrain(ctx context.Context, req DrainRequest) (*DrainPlan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.needInputs("drain " + req.Cluster); err != nil {
		return nil, err
	}
	ctx, done, err := d.startPreview(ctx, "drain "+req.Cluster+" preview")
	if err != nil {
		return nil, err
	}
	defer done()
	plan, _, _, err := d.planDrain(ctx, "drain-preview", req)
	return plan, d.previewError(ctx, "drain "+req.Cluster+" preview", err)
}

// Drain applies a drain or capacity cap at once: jobs move off (or, for a
// cap, rebalance) in a dispatch on the inputs in force, and the override is
// saved before Drain returns. It is refused (ErrInvalid) for a cluster
// outside the cluster config, a TTL out of range, a missing reason or a
// capacity out of 1..100, with ErrNotReady before the first table, and with
// ErrStranded when jobs would be stranded and req.Force is not set. An
// override in force but not saved wraps ErrNotSaved. A follower refuses it
// while another replica leads (ErrNotLeader).
func (d *Dispatcher) Drain(ctx context.Context, req DrainRequest) (*DrainPlan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.leaderOnly("drain " + req.Cluster); err != nil {
		return nil, err
	}
	if err := d.needInputs("drain " + req.Cluster); err != nil {
		return nil, err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	plan, run, st, err := d.planDrain(ctx, drainOperation(req), req)
	if err != nil {
		return nil, err
	}
	if len(plan.Stranded) > 0 && !req.Force {
		return plan, fmt.Errorf("drain %s: %w: %d job(s) need what no other usable cluster has: %s; force to drain anyway",
			req.Cluster, ErrStranded, len(plan.Stranded), strandedNames(plan.Stranded, 10))
	}
	// Shared first: a drain is in force only once every replica can see it.
	if err := d.state.PutDrain(ctx, plan.Override); err != nil {
		return nil, fmt.Errorf("drain %s: not done: %w: %w", req.Cluster, ErrNotSaved, err)
	}
	// The plan's engine run, committed.
	d.mu.Lock()
	d.drains[req.Cluster] = plan.Override
	d.commitLocked(d.in.Load(), run, st)
	d.mu.Unlock()
	if _, _, err := d.committed(run); err != nil && !errors.Is(err, ErrNotSaved) {
		d.log.Error(err, "Drain: the override is in force, the dispatch that applies it failed", "cluster", req.Cluster)
	}
	if plan.Override.Drain() {
		// Acknowledged once every live replica answers from it: followers
		// move the drained cluster's jobs as soon as they see the drain.
		unconfirmed, err := d.state.ConfirmDrain(ctx, plan.Override)
		if err != nil || len(unconfirmed) > 0 {
			plan.Unconfirmed = unconfirmed
			d.log.Info("Drain acknowledged before every replica confirmed it in force", "cluster", req.Cluster, "unconfirmed", unconfirmed, "error", err)
		}
	}
	d.log.Info("Cluster override", "cluster", req.Cluster, "drain", plan.Override.Drain(), "capacity", plan.Override.Capacity,
		"expires", plan.Override.Expires, "by", req.By, "reason", req.Reason, "moved", len(plan.Moves), "stranded", len(plan.Stranded))
	if err := d.saveDrains(); err != nil {
		return plan, fmt.Errorf("drain %s: in force, but %w", req.Cluster, err)
	}
	return plan, nil
}

// Undrain cancels the cluster's drain or cap; its jobs flow back as
// balancing moves them (within the move budget). A cluster without one wraps
// ErrNotFound, and so does one without an automatic drain when by is
// HealthDrainBy: health-driven failover never cancels an operator's. A
// follower refuses it while another replica leads (ErrNotLeader).
func (d *Dispatcher) Undrain(ctx context.Context, cluster, by string) (*engine.Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.leaderOnly("undrain " + cluster); err != nil {
		return nil, err
	}
	if err := d.needInputs("undrain " + cluster); err != nil {
		return nil, err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	o, ok := d.drains[cluster]
	d.mu.Unlock()
	switch {
	case !ok:
		return nil, fmt.Errorf("undrain: cluster %q has no drain or capacity cap: %w", cluster, ErrNotFound)
	case by == HealthDrainBy && o.By != HealthDrainBy:
		return nil, fmt.Errorf("undrain: cluster %q has no automatic drain (%s's is left alone): %w", cluster, o.By, ErrNotFound)
	}
	if err := d.deleteSharedDrain(ctx, cluster); err != nil {
		return nil, fmt.Errorf("undrain %s: not done: %w", cluster, err)
	}
	d.mu.Lock()
	delete(d.drains, cluster)
	d.mu.Unlock()
	d.log.Info("Cluster override cancelled", "cluster", cluster, "by", by, "was", o.Reason)
	operation := "undrain"
	if by == HealthDrainBy {
		operation = "health-undrain"
	}
	return d.afterDrainChange(operation, "undrain "+cluster)
}

// deleteSharedDrain removes the cluster's drain or cap from the
// shared state; the error wraps ErrNotSaved.
func (d *Dispatcher) deleteSharedDrain(ctx context.Context, cluster string) error {
	if err := d.state.DeleteDrain(ctx, cluster); err != nil {
		return fmt.Errorf("%w: %w", ErrNotSaved, err)
	}
	return nil
}

// Drains returns the drains and caps in force, sorted by cluster.
func (d *Dispatcher) Drains() []table.Drain {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.drainsLocked()
}

func (d *Dispatcher) drainsLocked() []table.Drain {
	out := make([]table.Drain, 0, len(d.drains))
	for _, c := range slices.Sorted(maps.Keys(d.drains)) {
		out = append(out, d.drains[c])
	}
	return out
}

// expireDrains drops the drains and caps past their expiry and,
// if any, redispatches so that jobs flow back. Callers hold no lock.
func (d *Dispatcher) expireDrains() (int, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	now := d.clock.Now()
	var expired []string
	for c, o := range d.drains {
		if !o.Active(now) {
			expired = append(expired, c)
			delete(d.drains, c)
		}
	}
	d.mu.Unlock()
	if len(expired) == 0 {
		return 0, nil
	}
	slices.Sort(expired)
	d.log.Info("Cluster overrides expired", "clusters", expired)
	_, err := d.afterDrainChange("expiry", "expiry of "+strings.Join(expired, ", "))
	return len(expired), err
}

// afterDrainChange redispatches on the inputs in force and saves
// the cluster overrides. Callers hold opMu.
func (d *Dispatcher) afterDrainChange(operation, what string) (*engine.Report, error) {
	report, _, err := d.redispatch(operation, d.in.Load())
	if err != nil && !errors.Is(err, ErrNotSaved) {
		d.log.Error(err, "Dispatch after "+what+" failed: the next one applies it")
		err = fmt.Errorf("%s is in force, but the dispatch that applies it failed (the next one will): %w", what, err)
	}
	if serr := d.saveDrains(); serr != nil {
		return report, fmt.Errorf("%s: in force, but %w", what, serr)
	}
	return report, err
}

// planDrain validates req and computes its plan, and the engine run that
// commits it, on a snapshot of the core (Snapshot.planDrain); st is the
// snapshot's state, for the commit.
func (d *Dispatcher) planDrain(ctx context.Context, operation string, req DrainRequest) (_ *DrainPlan, _ *engineRun, st *runState, _ error) {
	s := d.Snapshot()
	if err := s.validateDrain(req); err != nil {
		return nil, nil, nil, err
	}
	if len(s.Table().Assignments) == 0 {
		return nil, nil, nil, fmt.Errorf("drain %s: no assignment table yet: %w", req.Cluster, ErrNotReady)
	}
	now := d.state.Stamp(d.clock.Now()) // what the state keeps, so every replica holds the same override
	o := table.Drain{Cluster: req.Cluster, Capacity: req.Capacity, Reason: req.Reason, By: req.By, CreatedAt: now, Expires: now.Add(req.TTL)}
	plan, run, err := s.planDrain(ctx, operation, o)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("drain %s: %w", req.Cluster, err)
	}
	return plan, run, s.st, nil
}

// drainOperation names req's operation in engine_runs_total.
func drainOperation(req DrainRequest) string {
	switch {
	case req.By == HealthDrainBy:
		return "health-drain"
	case req.Capacity > 0:
		return "cap"
	}
	return "drain"
}

// validateDrain refuses what no drain of the snapshot's clusters can mean.
func (s *Snapshot) validateDrain(req DrainRequest) error {
	in := s.in
	c := req.Cluster
	_, inConfig := in.clusters.Get(c)
	max := s.opts.MaxDrainTTL
	switch {
	case c == "":
		return fmt.Errorf("drain: no cluster: %w", ErrInvalid)
	case !inConfig && s.isServiceCluster(c):
		return fmt.Errorf("drain %s: a service cluster (named by the dispatcher config, not in the cluster config) runs exactly the jobs that name it; only clusters of the cluster config can be drained: %w", c, ErrInvalid)
	case !inConfig && in.manual[c]:
		return fmt.Errorf("drain %s: a manual cluster takes no balanced jobs; only clusters of the cluster config can be drained: %w", c, ErrInvalid)
	case !inConfig:
		return fmt.Errorf("drain: cluster %q is not in the cluster config %s: %w", c, s.opts.ClusterConfigPath, ErrNotFound)
	case strings.TrimSpace(req.Reason) == "":
		return fmt.Errorf("drain %s: a reason is required: %w", c, ErrInvalid)
	case req.TTL == 0:
		return fmt.Errorf("drain %s: no ttl: want a duration of %s to %s (drains always expire): %w", c, MinTTL, max, ErrInvalid)
	case req.Capacity < 0 || req.Capacity > 100:
		return fmt.Errorf("drain %s: capacity %d not in 1..100 (0 drains): %w", c, req.Capacity, ErrInvalid)
	}
	return checkTTL("drain "+c, req.TTL, max)
}

// isServiceCluster reports whether the engine in force or the snapshot's
// configs know name as a service cluster.
func (s *Snapshot) isServiceCluster(name string) bool {
	return slices.Contains(s.services, name) || slices.ContainsFunc(config.ServiceClusters(s.in.config, s.in.clusters), func(sc config.ServiceCluster) bool { return sc.Name == name })
}

func strandedNames(us []engine.Unplaceable, n int) string {
	names := make([]string, 0, min(len(us), n))
	for _, u := range us[:min(len(us), n)] {
		names = append(names, u.Job+" ("+u.Problem+")")
	}
	if len(us) > n {
		names = append(names, fmt.Sprintf("and %d more", len(us)-n))
	}
	return strings.Join(names, ", ")
}
