package kubestate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// The tests of issue 18's HA defects against the API server: a deposed
// leader, forged shards, shards that would overflow.

// shardSpecs are the specs of the table shards in ns, by name.
func shardSpecs(t *testing.T, ns string) map[string]v1alpha1.TableShardSpec {
	t.Helper()
	var l v1alpha1.TableShardList
	if err := apiClient.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]v1alpha1.TableShardSpec{}
	for _, o := range l.Items {
		out[o.Name] = o.Spec
	}
	return out
}

// onCluster is tab with every row on cluster.
func onCluster(tab *table.Table, cluster string) *table.Table {
	c := copyTable(tab)
	for i := range c.Assignments {
		c.Assignments[i].Cluster = cluster
	}
	return c
}

// watchTable samples f's table every 10 ms until the returned stop, and
// reports whether any sample had a row on cluster.
func watchTable(f *fakeReplica, cluster string) (stop func() bool) {
	done := make(chan struct{})
	var seen bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			f.with(func(f *fakeReplica) {
				if f.state.Table != nil {
					for _, a := range f.state.Table.Assignments {
						if a.Cluster == cluster {
							seen = true
						}
					}
				}
			})
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	return func() bool { close(done); wg.Wait(); return seen }
}

// fewestRows samples f's table every 10 ms until the returned stop, which
// gives the fewest rows it held.
func fewestRows(f *fakeReplica) (stop func() int) {
	done := make(chan struct{})
	fewest := -1
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			f.with(func(f *fakeReplica) {
				if n := len(f.state.Table.Assignments); fewest < 0 || n < fewest {
					fewest = n
				}
			})
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	return func() int { close(done); wg.Wait(); return fewest }
}

