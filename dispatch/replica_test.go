package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// memShared is a shared state.Backend held in memory with the API server's
// semantics that matter here: writes either happen or fail, claims are
// create-if-absent, times are kept to the second. Replicas learn of writes
// only through sync, as they would through watches; they start as followers.
type memShared struct {
	state.Memory // nothing to save after a change is in force
	mu           sync.Mutex
	down         bool // every write fails, as with an unreachable API server
	overrides    map[string]table.Override
	drains       map[string]table.Drain
	claims       map[string]table.Assignment
	leader       string // the replica the Lease names, as followers see it
	// unconfirmed is what ConfirmDrain answers; confirms counts its calls.
	unconfirmed []string
	confirms    int
}

func newMemShared() *memShared {
	return &memShared{overrides: map[string]table.Override{}, drains: map[string]table.Drain{}, claims: map[string]table.Assignment{}}
}

var errAPIDown = errors.New("kubernetes API: connection refused: the write was not made")

func (m *memShared) write(f func()) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errAPIDown
	}
	f()
	return nil
}

func (m *memShared) PutOverride(_ context.Context, o table.Override) error {
	return m.write(func() { m.overrides[o.Job] = o })
}
func (m *memShared) DeleteOverride(_ context.Context, job string) error {
	return m.write(func() { delete(m.overrides, job) })
}
func (m *memShared) PutDrain(_ context.Context, o table.Drain) error {
	return m.write(func() { m.drains[o.Cluster] = o })
}
func (m *memShared) DeleteDrain(_ context.Context, c string) error {
	return m.write(func() { delete(m.drains, c) })
}
func (m *memShared) Claim(_ context.Context, a table.Assignment, _ *jobs.Job) (table.Assignment, error) {
	won := a
	err := m.write(func() {
		if cur, ok := m.claims[a.Job]; ok {
			won = cur
			return
		}
		m.claims[a.Job] = a
	})
	return won, err
}

// ConfirmDrain answers m.unconfirmed at once: replicas learn of writes only through sync.
func (m *memShared) ConfirmDrain(context.Context, table.Drain) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.confirms++
	return m.unconfirmed, nil
}

func (m *memShared) Where() string                   { return "shared state" }
func (m *memShared) Watch(state.Watcher)             {}
func (m *memShared) Stamp(t time.Time) time.Time     { return t.Truncate(time.Second).UTC() }
func (m *memShared) from(st *state.State) memReplica { return memReplica{m, st} }

// memReplica is a replica's view of a memShared: it starts from initial.
type memReplica struct {
	*memShared
	initial *state.State
}

func (r memReplica) Load(context.Context) (*state.State, error) { return r.initial, nil }

func (m *memShared) OtherLeader() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leader
}

// sync delivers the shared state to replicas, as the watches would.
func (m *memShared) sync(rs ...*Dispatcher) {
	m.mu.Lock()
	var os []table.Override
	for _, o := range m.overrides {
		os = append(os, o)
	}
	var cs []table.Drain
	for _, o := range m.drains {
		cs = append(cs, o)
	}
	var rows []table.Assignment
	for _, a := range m.claims {
		rows = append(rows, a)
	}
	m.mu.Unlock()
	for _, r := range rs {
		r.setOverrides(os)
		r.setDrains(cs)
		r.adoptRows(rows, nil)
	}
}

// replicas starts a leader that has dispatched and n followers that took
// its publication, all on one shared state.
func replicas(t *testing.T, n int) (*env, *memShared, *Dispatcher, []*Dispatcher) {
	t.Helper()
	e := newEnv(t)
	sh := newMemShared()
	leader := e.newDispatcherOn(e.options(), sh)
	leader.setLeading(true)
	e.dispatch(leader)
	var followers []*Dispatcher
	for range n {
		st, _ := leader.published()
		followers = append(followers, e.newDispatcherOn(e.options(), sh.from(st)))
	}
	return e, sh, leader, followers
}

func sameTables(t *testing.T, a, b *Dispatcher) {
	t.Helper()
	at, bt := a.cache.Snapshot(), b.cache.Snapshot()
	if len(at.Assignments) != len(bt.Assignments) {
		t.Fatalf("tables of %d and %d rows", len(at.Assignments), len(bt.Assignments))
	}
	for i := range at.Assignments {
		if at.Assignments[i].Job != bt.Assignments[i].Job || at.Assignments[i].Cluster != bt.Assignments[i].Cluster {
			t.Errorf("row %d: %s on %s against %s on %s", i, at.Assignments[i].Job, at.Assignments[i].Cluster, bt.Assignments[i].Job, bt.Assignments[i].Cluster)
		}
	}
}

