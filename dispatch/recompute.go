package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

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
	if d.opts.Refresh != nil {
		if err := d.opts.Refresh(ctx); err != nil {
			d.log.Error(err, "Refreshing the inputs: dispatching on the ones on disk")
		}
	}
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
	return d.redispatch("dispatch", in)
}

// redispatch runs the engine, for operation, on in (the table in force as the previous
// one, the active overrides and cluster overrides) and puts the new table in
// force, then saves it. The engine runs on a snapshot without mu, so
// admissions go on meanwhile; the rows they add are carried over. Callers
// hold opMu.
func (d *Dispatcher) redispatch(operation string, in *inputs) (*engine.Report, string, error) {
	d.mu.Lock()
	now := d.clock.Now()
	for job, o := range d.overrides {
		if !o.Active(now) {
			delete(d.overrides, job)
		}
	}
	st := d.stateLocked(d.drains)
	d.mu.Unlock()
	st.prev = d.cache.Snapshot() // no Replace meanwhile: every Replace holds opMu
	run, err := d.compute(context.Background(), operation, in, st)
	if err != nil {
		return nil, resultEngineError, fmt.Errorf("dispatch: %w", err)
	}
	if len(run.table.Assignments) == 0 {
		return nil, resultRefused, fmt.Errorf("dispatch: job config %s: no job is dispatched (no job of agent %q)", d.opts.JobConfigDir, "kubernetes")
	}
	d.mu.Lock()
	d.commitLocked(in, run, st)
	d.mu.Unlock()
	return d.committed(run)
}