// TestDeposedLeaderWritesNothing: replica-a led in term 0 and stopped
// (SIGSTOP) past its Lease; replica-b took the Lease (term 1) and
// published. When replica-a resumes, still in its term, it writes nothing:
// its renewal is past the renew deadline, and, had it renewed just before
// it stopped, the newer term in the API deposes it. A follower never
// adopts its term again, and shards rewritten with its term are refused
// and repaired by replica-b. Issue 18: the resumed leader wrote shards
// with higher publication numbers than the new leader's for about 7 s.
func TestDeposedLeaderWritesNothing(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	tab := smallTable()
	oldTab, newTab := onCluster(tab, "build01"), onCluster(tab, "build02")

	// replica-a holds the Lease in term 0, and publishes.
	long := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: DefaultLeaseName}, Spec: coordinationv1.LeaseSpec{
		HolderIdentity: ptr.To("replica-a"), LeaseDurationSeconds: ptr.To[int32](3), AcquireTime: &long, RenewTime: &long, LeaseTransitions: ptr.To[int32](0),
	}}
	if err := apiClient.Create(ctx, lease); err != nil {
		t.Fatal(err)
	}
	aOpts := testOptions(ns, "replica-a")
	aOpts.LeaseDuration, aOpts.RenewDeadline = 10*time.Second, 7*time.Second // the defaults: its writes have time
	a := startBackend(t, apiConfig, aOpts)
	a.leader.renewed(resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a", LeaderTransitions: 0}, time.Now(), nil)
	lead(a)
	var enc shardEncoder
	if err := a.pub.publish(ctx, &enc, &state.State{Table: oldTab}, fullSpeed()); err != nil {
		t.Fatal(err)
	}
	// A follower adopts it.
	fc := newFakeReplica(&table.Table{}, nil)
	c := startBackend(t, apiConfig, testOptions(ns, "replica-c"))
	c.Watch(fc)
	runBackend(t, c, false, nil)
	eventually(t, 10*time.Second, "the follower adopting term 0", func() bool {
		var got string
		fc.with(func(f *fakeReplica) {
			if f.state.Table != nil && len(f.state.Table.Assignments) > 0 {
				got = f.state.Table.Assignments[0].Cluster
			}
		})
		return got == "build01"
	})

	// replica-a stops; its Lease expired long ago: replica-b takes it (term 1) and publishes.
	fb := newFakeReplica(newTab, nil)
	fb.refuseTables = true // its own table, not the one it followed before it led
	b := startBackend(t, apiConfig, testOptions(ns, "replica-b"))
	b.Watch(fb)
	runBackend(t, b, true, nil)
	eventually(t, 10*time.Second, "replica-b publishing in term 1", func() bool {
		specs := shardSpecs(t, ns)
		for _, sp := range specs {
			if sp.Term != 1 || sp.PublishedBy != "replica-b" {
				return false
			}
		}
		return len(specs) == DefaultShards
	})
	eventually(t, 10*time.Second, "the follower adopting term 1", func() bool { return c.Status().Term == 1 && c.Status().Rows == len(tab.Assignments) })
	sawOld := watchTable(fc, "build01")
	before := shardVersions(t, ns)

	// replica-a resumes, its renewal older than the renew deadline: it writes nothing.
	a.leader.renewed(resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a", LeaderTransitions: 0}, time.Now().Add(-aOpts.RenewDeadline), nil)
	err := a.pub.publish(ctx, &enc, &state.State{Table: onCluster(tab, "build03")}, fullSpeed())
	if !errors.Is(err, errFenced) || !strings.Contains(err.Error(), "renew deadline") {
		t.Errorf("the resumed leader's publication: %v, want fenced by the renew deadline", err)
	}
	if s := a.Status(); s.Role != RoleFenced {
		t.Errorf("the resumed leader's role %q, want %q", s.Role, RoleFenced)
	}
	// Had it renewed just before it stopped, the newer term deposes it.
	a.leader.renewed(resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a", LeaderTransitions: 0}, time.Now(), nil)
	err = a.pub.publish(ctx, &enc, &state.State{Table: onCluster(tab, "build03")}, fullSpeed())
	if !errors.Is(err, errFenced) || !strings.Contains(err.Error(), "term 1") {
		t.Errorf("the resumed leader's publication: %v, want deposed by term 1", err)
	}
	if err := a.pub.writeShard(ctx, "table-00", v1alpha1.TableShardSpec{Shards: 16, Publication: 1 << 40, Checksum: "sha256:x"}); !errors.Is(err, errFenced) {
		t.Errorf("a deposed leader's shard write: %v, want fenced", err)
	}
	if s := a.Status(); s.Role != RoleFenced || !strings.Contains(s.Fenced, "term 1") {
		t.Errorf("the deposed leader's status: role %q, fenced %q", s.Role, s.Fenced)
	}
	if after := shardVersions(t, ns); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the deposed leader wrote shards: %v, then %v", before, after)
	}

	// Its term written anyway (a write the API server took before the fence): refused, then repaired.
	start := time.Now()
	for _, o := range termed(shardObjects(t, onCluster(tab, "build01"), nil, DefaultShards, 1<<40), 0, "replica-a") {
		cur := &v1alpha1.TableShard{}
		if err := apiClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Name}, cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec = o.Spec
		if err := apiClient.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "replica-b repairing the shards of term 0", func() bool {
		for _, sp := range shardSpecs(t, ns) {
			if sp.Term != 1 || sp.PublishedBy != "replica-b" {
				return false
			}
		}
		return c.Status().ShardSetRefused == ""
	})
	t.Logf("shards of the old term rewritten: repaired in %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	if sawOld() {
		t.Error("the follower adopted the deposed leader's table after the new leader's")
	}
	if s := c.Status(); s.Term != 1 {
		t.Errorf("the follower's term %d, want 1", s.Term)
	}
}

