package dispatch

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// A highly available dispatcher runs as replicas sharing state (a shared
// state.Backend). One leads: it runs Run (dispatches, expiries, health) and
// its table is the one published. Every replica serves admissions and reads
// from its own table, which follows the leader's publications (adoptTable)
// and the shared overrides (setOverrides, setDrains) and rows
// (adoptRows). The state calls these through the watcher New registers.

// stateWatcher is the dispatcher as its state watches it (state.Watcher).
type stateWatcher struct{ d *Dispatcher }

var _ state.Watcher = stateWatcher{}

func (w stateWatcher) SetLeading(leading bool)           { w.d.setLeading(leading) }
func (w stateWatcher) AdoptTable(st *state.State)        { w.d.adoptTable(st) }
func (w stateWatcher) SetOverrides(os []table.Override)  { w.d.setOverrides(os) }
func (w stateWatcher) Published() (*state.State, uint64) { return w.d.published() }
func (w stateWatcher) TableVersion() uint64              { return w.d.tableVersion() }
func (w stateWatcher) SetDrains(cs []table.Drain) {
	w.d.setDrains(cs)
}
func (w stateWatcher) AdoptRows(rows []table.Assignment, provisional []state.Provisional) {
	w.d.adoptRows(rows, provisional)
}
func (w stateWatcher) CheckRow(a table.Assignment, provisional *state.Provisional) error {
	return w.d.checkRow(a, provisional)
}
func (w stateWatcher) RowsChangedSince(v uint64) ([]table.Assignment, bool) {
	return w.d.rowsChangedSince(v)
}
func (w stateWatcher) AdmissionCounts() *demand.AdmissionCounts { return w.d.admissionCounts() }

// setLeading tells the dispatcher whether this replica leads.
func (d *Dispatcher) setLeading(leading bool) {
	if d.leading.Swap(leading) != leading {
		d.log.Info("Leadership changed", "leading", leading)
	}
}

// Leading reports whether this replica leads (always true with a state of
// one replica).
func (d *Dispatcher) Leading() bool { return d.leading.Load() }

// leaderOnly refuses, with ErrNotLeader, a write that recomputes the table
// (a dispatch, drain, undrain, reschedule or override deletion) while
// another replica leads: only the leader's table is published, so a
// follower's would differ from it until the next publication. While no
// leader is known, a follower makes the write (the shared state carries it
// to the next leader).
func (d *Dispatcher) leaderOnly(what string) error {
	if d.Leading() {
		return nil
	}
	if other := d.state.OtherLeader(); other != "" {
		return fmt.Errorf("%s: %w: replica %s leads and only the leader changes the table; send the request to it (any replica's API forwards it)", what, ErrNotLeader, other)
	}
	return nil
}

// published returns what the leader publishes: the table in force and the
// provisional jobs, consistent with each other, with the table version
// they were taken at. The table is copied without holding mu, which
// admissions of new jobs take, and kept if no row changed during the copy
// (rows and provisional records change together under mu); after
// publishTries copies overtaken by changes, it is copied under mu.
func (d *Dispatcher) published() (*state.State, uint64) {
	var st *state.State
	var v uint64
	d.copyTable(func(t *table.Table) {
		st, v = &state.State{Table: t, Provisional: d.provisionalLocked(), LastDispatch: d.lastDispatch}, d.cache.Version()
	})
	return st, v
}

