package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// RescheduleRequest moves a job to Cluster, or to the best other eligible
// cluster when Cluster is empty, until TTL passes or the override is
// deleted. TTL is MinTTL to Options.MaxOverrideTTL; 0 means the maximum.
type RescheduleRequest struct {
	Job, Cluster string
	TTL          time.Duration
	Reason, By   string
}

// RescheduleResult is where the job was and where it runs now.
type RescheduleResult struct {
	From, To string
	Override table.Override
}

// Reschedule creates (or replaces) the job's override, applies it to the
// table at once and saves it before returning. An unknown job wraps
// ErrNotFound; a refused request (no reason, a TTL out of bounds, a cluster that is
// unknown, blocked or lacks a capability the job needs, no other eligible
// cluster) wraps ErrInvalid with the reason. An override that could not be
// saved stays in force, and the error wraps ErrNotSaved. A follower refuses
// it while another replica leads (ErrNotLeader).
func (d *Dispatcher) Reschedule(ctx context.Context, req RescheduleRequest) (*RescheduleResult, error) {
	switch {
	case req.Job == "":
		return nil, fmt.Errorf("reschedule: no job: %w", ErrInvalid)
	case strings.TrimSpace(req.Reason) == "":
		return nil, fmt.Errorf("reschedule job %q: a reason is required: %w", req.Job, ErrInvalid)
	}
	if req.TTL == 0 {
		req.TTL = d.opts.MaxOverrideTTL
	}
	if err := checkTTL(fmt.Sprintf("reschedule job %q", req.Job), req.TTL, d.opts.MaxOverrideTTL); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reschedule job %q: %w", req.Job, err)
	}
	if err := d.leaderOnly(fmt.Sprintf("reschedule job %q", req.Job)); err != nil {
		return nil, err
	}
	if err := d.needInputs(fmt.Sprintf("reschedule job %q", req.Job)); err != nil {
		return nil, err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	// Shared first: a reschedule is in force only once every replica can see it.
	d.mu.Lock()
	o, err := d.planRescheduleLocked(req)
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := d.state.PutOverride(ctx, o); err != nil {
		return nil, fmt.Errorf("reschedule job %q: not done: %w: %w", req.Job, ErrNotSaved, err)
	}
	d.mu.Lock()
	res, err := d.rescheduleLocked(o)
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	d.log.Info("Rescheduled", "job", req.Job, "from", res.From, "to", res.To, "by", req.By, "reason", req.Reason, "expires", res.Override.Expires)
	if err := d.saveOverrides(); err != nil {
		return nil, fmt.Errorf("reschedule job %q: in force, but %w", req.Job, err)
	}
	_ = d.saveJournal() // the rows follow from the override at a restart
	return res, nil
}

// planRescheduleLocked validates req and returns the override it makes.
// Callers hold mu.
func (d *Dispatcher) planRescheduleLocked(req RescheduleRequest) (table.Override, error) {
	cur, ok := d.cache.Lookup(req.Job)
	if !ok {
		return table.Override{}, fmt.Errorf("reschedule: job %q is not in the table: %w", req.Job, ErrNotFound)
	}
	j, _ := d.job(req.Job)
	to := req.Cluster
	if to != "" {
		if err := d.eng.CanRun(j, to); err != nil {
			return table.Override{}, fmt.Errorf("reschedule: %w: %w", ErrInvalid, err)
		}
	} else {
		best, err := d.eng.Best(j, cur.Cluster)
		if err != nil {
			return table.Override{}, fmt.Errorf("reschedule: %w: %w", ErrInvalid, err)
		}
		to = best
	}
	now := d.state.Stamp(d.clock.Now()) // what the state keeps, so every replica holds the same override
	return table.Override{Job: req.Job, Cluster: to, Reason: req.Reason, By: req.By, CreatedAt: now, Expires: now.Add(req.TTL)}, nil
}

// rescheduleLocked puts the planned override o in force: the one the
// state holds, not a second plan. Callers hold mu.
func (d *Dispatcher) rescheduleLocked(o table.Override) (*RescheduleResult, error) {
	cur, ok := d.cache.Lookup(o.Job)
	if !ok {
		return nil, fmt.Errorf("reschedule: job %q is not in the table: %w", o.Job, ErrNotFound)
	}
	prev, had := d.overrides[o.Job]
	d.overrides[o.Job] = o
	a, err := d.replace("reschedule", map[string]bool{}, o.Job)
	if err != nil {
		if had {
			d.overrides[o.Job] = prev
		} else {
			delete(d.overrides, o.Job)
		}
		return nil, fmt.Errorf("reschedule: %w", err)
	}
	return &RescheduleResult{From: cur.Cluster, To: a.Cluster, Override: o}, nil
}

