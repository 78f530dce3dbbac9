package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Dispatch recomputes the whole table now: it reloads both configs and the
// job config from disk, gets demand (keeping the last good demand when the
// source fails), and runs the engine with the table in force as the previous
// one and the active overrides. Only a successful run that leaves some
// usable cluster and some job replaces the table; otherwise the table in
// force stays and the error is returned and shown in Status.
//
// The demand query and the loading of the inputs run before the table is
// locked, so a reschedule never waits behind a slow Prometheus. A new table
// that could not be saved stays in force and the error wraps ErrNotSaved.
// A follower refuses it while another replica leads (ErrNotLeader).
func (d *Dispatcher) Dispatch(ctx context.Context) (*engine.Report, error) {
	if err := d.leaderOnly("dispatch"); err != nil {
		return nil, err
	}
	d.dispatchMu.Lock()
	defer d.dispatchMu.Unlock()
	start := d.clock.Now()
	report, result, err := d.dispatch(ctx)
	d.metrics.run(result, d.clock.Since(start))
	d.mu.Lock()
	if err != nil && !errors.Is(err, ErrNotSaved) {
		d.lastError = err.Error()
	} else {
		d.lastError = ""
	}
	d.mu.Unlock()
	switch {
	case errors.Is(err, ErrNotSaved):
		return nil, err
	case err != nil:
		d.log.Error(err, "Dispatch failed: the table in force stays", "result", result)
		return nil, err
	}
	d.log.Info("Dispatched", "jobs", report.Jobs, "moved", len(report.Moves), "imbalance", report.Imbalance, "unplaceable", len(report.Unplaceable), "took", d.clock.Since(start))
	for _, u := range report.Unplaceable[:min(len(report.Unplaceable), maxStatusUnplaceable)] {
		d.log.Info("Unplaceable job", "job", u.Job, "problem", u.Problem, "keptOn", u.Cluster)
	}
	return report, nil
}

func (d *Dispatcher) dispatch(ctx context.Context) (*engine.Report, string, error) {
	in, err := loadInputs(&d.opts)
	if err != nil {
		return nil, resultConfigError, fmt.Errorf("dispatch: %w", err)
	}
	if err := in.usable(&d.opts); err != nil {
		return nil, resultRefused, fmt.Errorf("dispatch: %w", err)
	}
	d.refreshDemand(ctx)

	d.opMu.Lock()
	defer d.opMu.Unlock()
	return d.redispatch(in)
}

// redispatch runs the engine on in (the table in force as the previous
// one, the active overrides and cluster overrides) and puts the new table in
// force, then saves it. Callers hold opMu.
func (d *Dispatcher) redispatch(in *inputs) (*engine.Report, string, error) {
	d.mu.Lock()
	now := d.clock.Now()
	for job, o := range d.overrides {
		if !o.Active(now) {
			delete(d.overrides, job)
		}
	}
	run, err := d.recompute(in, d.clusterOverrides)
	if err != nil {
		d.mu.Unlock()
		return nil, resultEngineError, fmt.Errorf("dispatch: %w", err)
	}
	if len(run.table.Assignments) == 0 {
		d.mu.Unlock()
		return nil, resultRefused, fmt.Errorf("dispatch: job config %s: no job is dispatched (no job of agent %q)", d.opts.JobConfigDir, "kubernetes")
	}
	d.noteServiceClusters(run.eng)
	for name := range d.provisional {
		if _, known := in.byName[name]; known {
			delete(d.provisional, name)
		}
	}
	for _, name := range run.droppedProvisional {
		delete(d.provisional, name)
	}
	d.metrics.setProvisional(len(d.provisional))
	t, report := run.table, run.report
	d.eng = run.eng
	d.in.Store(in)
	d.inputsLoaded.Store(true)
	d.cache.Replace(t)
	d.lastDispatch = t.GeneratedAt
	moves := len(report.Moves)
	d.lastMoves = &moves
	d.unplaceable = report.Unplaceable
	d.mu.Unlock()

	d.metrics.dispatched(report, t.GeneratedAt)
	d.metrics.setTableSize(len(t.Assignments))
	if d.opts.OnDispatched != nil {
		d.opts.OnDispatched(t, report)
	}
	if err := d.save(); err != nil {
		// The new table is in force; every later save retries.
		return report, resultPersistError, fmt.Errorf("dispatch: the new table is in force but %w", err)
	}
	return report, resultSuccess, nil
}