// committed records, reports and saves a run commitLocked put in force.
func (d *Dispatcher) committed(run *engineRun) (*engine.Report, string, error) {
	t, report := run.table, run.report
	d.metrics.dispatched(report)
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

// commitLocked puts run, computed on in and st, in force. The rows set
// since st was taken (admissions of new jobs, rows other replicas placed)
// that run lacks are carried over first, so a commit loses none of them.
// Callers hold opMu and mu.
func (d *Dispatcher) commitLocked(in *inputs, run *engineRun, st *runState) {
	d.carryOverLocked(in, run, st)
	d.noteServiceClusters(run.eng)
	d.noteUnknownFields(in)
	d.noteFlatPaths(in)
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
	d.lastMoveList = slices.Clone(report.Moves[:min(len(report.Moves), maxStatusMoves)])
	d.unplaceable = report.Unplaceable
}

// carryOverLocked adds to run the provisional jobs whose rows were set
// since st was taken and that run lacks: each stays where it was admitted
// while that is eligible. Callers hold opMu and mu.
func (d *Dispatcher) carryOverLocked(in *inputs, run *engineRun, st *runState) {
	changed, ok := d.cache.ChangedSince(st.version)
	if !ok { // too many changes to tell which: look at every row
		changed = changed[:0]
		for _, a := range d.cache.Snapshot().Assignments {
			changed = append(changed, a.Job)
		}
	}
	t := run.table
	n := len(t.Assignments)
	for _, name := range changed {
		p, provisional := d.provisional[name]
		if _, known := in.byName[name]; known || !provisional || slices.Contains(run.droppedProvisional, name) {
			continue // the run placed it, or dropped it as a dispatch does
		}
		if _, has := slices.BinarySearchFunc(t.Assignments[:n], name, byJob); has {
			continue
		}
		cur, ok := d.cache.Lookup(name)
		if !ok {
			continue
		}
		a, err := run.eng.KeepProvisional(p.job, float64(p.admissions), cur)
		if err != nil {
			run.droppedProvisional = append(run.droppedProvisional, name)
			continue
		}
		t.Assignments = append(t.Assignments, a)
	}
	if len(t.Assignments) > n {
		d.log.V(1).Info("Carried over rows admitted while the dispatch computed", "jobs", len(t.Assignments)-n)
		t.Sort()
	}
}

// byJob orders a row against a job name, for binary searches of sorted tables.
func byJob(a table.Assignment, job string) int { return strings.Compare(a.Job, job) }

// engineRun is one engine run of compute: not in force until committed.
type engineRun struct {
	eng                *engine.Engine
	table              *table.Table
	report             *engine.Report
	droppedProvisional []string // provisional jobs no cluster can take any more
}

// runState is what an engine run reads of the dispatcher besides its
// inputs: copied under mu by stateLocked, so that the run computes without
// mu and admissions never wait for it.
type runState struct {
	// version is the table's version (table.Cache.Version) when taken.
	version uint64
	// prev is the table in force, taken after version without mu.
	prev        *table.Table
	overrides   map[string]table.Override // the active ones
	drains      map[string]table.Drain
	provisional map[string]provisionalJob
	demand      map[string]float64 // the last good demand; never modified in place
	unplaceable []engine.Unplaceable
	now         time.Time
}

// stateLocked copies what an engine run reads, with the given cluster
// overrides. Callers hold mu.
func (d *Dispatcher) stateLocked(drains map[string]table.Drain) *runState {
	st := &runState{
		version: d.cache.Version(), now: d.clock.Now(), demand: d.lastDemand, unplaceable: d.unplaceable,
		overrides:   make(map[string]table.Override, len(d.overrides)),
		drains:      maps.Clone(drains),
		provisional: make(map[string]provisionalJob, len(d.provisional)),
	}
	for job, o := range d.overrides {
		if o.Active(st.now) {
			st.overrides[job] = o
		}
	}
	for name, p := range d.provisional {
		st.provisional[name] = *p
	}
	return st
}

// snapshot is stateLocked with the table in force, taken without holding
// mu through the copy of the table: when a dispatch replaced the table
// meanwhile, it takes both again, so that they belong together.
func (d *Dispatcher) snapshot(drains func() map[string]table.Drain) *runState {
	for tries := 0; ; tries++ {
		d.mu.Lock()
		st := d.stateLocked(drains())
		if tries == 2 { // the table keeps being replaced: copy it under mu
			st.prev = d.cache.Snapshot()
			d.mu.Unlock()
			return st
		}
		d.mu.Unlock()
		st.prev = d.cache.Snapshot()
		if _, ok := d.cache.ChangedSince(st.version); ok {
			return st
		}
	}
}

// newEngine builds an engine on in, st's state and prev as the table in
// force. It reads nothing of d but its options.
func (d *Dispatcher) newEngineOn(in *inputs, st *runState, prev *table.Table) (*engine.Engine, error) {
	if prev != nil && len(prev.Assignments) == 0 {
		prev = nil // the engine then starts from the dispatcher config's buildFarm
	}
	provisional := make(map[string]float64, len(st.provisional))
	for name, p := range st.provisional {
		provisional[name] = float64(p.admissions)
	}
	return engine.New(engine.Input{
		Jobs: in.jobs, Config: in.config, Clusters: in.clusters, Demand: st.demand, Provisional: provisional,
		Previous: prev, Overrides: st.overrides, Drains: st.drains, Now: st.now, Options: d.opts.Engine,
	})
}

// compute runs the engine, for operation (counted by engine_runs_total), on in and st (st.prev as the previous table)
// and places the provisional jobs the job config still lacks. It changes
// nothing and takes no lock: commitLocked commits the run, a preview only
// reads it. It gives up with ctx's error once ctx is done.
func (d *Dispatcher) compute(ctx context.Context, operation string, in *inputs, st *runState) (*engineRun, error) {
	d.metrics.engineRun(operation)
	if d.onRun != nil {
		d.onRun(ctx)
	}
	eng, err := d.newEngineOn(in, st, st.prev)
	if err != nil {
		return nil, err
	}
	t, report, err := eng.DispatchContext(ctx)
	if err != nil {
		return nil, err
	}
	run := &engineRun{eng: eng, table: t, report: report}
	// Provisional jobs keep a row (where they are, while that is eligible)
	// until the job config has them.
	for _, name := range slices.Sorted(maps.Keys(st.provisional)) {
		p := st.provisional[name]
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