// TestForgedShardRefusedAndRepaired: a hand-written TableShard (shards: 1,
// a high publication, a valid checksum, the leader's term and name) does
// not replace the followers' table, and the leader rewrites it; rows on an
// unknown or blocked cluster are refused. Issue 18: such a shard took both
// followers from 125 rows to 2, and admissions went to build04 and
// no-such-cluster.
func TestForgedShardRefusedAndRepaired(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	tab := &table.Table{Assignments: smallTable().Assignments[:125]}
	for i := range tab.Assignments { // build04 is blocked here
		if tab.Assignments[i].Cluster == "build04" {
			tab.Assignments[i].Cluster = "build01"
		}
	}
	l := startBackend(t, apiConfig, testOptions(ns, "replica-a"))
	l.Watch(newFakeReplica(tab, nil))
	runBackend(t, l, true, nil)
	eventually(t, 10*time.Second, "a publication", func() bool { return l.Status().PublicationServed > 0 })
	ff := newFakeReplica(&table.Table{}, nil)
	ff.checkRow = func(a table.Assignment) error {
		if a.Cluster == "build04" || a.Cluster == "no-such-cluster" {
			return fmt.Errorf("cluster %s: blocked or unknown", a.Cluster)
		}
		return nil
	}
	f := startBackend(t, apiConfig, testOptions(ns, "replica-b"))
	f.Watch(ff)
	runBackend(t, f, false, nil)
	eventually(t, 10*time.Second, "the follower's 125 rows", func() bool { return f.Status().Rows == 125 })
	saw04, sawUnknown := watchTable(ff, "build04"), watchTable(ff, "no-such-cluster")
	fewest := fewestRows(ff)
	term := l.Status().Term
	original := shardSpecs(t, ns)["table-00"]
	repaired := func() bool {
		sp := shardSpecs(t, ns)["table-00"]
		return sp.Shards == DefaultShards && sp.PublishedBy == "replica-a" && sp.Checksum == original.Checksum
	}

	forged := func(n int, rows []table.Assignment) *v1alpha1.TableShard {
		o := termed(shardObjects(t, &table.Table{Assignments: rows}, nil, n, 1<<40), term, "replica-a")[0]
		return o
	}
	// 1. shards: 1 over table-00, two rows on build04 and no-such-cluster.
	two := []table.Assignment{{Job: tab.Assignments[0].Job, Cluster: "build04", Reason: table.ReasonBalanced}, {Job: tab.Assignments[1].Job, Cluster: "no-such-cluster", Reason: table.ReasonBalanced}}
	start := time.Now()
	cur := &v1alpha1.TableShard{}
	if err := apiClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "table-00"}, cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec = forged(1, two).Spec
	if err := apiClient.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the leader repairing table-00", repaired)
	t.Logf("a forged shards: 1 over table-00: repaired in %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	if n := fewest(); n != 125 {
		t.Errorf("the follower's table went down to %d rows, want 125 throughout", n)
	}
	fewest = fewestRows(ff)

	// 2. A shard of the right place, term and writer, with two rows moved to build04 and no-such-cluster.
	var rows0 []table.Assignment
	for _, a := range tab.Assignments {
		if shardOf(a.Job, DefaultShards) == 0 {
			rows0 = append(rows0, a)
		}
	}
	moved := append([]table.Assignment(nil), rows0...)
	moved[0].Cluster, moved[1].Cluster = "build04", "no-such-cluster"
	objs := termed(shardObjects(t, &table.Table{Assignments: moved}, nil, 1, 1<<40), term, "replica-a")
	spec := objs[0].Spec
	spec.Shards = DefaultShards // rows of shard 0 of 16; encoded as one shard, they are the same JSON
	start = time.Now()
	if err := apiClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "table-00"}, cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec = spec
	if err := apiClient.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the leader repairing table-00 again", repaired)
	t.Logf("a forged table-00 of the leader's term: repaired in %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	if saw04() || sawUnknown() {
		t.Error("the follower put a row on build04 or no-such-cluster in force")
	}
	if n := fewest(); n < 123 { // the two refused rows may be left out until the repair
		t.Errorf("the follower's table went down to %d rows, want at least 123", n)
	}
	eventually(t, 5*time.Second, "the follower's 125 rows again", func() bool { return f.Status().Rows == 125 })
	if got := f.Status().Rows; got != 125 {
		t.Errorf("the follower serves %d rows, want 125", got)
	}
	if st := f.Status(); st.ShardSetRefused != "" {
		t.Errorf("after the repair the follower still refuses: %s", st.ShardSetRefused)
	}
}