// replace rebuilds the engine on the current overrides and the table in
// force less the dropped jobs' rows, then places the dropped jobs and the
// named jobs anew: one placement run for operation (engine_runs_total). It returns the last placed job's row. Callers hold opMu and mu.
func (d *Dispatcher) replace(operation string, dropped map[string]bool, jobsToPlace ...string) (table.Assignment, error) {
	d.metrics.engineRun(operation)
	eng, err := d.newEngine(d.in.Load(), d.snapshotWithout(dropped))
	if err != nil {
		return table.Assignment{}, err
	}
	var placed []table.Assignment
	place := func(name string) error {
		j, ok := d.job(name)
		if !ok {
			return nil
		}
		a, err := eng.Place(j)
		if err != nil {
			return err
		}
		placed = append(placed, a)
		return nil
	}
	for _, name := range append(slices.Sorted(maps.Keys(dropped)), jobsToPlace...) {
		if err := place(name); err != nil {
			return table.Assignment{}, err
		}
	}
	d.eng = eng
	for _, a := range placed {
		d.cache.Set(a)
		d.unsaved[a.Job] = a
	}
	if len(placed) == 0 {
		return table.Assignment{}, nil
	}
	return placed[len(placed)-1], nil
}

// DeleteOverride removes the job's override and places the job anew by the
// other rules, then saves the overrides. A job without an override wraps
// ErrNotFound; a deletion that could not be saved wraps ErrNotSaved. A
// follower refuses it while another replica leads (ErrNotLeader).
func (d *Dispatcher) DeleteOverride(ctx context.Context, job string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete override of job %q: %w", job, err)
	}
	if err := d.leaderOnly(fmt.Sprintf("delete override of job %q", job)); err != nil {
		return err
	}
	if err := d.needInputs(fmt.Sprintf("delete override of job %q", job)); err != nil {
		return err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	o, ok := d.overrides[job]
	if !ok {
		d.mu.Unlock()
		return fmt.Errorf("delete override: job %q has no override: %w", job, ErrNotFound)
	}
	d.mu.Unlock()
	if err := d.state.DeleteOverride(ctx, job); err != nil {
		return fmt.Errorf("delete override of job %q: not done: %w: %w", job, ErrNotSaved, err)
	}
	d.mu.Lock()
	if o, ok = d.overrides[job]; !ok { // the shared state's deletion arrived first
		d.mu.Unlock()
		return nil
	}
	delete(d.overrides, job)
	if _, err := d.replace("override-delete", map[string]bool{job: true}); err != nil {
		d.overrides[job] = o
		d.mu.Unlock()
		if errors.Is(err, engine.ErrNoCluster) {
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return fmt.Errorf("delete override of job %q: %w", job, err)
	}
	d.mu.Unlock()
	d.log.Info("Deleted override", "job", job, "cluster", o.Cluster)
	if err := d.saveOverrides(); err != nil {
		return fmt.Errorf("delete override of job %q: done, but %w", job, err)
	}
	_ = d.saveJournal()
	return nil
}

// Overrides lists the overrides in force, sorted by job.
func (d *Dispatcher) Overrides() []table.Override {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock.Now()
	all := d.overridesLocked()
	active := all[:0]
	for _, o := range all {
		if o.Active(now) {
			active = append(active, o)
		}
	}
	return active
}

// expireOverrides drops the overrides that lapsed and places their jobs anew.
// It reports how many it dropped.
func (d *Dispatcher) expireOverrides() (int, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	now := d.clock.Now()
	expired := map[string]bool{}
	removed := map[string]table.Override{}
	for job, o := range d.overrides {
		if !o.Active(now) {
			expired[job] = true
			removed[job] = o
			delete(d.overrides, job)
		}
	}
	if len(expired) == 0 {
		d.mu.Unlock()
		return 0, nil
	}
	_, err := d.replace("override-expiry", expired)
	d.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("expire overrides: %w", err)
	}
	d.log.Info("Overrides expired", "jobs", len(expired))
	if err := d.saveOverrides(); err != nil {
		return len(expired), err
	}
	return len(expired), d.saveJournal()
}