func TestFollowerStartsFromThePublicationAndFollowsIt(t *testing.T) {
	_, _, leader, fs := replicas(t, 1)
	f := fs[0]
	if f.Leading() {
		t.Fatal("a replica that was never told it leads says it leads")
	}
	sameTables(t, leader, f)
	if !f.Status().Ready {
		t.Errorf("a follower holding the publication is not ready: %+v", f.Status())
	}

	// The leader's table changes (a reschedule); the follower takes the next publication.
	job := leader.cache.Snapshot().Assignments[0].Job
	if _, err := leader.Reschedule(context.Background(), RescheduleRequest{Job: job, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	v := f.tableVersion()
	st, _ := leader.published()
	f.adoptTable(st)
	if f.tableVersion() == v {
		t.Error("adopting a publication left the table version as it was")
	}
	sameTables(t, leader, f)

	// A leader never takes a publication: its own table is the newest.
	old := &table.Table{Assignments: []table.Assignment{{Job: job, Cluster: "elsewhere"}}}
	leader.adoptTable(&state.State{Table: old})
	if a := mustLookup(t, leader, job); a.Cluster == "elsewhere" {
		t.Error("the leader adopted a publication")
	}
}

func TestSharedWritesComeBeforeTheAnswer(t *testing.T) {
	ctx := context.Background()
	_, sh, leader, fs := replicas(t, 2)
	job := leader.cache.Snapshot().Assignments[0].Job
	from := mustLookup(t, leader, job).Cluster

	// Down: refused, wrapping ErrNotSaved, and nothing is in force.
	sh.down = true
	if _, err := leader.Reschedule(ctx, RescheduleRequest{Job: job, Reason: "api down"}); !errors.Is(err, ErrNotSaved) {
		t.Fatalf("reschedule with the shared state down: %v, want ErrNotSaved", err)
	}
	if a := mustLookup(t, leader, job); a.Cluster != from || len(leader.Overrides()) != 0 {
		t.Fatalf("a refused reschedule is in force: %s on %s, overrides %v", job, a.Cluster, leader.Overrides())
	}
	if _, err := leader.Drain(ctx, DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "api down"}); !errors.Is(err, ErrNotSaved) {
		t.Fatalf("drain with the shared state down: %v, want ErrNotSaved", err)
	}
	if len(leader.Drains()) != 0 {
		t.Fatalf("a refused drain is in force: %v", leader.Drains())
	}

	// Up: the override is in the shared state when the answer comes, and
	// every replica holds it once the watch delivers it.
	sh.down = false
	res, err := leader.Reschedule(ctx, RescheduleRequest{Job: job, Reason: "move it", By: "alice", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := sh.overrides[job]; got.Cluster != res.To || got.By != "alice" {
		t.Fatalf("shared override %+v, answered %+v", got, res)
	}
	if res.Override.CreatedAt.Nanosecond() != 0 || res.Override.Expires.Nanosecond() != 0 {
		t.Errorf("override times %v, %v keep sub-second digits the shared state drops", res.Override.CreatedAt, res.Override.Expires)
	}
	sh.sync(fs...)
	for i, f := range fs {
		if a := mustLookup(t, f, job); a.Cluster != res.To || a.Reason != table.ReasonOverride {
			t.Errorf("follower %d: %s on %s (%s), want %s by override", i, job, a.Cluster, a.Reason, res.To)
		}
	}

	// An override deleted elsewhere (kubectl delete) goes on every replica.
	delete(sh.overrides, job)
	sh.sync(append(fs, leader)...)
	for i, r := range append(fs, leader) {
		if len(r.Overrides()) != 0 {
			t.Errorf("replica %d keeps overrides %v deleted from the shared state", i, r.Overrides())
		}
	}
}

func TestDrainOnTheLeaderAndItsFollowers(t *testing.T) {
	ctx := context.Background()
	_, sh, leader, fs := replicas(t, 1)
	f := fs[0]
	on := func(d *Dispatcher, c string) int {
		n := 0
		for _, a := range d.cache.Snapshot().Assignments {
			if a.Cluster == c {
				n++
			}
		}
		return n
	}
	if on(leader, "build03") == 0 {
		t.Fatal("build03 runs nothing before the drain")
	}
	before, _ := leader.published()
	// A drain made elsewhere reaches the leader through the shared state:
	// it moves the jobs off and its next publication carries the move.
	sh.drains["build03"] = table.Drain{Cluster: "build03", Reason: "kubectl", CreatedAt: leader.clock.Now(), Expires: leader.clock.Now().Add(time.Hour)}
	sh.sync(f, leader)
	if n := on(leader, "build03"); n != 0 {
		t.Errorf("the leader keeps %d jobs on build03 after the shared drain", n)
	}
	// The follower records it and, before the leader's publication
	// arrives, answers no job from the drained cluster: it moves the rows
	// the drain forbids, and only those.
	if len(f.Drains()) != 1 {
		t.Errorf("follower drains %v, want build03", f.Drains())
	}
	if n := on(f, "build03"); n != 0 {
		t.Errorf("the follower keeps %d jobs on build03 after the shared drain, until the leader's publication", n)
	}
	// A publication the leader made before the drain, arriving late,
	// brings back no row on the drained cluster either.
	f.adoptTable(before)
	if n := on(f, "build03"); n != 0 {
		t.Errorf("the follower keeps %d jobs on build03 after adopting a publication older than the drain", n)
	}
	st, _ := leader.published()
	f.adoptTable(st)
	sameTables(t, leader, f)

	// Undrain: deleted from the shared state before it is answered.
	if _, err := leader.Undrain(ctx, "build03", "bob"); err != nil {
		t.Fatal(err)
	}
	if len(sh.drains) != 0 {
		t.Errorf("shared drains after the undrain: %v", sh.drains)
	}
}

func TestANewJobSeenByTwoReplicasEndsWithOneCluster(t *testing.T) {
	ctx := context.Background()
	_, sh, _, fs := replicas(t, 2)
	a, b := fs[0], fs[1]
	// Make the two replicas disagree about where a new job would go, as
	// replicas with different loads might: b's table has a build03 drain.
	b.setDrains([]table.Drain{{Cluster: "build03", Reason: "x", Expires: b.clock.Now().Add(time.Hour)}})
	if _, err := b.afterDrainChange("shared-drain", "test"); err != nil { // b's engine on its drain, as if it had led
		t.Fatal(err)
	}

	da, err := a.Admit(ctx, AdmissionRequest{Job: "rehearse-new-job", Agent: jobs.Agent})
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.Admit(ctx, AdmissionRequest{Job: "rehearse-new-job", Agent: jobs.Agent})
	if err != nil {
		t.Fatal(err)
	}
	if da.Cluster != db.Cluster {
		t.Errorf("replicas answered %s and %s for one new job", da.Cluster, db.Cluster)
	}
	if won := sh.claims["rehearse-new-job"]; won.Cluster != da.Cluster {
		t.Errorf("shared row on %s, answers %s", won.Cluster, da.Cluster)
	}
	if row := mustLookup(t, b, "rehearse-new-job"); row.Cluster != da.Cluster {
		t.Errorf("the loser keeps its own row on %s, the winner's is on %s", row.Cluster, da.Cluster)
	}

	// The shared state down: the replica answers from its own placement.
	sh.down = true
	dc, err := a.Admit(ctx, AdmissionRequest{Job: "another-new-job", Agent: jobs.Agent})
	if err != nil || dc.Cluster == "" {
		t.Fatalf("admission with the shared state down: %+v, %v", dc, err)
	}
}

func TestAReplicaServesTheSharedTableBeforeItLoadsTheJobConfig(t *testing.T) {
	ctx := context.Background()
	e, sh, leader, _ := replicas(t, 0)
	st, _ := leader.published()
	job := st.Table.Assignments[0].Job
	opts := e.options()
	opts.DeferInputs = true
	opts.JobConfigDir = e.dir + "/no-such-dir" // New must not read it
	f := e.newDispatcherOn(opts, sh.from(st))

	if s := f.Status(); !s.Ready || !s.Loading || s.TableSize != len(st.Table.Assignments) {
		t.Fatalf("status before the job config: %+v, want ready and loading with the shared table", s)
	}
	if a := mustLookup(t, f, job); a.Cluster != mustLookup(t, leader, job).Cluster {
		t.Errorf("%s on %s, the leader says %s", job, a.Cluster, mustLookup(t, leader, job).Cluster)
	}
	if dec, err := f.Admit(ctx, AdmissionRequest{Job: job, Agent: jobs.Agent}); err != nil || dec.Cluster == "" {
		t.Errorf("admitting a job of the table before the job config: %+v, %v", dec, err)
	}
	if _, err := f.Admit(ctx, AdmissionRequest{Job: "a-new-job", Agent: jobs.Agent}); !errors.Is(err, ErrNotReady) {
		t.Errorf("admitting a job the table lacks before the job config: %v, want ErrNotReady", err)
	}
	if _, err := f.Reschedule(ctx, RescheduleRequest{Job: job, Reason: "r"}); !errors.Is(err, ErrNotReady) {
		t.Errorf("reschedule before the job config: %v, want ErrNotReady", err)
	}
	if f.Clusters() != nil || f.Snapshot().BuildFarm() != nil {
		t.Error("clusters or buildfarm answered without the configs")
	}
	// An override arriving meanwhile is applied once the job config is in.
	to := "build03"
	if mustLookup(t, f, job).Cluster == to {
		to = "build01"
	}
	f.setOverrides([]table.Override{{Job: job, Cluster: to, Reason: "kubectl", CreatedAt: e.clock.Now()}})

	if err := f.LoadInputs(ctx); err == nil {
		t.Fatal("LoadInputs on a missing job config dir succeeded")
	}
	if s := f.Status(); !s.Ready || !s.Loading || s.LastError == "" {
		t.Errorf("status after a failed load: %+v, want still ready, loading, with the error", s)
	}
	f.opts.JobConfigDir = e.jobDir
	if err := f.LoadInputs(ctx); err != nil {
		t.Fatal(err)
	}
	if s := f.Status(); s.Loading {
		t.Errorf("still loading after LoadInputs: %+v", s)
	}
	if a := mustLookup(t, f, job); a.Cluster != to || a.Reason != table.ReasonOverride {
		t.Errorf("%s on %s (%s) after the load, want %s by the override set while loading", job, a.Cluster, a.Reason, to)
	}
	if _, err := f.Admit(ctx, AdmissionRequest{Job: "a-new-job", Agent: jobs.Agent}); err != nil {
		t.Errorf("admitting a new job after the load: %v", err)
	}
}

func TestOwnWritesComingBackChangeNothing(t *testing.T) {
	ctx := context.Background()
	_, sh, leader, _ := replicas(t, 0)
	job := leader.cache.Snapshot().Assignments[0].Job
	if _, err := leader.Reschedule(ctx, RescheduleRequest{Job: job, Reason: "r", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Drain(ctx, DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	// The watch gives them back as the API keeps them: in UTC, to the second.
	for j, o := range sh.overrides {
		o.CreatedAt, o.Expires = o.CreatedAt.UTC(), o.Expires.UTC()
		sh.overrides[j] = o
	}
	for c, o := range sh.drains {
		o.CreatedAt, o.Expires = o.CreatedAt.In(time.FixedZone("elsewhere", 3600)), o.Expires.UTC()
		sh.drains[c] = o
	}
	v := leader.tableVersion()
	sh.sync(leader)
	if leader.tableVersion() != v {
		t.Error("the leader's own override and drain, coming back from the shared state, changed its table")
	}
}

// TestPublishedWhileNewJobsArrive: each publication taken while new jobs
// are placed holds every provisional job's row (the table is copied
// without the lock admissions take, and kept only if no row changed), and
// RowsChangedSince names the rows placed since a publication.
func TestPublishedWhileNewJobsArrive(t *testing.T) {
	ctx := context.Background()
	_, _, leader, _ := replicas(t, 0)
	_, since := leader.published()
	const n = 200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if _, err := leader.Admit(ctx, AdmissionRequest{Job: fmt.Sprintf("new-job-%03d", i), Agent: jobs.Agent}); err != nil {
				t.Errorf("admit: %v", err)
				return
			}
		}
	}()
	for done := false; !done; {
		st, v := leader.published()
		rows := st.Table.ByJob()
		for _, p := range st.Provisional {
			if _, ok := rows[p.Job.Name]; !ok {
				t.Fatalf("publication at version %d: provisional job %s without its row", v, p.Job.Name)
			}
		}
		done = len(st.Provisional) == n
	}
	wg.Wait()

	changed, ok := leader.rowsChangedSince(since)
	if !ok || len(changed) != n {
		t.Fatalf("RowsChangedSince the first publication: %d rows, %v; want the %d new jobs", len(changed), ok, n)
	}
	for _, a := range changed {
		if want := mustLookup(t, leader, a.Job); a != want {
			t.Errorf("changed row %+v, the table has %+v", a, want)
		}
	}
	// A reschedule moves a row in place: it is named too. A dispatch replaces the table: no answer.
	_, v := leader.published()
	job := changed[0].Job
	if _, err := leader.Reschedule(ctx, RescheduleRequest{Job: job, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if rows, ok := leader.rowsChangedSince(v); !ok || !slices.ContainsFunc(rows, func(a table.Assignment) bool { return a.Job == job }) {
		t.Errorf("after a reschedule of %s: RowsChangedSince = %v, %v", job, rows, ok)
	}
	if _, err := leader.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	if rows, ok := leader.rowsChangedSince(v); ok {
		t.Errorf("after a dispatch: RowsChangedSince = %d rows, true; want no answer", len(rows))
	}
}

// TestFollowersRefuseWritesOnlyTheLeaderMakes: a follower that knows
// another replica leads never recomputes its table for a write, whatever
// reached it; with no leader known, a reschedule or drain is made from the
// follower (the shared state carries it to the next leader), as documented.
func TestFollowersRefuseWritesOnlyTheLeaderMakes(t *testing.T) {
	ctx := context.Background()
	writes := []struct {
		name  string
		write func(d *Dispatcher, job string) error
	}{
		{"dispatch", func(d *Dispatcher, _ string) error { _, err := d.Dispatch(ctx); return err }},
		{"reschedule", func(d *Dispatcher, job string) error {
			_, err := d.Reschedule(ctx, RescheduleRequest{Job: job, Reason: "test"})
			return err
		}},
		{"delete override", func(d *Dispatcher, job string) error { return d.DeleteOverride(ctx, job) }},
		{"drain", func(d *Dispatcher, _ string) error {
			_, err := d.Drain(ctx, DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "test"})
			return err
		}},
		{"undrain", func(d *Dispatcher, _ string) error { _, err := d.Undrain(ctx, "build03", "test"); return err }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			_, sh, leader, fs := replicas(t, 1)
			f := fs[0]
			job := leader.cache.Snapshot().Assignments[0].Job
			// Something for the deletions to delete, made by the leader.
			if _, err := leader.Reschedule(ctx, RescheduleRequest{Job: job, Reason: "setup"}); err != nil {
				t.Fatal(err)
			}
			if _, err := leader.Drain(ctx, DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "setup", Force: true}); err != nil {
				t.Fatal(err)
			}
			sh.sync(f)
			st, _ := leader.published()
			f.adoptTable(st)

			sh.leader = "r1"
			v, overrides, drains := f.tableVersion(), len(sh.overrides), len(sh.drains)
			err := w.write(f, job)
			if !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), "replica r1 leads") {
				t.Fatalf("%s on a follower while r1 leads: %v, want ErrNotLeader naming r1", w.name, err)
			}
			if f.tableVersion() != v || len(sh.overrides) != overrides || len(sh.drains) != drains {
				t.Errorf("a refused %s changed the follower's table or the shared state", w.name)
			}
			if _, err := f.PreviewDrain(ctx, DrainRequest{Cluster: "build02", TTL: time.Hour, Reason: "preview"}); err != nil {
				t.Errorf("a drain preview, which changes nothing, is refused on a follower: %v", err)
			}
		})
	}

	// No leader known: the documented fallback, written from the follower.
	_, sh, leader, fs := replicas(t, 1)
	job := leader.cache.Snapshot().Assignments[0].Job
	if _, err := fs[0].Reschedule(ctx, RescheduleRequest{Job: job, Reason: "no leader"}); err != nil {
		t.Fatalf("reschedule on a follower with no leader known: %v", err)
	}
	if _, ok := sh.overrides[job]; !ok {
		t.Error("the reschedule did not reach the shared state")
	}
}

// A drain is acknowledged after the shared state confirms it on the other
// replicas, and names those that did not; a cap waits for nobody.
func TestDrainWaitsForTheReplicasToConfirm(t *testing.T) {
	ctx := context.Background()
	_, sh, leader, _ := replicas(t, 1)
	sh.unconfirmed = []string{"replica-2"}
	plan, err := leader.Drain(ctx, DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "upgrade", By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if sh.confirms != 1 || !slices.Equal(plan.Unconfirmed, []string{"replica-2"}) {
		t.Errorf("confirms %d, unconfirmed %v; want 1 and [replica-2]", sh.confirms, plan.Unconfirmed)
	}
	if _, err := leader.Drain(ctx, DrainRequest{Cluster: "build01", Capacity: 10, TTL: time.Hour, Reason: "half", By: "bob"}); err != nil {
		t.Fatal(err)
	}
	if sh.confirms != 1 {
		t.Errorf("a cap waited for the replicas to confirm it (%d confirms)", sh.confirms)
	}
}