// TestLongJobNamesDoNotStopPublication: rows of 200 KB job names that
// overflow their shard are left out of the publication, said so, and the
// other rows' changes still reach the followers. Issue 18: the leader
// logged "65 rows are 2531491 bytes compressed, more than the 1048576 a
// shard may hold" every 10 s and followers ignored drains.
func TestLongJobNamesDoNotStopPublication(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	tab := smallTable()
	r := rand.New(rand.NewPCG(7, 8))
	long := 0
	for long < 10 {
		var sb strings.Builder
		sb.WriteString("rehearse-")
		for range 200 << 10 {
			sb.WriteByte("0123456789abcdef"[r.IntN(16)])
		}
		if name := sb.String(); shardOf(name, DefaultShards) == 0 {
			tab.Assignments = append(tab.Assignments, table.Assignment{Job: name, Cluster: "build01", Reason: table.ReasonBalanced})
			long++
		}
	}
	tab.Sort()
	fl := newFakeReplica(tab, nil)
	l := startBackend(t, apiConfig, testOptions(ns, "replica-a"))
	l.Watch(fl)
	runBackend(t, l, true, nil)
	eventually(t, 20*time.Second, "a publication", func() bool { return l.Status().PublicationServed > 0 })
	st := l.Status()
	t.Logf("leader: %d rows served, %d left out, publish error %q, degraded %v", st.Rows, st.RowsUnpublished, st.LastPublishError, st.Degraded)
	if st.LastPublishError != "" || st.RowsUnpublished == 0 || st.RowsUnpublished > long || len(st.Degraded) == 0 {
		t.Errorf("leader status %+v: want a publication leaving some long rows out, and degraded", st)
	}
	sp := shardSpecs(t, ns)["table-00"]
	t.Logf("table-00: %d rows, %d bytes compressed", sp.Rows, len(sp.Data))
	ff := newFakeReplica(&table.Table{}, nil)
	f := startBackend(t, apiConfig, testOptions(ns, "replica-b"))
	f.Watch(ff)
	runBackend(t, f, false, nil)
	eventually(t, 10*time.Second, "the follower adopting", func() bool { return f.Status().Rows == st.Rows })
	// A drain moves a row: the follower follows within 2 s.
	moved := tab.Assignments[3]
	moved.Cluster, moved.Reason = "build02", table.ReasonBalanced
	fl.setRow(moved)
	took := eventually(t, 5*time.Second, "the follower following the moved row", func() bool {
		ok := false
		ff.with(func(f *fakeReplica) {
			for _, a := range f.state.Table.Assignments {
				if a.Job == moved.Job {
					ok = a.Cluster == "build02"
				}
			}
		})
		return ok
	})
	t.Logf("the follower followed a moved row in %s", took.Round(time.Millisecond))
	if took > followBound {
		t.Errorf("followed in %s, want within %s", took, followBound)
	}
}