// copyTable copies the table in force and runs locked under mu with the
// copy, which is the table in force while locked runs. It copies without
// holding mu, which new jobs' admissions take, and keeps the copy when no
// row changed meanwhile; after publishTries copies that a change spoiled,
// it copies under mu.
func (d *Dispatcher) copyTable(locked func(t *table.Table)) {
	for range publishTries {
		v := d.cache.Version()
		t := d.cache.Snapshot()
		d.mu.Lock()
		if d.cache.Version() == v {
			locked(t)
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	locked(d.cache.Snapshot())
}

// tableVersion changes with every change of the table in force.
func (d *Dispatcher) tableVersion() uint64 { return d.cache.Version() }

// publishTries is how many times copyTable copies the table without mu.
const publishTries = 3

// rowsChangedSince returns the rows set since the table's version v (as
// tableVersion gave it), so that a publisher can tell a change it may
// leave for later without copying the table. It reports false when it
// cannot tell: a row was removed, or the table replaced, since v, or v is
// too old. Rows set again after v are returned as they are now.
func (d *Dispatcher) rowsChangedSince(v uint64) ([]table.Assignment, bool) {
	jobs, ok := d.cache.ChangedSince(v)
	if !ok {
		return nil, false
	}
	rows := make([]table.Assignment, 0, len(jobs))
	for _, j := range jobs {
		a, ok := d.cache.Lookup(j)
		if !ok {
			return nil, false
		}
		rows = append(rows, a)
	}
	return rows, true
}

// admissionCounts are this replica's admission counts; nil when demand is
// not counted from admissions.
func (d *Dispatcher) admissionCounts() *demand.AdmissionCounts {
	if d.admissions == nil {
		return nil
	}
	return d.admissions.Snapshot()
}

// adoptTable puts the leader's publication in force on a follower: its
// table, its provisional jobs and the demand its rows carry. The overrides
// in force that the publication does not follow yet (set since it was
// made) are applied again on top. A leader ignores it: its own table is
// the newest.
func (d *Dispatcher) adoptTable(st *state.State) {
	if d.Leading() || st == nil || st.Table == nil || len(st.Table.Assignments) == 0 {
		return
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.leading.Load() { // became leader meanwhile
		return
	}
	d.provisional = make(map[string]*provisionalJob, len(st.Provisional))
	for _, p := range st.Provisional {
		if p.Job.Name != "" {
			d.provisional[p.Job.Name] = &provisionalJob{job: p.Job, lastAdmitted: p.LastAdmitted, admissions: max(p.Admissions, 1)}
		}
	}
	d.lastDemand = demandOfRows(st.Table) // the leader's demand; followers do not query it
	if d.inputsLoaded.Load() {
		eng, err := d.newEngine(d.in.Load(), st.Table)
		if err != nil {
			d.log.Error(err, "Adopting the leader's table: the engine refused it; the table in force stays")
			return
		}
		d.eng = eng
	}
	d.cache.Replace(st.Table)
	if !st.LastDispatch.IsZero() {
		d.lastDispatch = st.LastDispatch
	} else {
		d.lastDispatch = st.Table.GeneratedAt
	}
	var stale []string
	for job, o := range d.overrides {
		if a, ok := d.cache.Lookup(job); ok && a.Cluster != o.Cluster {
			stale = append(stale, job)
		}
	}
	if len(stale) > 0 && d.inputsLoaded.Load() {
		slices.Sort(stale)
		if _, err := d.replace("shared-overrides", map[string]bool{}, stale...); err != nil {
			d.log.Error(err, "Applying overrides over the leader's table")
		}
	}
	if d.inputsLoaded.Load() {
		d.followDrainsLocked() // a publication older than a drain in force
	}
	d.metrics.setTableSize(d.cache.Len())
	d.metrics.setProvisional(len(d.provisional))
}

// adoptRows puts in force rows that replicas placed, at admission, for jobs
// the table lacked (the first placement of each job recorded cluster-wide
// wins), with the provisional records of those the job config lacks.
func (d *Dispatcher) adoptRows(rows []table.Assignment, provisional []state.Provisional) {
	d.mu.Lock()
	defer d.mu.Unlock()
	changed := false
	for _, a := range rows {
		if a.Job == "" || a.Cluster == "" {
			continue
		}
		if cur, ok := d.cache.Lookup(a.Job); ok && cur.Cluster == a.Cluster {
			continue
		}
		d.cache.Set(a)
		changed = true
	}
	for _, p := range provisional {
		if _, ok := d.provisional[p.Job.Name]; !ok && p.Job.Name != "" {
			if _, known := d.in.Load().byName[p.Job.Name]; !known {
				d.provisional[p.Job.Name] = &provisionalJob{job: p.Job, lastAdmitted: p.LastAdmitted, admissions: max(p.Admissions, 1)}
			}
		}
	}
	if changed {
		d.metrics.setTableSize(d.cache.Len())
		d.metrics.setProvisional(len(d.provisional))
	}
}

// setOverrides puts in force the job overrides as the shared state holds
// them (an operator may have created or deleted one with kubectl): the jobs
// whose override appeared, changed or went are placed anew. Writes this
// replica made itself arrive here too and change nothing.
func (d *Dispatcher) setOverrides(os []table.Override) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock.Now()
	want := map[string]table.Override{}
	refused := map[string]error{}
	for _, o := range os {
		if o.Job == "" || o.Cluster == "" {
			continue
		}
		o, err := d.boundedOverride(o, now)
		if err != nil {
			refused["override/"+o.Job] = fmt.Errorf("shared state: %w", err)
		} else if o.Active(now) {
			want[o.Job] = o
		}
	}
	d.noteRefused("override/", refused)
	var changed []string
	dropped := map[string]bool{}
	for job, o := range want {
		if cur, ok := d.overrides[job]; !ok || !sameOverride(cur, o) {
			changed = append(changed, job)
		}
	}
	for job := range d.overrides {
		if _, ok := want[job]; !ok {
			dropped[job] = true
		}
	}
	if len(changed) == 0 && len(dropped) == 0 {
		return
	}
	prev := d.overrides
	d.overrides = want
	if !d.inputsLoaded.Load() {
		return // LoadInputs applies them to the table
	}
	slices.Sort(changed)
	if _, err := d.replace("shared-overrides", dropped, changed...); err != nil {
		d.overrides = prev
		d.log.Error(err, "Applying the shared overrides failed: the ones in force stay", "changed", len(changed), "deleted", len(dropped))
		return
	}
	d.log.Info("Shared overrides applied", "changed", len(changed), "deleted", len(dropped))
}

// setDrains puts in force the drains and caps as the shared state
// holds them. The leader dispatches on them at once (the jobs leave or come
// back, and it publishes the table); a follower records them and takes the
// leader's table, so that every replica ends with one table.
func (d *Dispatcher) setDrains(cs []table.Drain) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	now := d.clock.Now()
	want := map[string]table.Drain{}
	refused := map[string]error{}
	for _, o := range cs {
		if o.Cluster == "" {
			continue
		}
		if err := d.checkDrain(o, now); err != nil {
			refused["drain/"+o.Cluster] = fmt.Errorf("shared state: %w", err)
		} else if o.Active(now) {
			want[o.Cluster] = o
		}
	}
	d.noteRefused("drain/", refused)
	if maps.EqualFunc(want, d.drains, sameDrain) {
		d.mu.Unlock()
		return
	}
	d.drains = want
	leading := d.Leading()
	if !leading && d.cache.Len() > 0 && d.inputsLoaded.Load() {
		if eng, err := d.newEngine(d.in.Load(), d.cache.Snapshot()); err != nil {
			d.log.Error(err, "Following a shared drain: the engine refused the table in force; its rows stay until the leader's publication")
		} else {
			d.eng = eng
			d.followDrainsLocked()
		}
	}
	d.mu.Unlock()
	d.log.Info("Shared drains and caps applied", "clusters", slices.Sorted(maps.Keys(want)), "leading", leading)
	if leading && d.cache.Len() > 0 && d.inputsLoaded.Load() {
		_, _ = d.afterDrainChange("shared-drain", "a drain or cap changed in the shared state")
	}
}

// followDrainsLocked places anew, on a follower, the rows of the table in
// force that a drain in force forbids (see placeForbiddenLocked): the
// leader's publication that moves them may not have arrived yet, or may
// predate the drain, and no replica answers a drained cluster once the
// drain is in the shared state. The leader's next publication replaces
// these rows. d.eng must know the drains. Callers hold mu.
func (d *Dispatcher) followDrainsLocked() {
	now := d.clock.Now()
	drained := map[string]bool{}
	for c, o := range d.drains {
		if o.Drain() && o.Active(now) {
			drained[c] = true
		}
	}
	if len(drained) > 0 {
		d.placeForbiddenLocked("follow-drain", drained)
	}
}

// placeForbiddenLocked places anew the rows of the table in force that
// d.eng refuses (CheckRow: a row the rules may move, on a cluster blocked,
// drained or lacking a capability the job needs) on the given clusters (all
// when nil), and only those. A job no other usable cluster can run keeps
// its row, as a dispatch keeps it.
// It counts one engine run for operation when any row moves. Callers hold mu.
func (d *Dispatcher) placeForbiddenLocked(operation string, clusters map[string]bool) {
	forbidden := map[string]bool{}
	for _, a := range d.cache.Snapshot().Assignments {
		if clusters != nil && !clusters[a.Cluster] {
			continue
		}
		var pj *jobs.Job
		if p, ok := d.provisional[a.Job]; ok {
			pj = &p.job
		}
		if d.rowError(d.eng, a, pj) == nil {
			continue
		}
		// A job no other cluster can run stays, as a dispatch keeps an
		// unplaceable job on its last eligible cluster.
		if j, _ := d.job(a.Job); !d.hasOtherCluster(j, a.Cluster) {
			continue
		}
		forbidden[a.Job] = true
	}
	if len(forbidden) == 0 {
		return
	}
	d.metrics.engineRun(operation)
	eng, err := d.newEngine(d.in.Load(), d.snapshotWithout(forbidden))
	if err != nil {
		d.log.Error(err, "Placing anew the rows the configs and drains forbid: the engine refused the table; they stay", "operation", operation, "jobs", len(forbidden))
		return
	}
	d.eng = eng
	var moved, stuck int
	for _, name := range slices.Sorted(maps.Keys(forbidden)) {
		j, _ := d.job(name)
		a, err := eng.Place(j)
		if err != nil { // stranded: a later dispatch decides
			stuck++
			continue
		}
		d.cache.Set(a)
		d.unsaved[a.Job] = a
		moved++
	}
	d.log.Info("Placed anew the rows the configs and drains forbid", "operation", operation, "moved", moved, "stranded", stuck)
}

// hasOtherCluster reports whether a usable cluster other than cluster meets
// the job's requirements.
func (d *Dispatcher) hasOtherCluster(j jobs.Job, cluster string) bool {
	_, err := d.eng.Best(j, cluster)
	return err == nil
}

// checkRow returns why a row read from the shared state (the leader's
// publication, a replica's placement) may not be put in force here, which
// keeps a hand-written or stale row from steering admissions: its cluster
// is neither in the cluster config nor manual, or, for a row the rules may
// move (not an override, a cluster job, a manual cluster, an ssh bastion or
// the default), the cluster is blocked or lacks a capability the job
// (from the job config, else provisional) requires. A pinned row is held
// to the pin rule's own terms: not on a blocked cluster. Nil while the
// configs are not loaded: nothing to check against.
func (d *Dispatcher) checkRow(a table.Assignment, provisional *state.Provisional) error {
	if !d.inputsLoaded.Load() {
		return nil
	}
	var pj *jobs.Job
	if provisional != nil && provisional.Job.Name == a.Job {
		pj = &provisional.Job
	}
	d.mu.Lock()
	eng := d.eng
	d.mu.Unlock()
	return d.rowError(eng, a, pj)
}

// rowError is CheckRow against eng, with provisional as the job when the
// job config lacks it.
func (d *Dispatcher) rowError(eng *engine.Engine, a table.Assignment, provisional *jobs.Job) error {
	j := jobs.Job{Name: a.Job, Agent: jobs.Agent}
	if known, ok := d.in.Load().byName[a.Job]; ok {
		j = *known
	} else if provisional != nil {
		j = *provisional
	}
	err := eng.CanRun(j, a.Cluster)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrUnknownCluster):
		return err
	}
	switch a.Reason {
	case table.ReasonOverride, table.ReasonClusterJob, table.ReasonManual, table.ReasonSSHBastion, table.ReasonDefault:
		return nil // the rule names the cluster, blocked or not
	case table.ReasonPinned:
		if errors.Is(err, engine.ErrBlockedCluster) {
			return err
		}
		return nil
	}
	return err
}

// demandOfRows is the demand a table's rows were balanced with.
func demandOfRows(t *table.Table) map[string]float64 {
	dm := make(map[string]float64, len(t.Assignments))
	for _, a := range t.Assignments {
		dm[a.Job] = a.Demand
	}
	return dm
}

// sameOverride compares overrides with time.Equal: the shared state's
// times are UTC, a replica's own may be in another location.
func sameOverride(a, b table.Override) bool {
	return a.Job == b.Job && a.Cluster == b.Cluster && a.Reason == b.Reason && a.By == b.By &&
		a.CreatedAt.Equal(b.CreatedAt) && a.Expires.Equal(b.Expires)
}

// sameDrain is sameOverride for drains and caps.
func sameDrain(a, b table.Drain) bool {
	return a.Cluster == b.Cluster && a.Capacity == b.Capacity && a.Reason == b.Reason && a.By == b.By &&
		a.CreatedAt.Equal(b.CreatedAt) && a.Expires.Equal(b.Expires)
}