// engineRun is one engine run of recompute: not in force until committed.
type engineRun struct {
	eng                *engine.Engine
	table              *table.Table
	report             *engine.Report
	droppedProvisional []string // provisional jobs no cluster can take any more
}

// recompute runs the engine on in with the given cluster overrides, the
// table in force as the previous one and the active job overrides, and
// places the provisional jobs the job config still lacks. It changes
// nothing: redispatch commits the run, a drain preview only reads it.
// Callers hold mu.
func (d *Dispatcher) recompute(in *inputs, clusterOverrides map[string]table.ClusterOverride) (*engineRun, error) {
	eng, err := d.newEngineWith(in, d.cache.Snapshot(), clusterOverrides)
	if err != nil {
		return nil, err
	}
	t, report, err := eng.Dispatch()
	if err != nil {
		return nil, err
	}
	run := &engineRun{eng: eng, table: t, report: report}
	// Provisional jobs keep a row (where they are, while that is eligible)
	// until the job config has them.
	for _, name := range slices.Sorted(maps.Keys(d.provisional)) {
		p := d.provisional[name]
		if _, known := in.byName[name]; known {
			continue
		}
		a, err := eng.PlaceProvisional(p.job, float64(p.admissions))
		if err != nil {
			run.droppedProvisional = append(run.droppedProvisional, name)
			continue
		}
		t.Assignments = append(t.Assignments, a)
	}
	t.Sort()
	return run, nil
}

// refreshDemand asks the demand source; on failure, or an answer that
// cannot be true (see demand.Plausible), the last good demand stays. A good
// answer is saved, so a restart starts from it.
func (d *Dispatcher) refreshDemand(ctx context.Context) {
	dm, err := d.source.Demand(ctx)
	if err == nil && d.admissions == nil { // counted admissions may well be empty
		d.mu.Lock()
		last := d.lastDemand
		d.mu.Unlock()
		if err = demand.Plausible(dm, last, d.opts.DemandMaxDrop); err != nil {
			d.metrics.demandRefusedFor(refusalReason(dm, last))
		}
	}
	d.mu.Lock()
	if err != nil {
		d.metrics.demandError()
		d.demandError = err.Error()
		what := "the last good demand"
		if d.lastDemand == nil {
			what = "the default demand"
		}
		d.mu.Unlock()
		d.log.Error(err, "Demand query failed: dispatching with "+what)
		return
	}
	d.demandError = ""
	d.lastDemand = maps.Clone(dm)
	d.mu.Unlock()
	d.saveDemand(dm)
}

// refusalReason is the reason label of a refused demand answer.
func refusalReason(dm, last map[string]float64) string {
	switch {
	case demand.Check(dm) != nil:
		return "invalid_value"
	case len(dm) == 0:
		return "empty"
	default:
		return "drop"
	}
}

// Trigger asks Run for a full dispatch; it never blocks, and triggers made
// while one is pending are merged.
func (d *Dispatcher) Trigger() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// snapshotWithout returns the table in force without the given jobs' rows. Callers hold mu.
func (d *Dispatcher) snapshotWithout(skip map[string]bool) *table.Table {
	t := d.cache.Snapshot()
	if len(skip) == 0 {
		return t
	}
	kept := t.Assignments[:0]
	for _, a := range t.Assignments {
		if !skip[a.Job] {
			kept = append(kept, a)
		}
	}
	t.Assignments = kept
	return t
}