// TestHostileObjects: objects created with kubectl that are huge are
// refused by the CRDs' schemas; malformed ones (an unknown cluster, an
// absurd expiry) and a DispatcherReplica claiming 10^12 admissions are
// left out, and Status says so (issue 18's probes).
func TestHostileObjects(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	future := metav1.NewTime(time.Now().Add(time.Hour))
	absurd := metav1.NewTime(time.Now().Add(2562047 * time.Hour))
	huge := strings.Repeat("x", 200<<10)
	for _, o := range []client.Object{
		&v1alpha1.JobOverride{ObjectMeta: meta("huge-job"), Spec: v1alpha1.JobOverrideSpec{Job: huge, Cluster: "build01", Reason: "r"}},
		&v1alpha1.JobOverride{ObjectMeta: meta("huge-reason"), Spec: v1alpha1.JobOverrideSpec{Job: "j", Cluster: "build01", Reason: huge}},
		&v1alpha1.ClusterDrain{ObjectMeta: meta("huge-cluster"), Spec: v1alpha1.ClusterDrainSpec{Cluster: huge[:300], Reason: "r", Expires: future}},
	} {
		if err := apiClient.Create(ctx, o); err == nil || !strings.Contains(err.Error(), "Too long") {
			t.Errorf("%T %s created: %v", o, o.GetName(), err)
		}
	}
	good := &v1alpha1.JobOverride{ObjectMeta: meta("good"), Spec: v1alpha1.JobOverrideSpec{Job: "good", Cluster: "build01", Reason: "r", Expires: &future}}
	for _, o := range []client.Object{
		good,
		&v1alpha1.JobOverride{ObjectMeta: meta("unknown"), Spec: v1alpha1.JobOverrideSpec{Job: "unknown", Cluster: "no-such-cluster", Reason: "r", Expires: &future}},
		&v1alpha1.JobOverride{ObjectMeta: meta("forever"), Spec: v1alpha1.JobOverrideSpec{Job: "forever", Cluster: "build01", Reason: "r", Expires: &absurd}},
		&v1alpha1.ClusterDrain{ObjectMeta: meta("build02"), Spec: v1alpha1.ClusterDrainSpec{Cluster: "build02", Reason: "r", Expires: future}},
		&v1alpha1.ClusterDrain{ObjectMeta: meta("no-such-cluster"), Spec: v1alpha1.ClusterDrainSpec{Cluster: "no-such-cluster", Reason: "r", Expires: future}},
		&v1alpha1.ClusterDrain{ObjectMeta: meta("build03"), Spec: v1alpha1.ClusterDrainSpec{Cluster: "build03", Reason: "r", Expires: absurd}},
	} {
		if err := apiClient.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	inflated, err := encodeAdmissions(&demand.AdmissionCounts{Days: []demand.DayCounts{{Day: time.Now().UTC().Truncate(24 * time.Hour), Jobs: map[string]float64{"a": 1e12}}}})
	if err != nil {
		t.Fatal(err)
	}
	dr := &v1alpha1.DispatcherReplica{ObjectMeta: meta("replica-forged")}
	if err := apiClient.Create(ctx, dr); err != nil {
		t.Fatal(err)
	}
	dr.Status = v1alpha1.DispatcherReplicaStatus{Heartbeat: &metav1.Time{Time: time.Now()}, Admissions: inflated}
	if err := apiClient.Update(ctx, dr); err != nil {
		t.Fatal(err)
	}

	fa := newFakeReplica(&table.Table{}, nil)
	fa.counts = &demand.AdmissionCounts{Days: []demand.DayCounts{{Day: time.Now().UTC().Truncate(24 * time.Hour), Jobs: map[string]float64{"a": 3}}}}
	fa.checkRow = func(a table.Assignment) error { return knownClusters(a) }
	a := startBackend(t, apiConfig, testOptions(ns, "replica-a"))
	a.Watch(fa)
	runBackend(t, a, false, nil)
	eventually(t, 5*time.Second, "the overrides and drains followed", func() bool {
		var n, m int
		fa.with(func(f *fakeReplica) { n, m = len(f.overrides), len(f.drains) })
		return n == 1 && m == 1
	})
	fa.with(func(f *fakeReplica) {
		if f.overrides[0].Job != "good" || f.drains[0].Cluster != "build02" {
			t.Errorf("in force: %+v, %+v; want the good override and the build02 drain", f.overrides, f.drains)
		}
	})
	got, err := a.Demand().Demand(ctx)
	if err != nil || got["a"] != 3 {
		t.Errorf("demand %v, %v; want a: 3, the forged record left out", got, err)
	}
	st := a.Status()
	if len(st.ObjectsRefused) != 4 || len(st.ReplicasIgnored) != 1 || !strings.Contains(st.ReplicasIgnored[0], "1e+12 admissions") {
		t.Errorf("status: objects refused %q, replicas ignored %q", st.ObjectsRefused, st.ReplicasIgnored)
	}
	t.Logf("refused: %q; ignored: %q", st.ObjectsRefused, st.ReplicasIgnored)
}
