package kubestate

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// shardVersions are the resource versions of the table shards in ns.
func shardVersions(t *testing.T, ns string) map[string]string {
	t.Helper()
	var l v1alpha1.TableShardList
	if err := apiClient.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range l.Items {
		out[o.Name] = o.ResourceVersion
	}
	return out
}

// TestPublishAndFollow publishes 50,000 rows, loads them into a second
// replica, and follows a change of one row.
func TestPublishAndFollow(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	tab, prov := bigTable(t), someProvisional(300)
	leaderFake := newFakeReplica(tab, prov)
	leader := startBackend(t, apiConfig, testOptions(ns, "replica-a"))
	leader.Watch(leaderFake)
	start := time.Now()
	runBackend(t, leader, true, nil)
	eventually(t, 60*time.Second, "the first publication", func() bool { return leader.Status().PublicationServed > 0 })
	published := time.Since(start)
	if got := len(shardVersions(t, ns)); got != DefaultShards {
		t.Fatalf("%d table shards, want %d", got, DefaultShards)
	}
	st := leader.Status()
	if st.Role != RoleLeader || st.LastPublished != 1 || st.LastPublishError != "" {
		t.Errorf("leader status %+v", st)
	}
	t.Logf("published %d rows in %d shards within %s of the start (election included)", len(tab.Assignments), DefaultShards, published.Round(time.Millisecond))

	// A second replica loads the same table.
	start = time.Now()
	follower := startBackend(t, apiConfig, testOptions(ns, "replica-b"))
	synced := time.Since(start)
	loaded, err := follower.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a follower listed %d rows in %s and loaded them in %s more", len(loaded.Table.Assignments),
		synced.Round(time.Millisecond), (time.Since(start) - synced).Round(time.Millisecond))
	// A replica's start: the dispatcher serves that table before it reads any config.
	d, err := dispatch.New(context.Background(), dispatch.Options{
		DispatcherConfigPath: "unread.yaml", ClusterConfigPath: "unread.yaml", JobConfigDir: "unread",
		DeferInputs: true, Demand: follower.Demand(),
	}, follower)
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Status(); !s.Ready || s.TableSize != len(tab.Assignments) {
		t.Fatalf("dispatcher on the loaded table: %+v", s)
	}
	if a, ok := d.Lookup(tab.Assignments[777].Job); !ok || a.Cluster != tab.Assignments[777].Cluster {
		t.Errorf("lookup of %s: %+v, %v", tab.Assignments[777].Job, a, ok)
	}
	t.Logf("start to ready (informers synced, table loaded, dispatcher serving it) on %d rows: %s", len(tab.Assignments), time.Since(start).Round(time.Millisecond))
	want := &state.State{Table: copyTable(tab), Provisional: prov, Demand: &state.Demand{Jobs: map[string]float64{}}}
	want.Table.GeneratedAt = tab.GeneratedAt.Truncate(time.Second).UTC()
	for _, a := range tab.Assignments {
		want.Demand.Jobs[a.Job] = a.Demand // the leader's demand, as its rows carry it
	}
	if diff := cmp.Diff(want, loaded, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("loaded state (-published +loaded):\n%s", diff)
	}
	if st := follower.Status(); st.PublicationServed != 1 || st.Rows != len(tab.Assignments) || st.Role != RoleFollower || st.Leader != "replica-a" {
		t.Errorf("follower status %+v", st)
	}

	// It follows a change of one row; one shard is written.
	followerFake := newFakeReplica(loaded.Table, loaded.Provisional)
	follower.Watch(followerFake)
	runBackend(t, follower, false, nil)
	before := shardVersions(t, ns)
	moved := tab.Assignments[12345]
	moved.Cluster, moved.Reason, moved.Detail = "build07", table.ReasonOverride, "an operator's reschedule"
	start = time.Now()
	leaderFake.setRow(moved)
	took := eventually(t, 10*time.Second, "the follower adopting the moved row", func() bool {
		var got table.Assignment
		followerFake.with(func(f *fakeReplica) { got = f.state.Table.Assignments[12345] })
		return got == moved
	})
	t.Logf("the follower adopted a change of one row %s after the leader's table changed", took.Round(time.Millisecond))
	if took > followBound {
		t.Errorf("the follower took %s to follow one row, want at most %s", took, followBound)
	}
	after := shardVersions(t, ns)
	var rewritten []string
	for name, rv := range after {
		if before[name] != rv {
			rewritten = append(rewritten, name)
		}
	}
	if want := []string{shardName(shardOf(moved.Job, DefaultShards))}; !cmp.Equal(rewritten, want) {
		t.Errorf("shards rewritten %v, want %v", rewritten, want)
	}
	eventually(t, 5*time.Second, "the follower serving publication 2", func() bool { return follower.Status().PublicationServed == 2 })
	followerFake.with(func(f *fakeReplica) {
		if diff := cmp.Diff(leaderFake.state.Table.Assignments, f.state.Table.Assignments); diff != "" {
			t.Errorf("follower's table (-leader +follower):\n%s", diff)
		}
	})
}

// TestCorruptShardInTheAPI skips a shard whose data fails its checksum and
// applies the others.
func TestCorruptShardInTheAPI(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	tab := smallTable()
	objs := shardObjects(t, tab, nil, 4, 7)
	objs[2].Spec.Data = objs[1].Spec.Data
	for _, o := range objs {
		o.Namespace = ns
		if err := apiClient.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	opts := testOptions(ns, "replica-a")
	opts.Shards = 4
	b := startBackend(t, apiConfig, opts)
	st, err := b.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var want []table.Assignment
	for _, a := range tab.Assignments {
		if shardOf(a.Job, 4) != 2 {
			want = append(want, a)
		}
	}
	if diff := cmp.Diff(want, st.Table.Assignments); diff != "" {
		t.Errorf("rows of the good shards (-want +got):\n%s", diff)
	}
	s := b.Status()
	if len(s.ShardsSkipped) != 1 || s.ShardsSkipped[0].Name != "table-02" || s.PublicationServed != 7 {
		t.Errorf("status %+v, want table-02 skipped and publication 7", s)
	}
}

// TestLoadOverlaysPlacements gives the placements the table lacks at Load.
func TestLoadOverlaysPlacements(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	placed := table.Assignment{Job: "rehearse-42-pull-ci-x", Cluster: "build03", Reason: table.ReasonBalanced, AssignedAt: time.Now().UTC()}
	spec, err := placementSpec(placed, nil, "replica-x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	jp := &v1alpha1.JobPlacement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ObjectName(placed.Job)}, Spec: spec}
	if err := apiClient.Create(ctx, jp); err != nil {
		t.Fatal(err)
	}
	b := startBackend(t, apiConfig, testOptions(ns, "replica-a"))
	st, err := b.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Table == nil || len(st.Table.Assignments) != 1 || st.Table.Assignments[0] != placed {
		t.Errorf("loaded table %+v, want the placement's row %+v", st.Table, placed)
	}
}
