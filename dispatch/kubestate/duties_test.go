package kubestate

import (
	"context"
	"maps"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func exists(t *testing.T, obj client.Object) bool {
	t.Helper()
	err := apiClient.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// TestLeaderCollects: the leader deletes expired overrides and drains and
// the records of replicas gone for longer than the demand window.
func TestLeaderCollects(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	past, future := metav1.NewTime(time.Now().Add(-time.Minute)), metav1.NewTime(time.Now().Add(time.Hour))
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	expiredOverride := &v1alpha1.JobOverride{ObjectMeta: meta("expired"), Spec: v1alpha1.JobOverrideSpec{Job: "expired", Cluster: "c", Reason: "r", Expires: &past}}
	liveOverride := &v1alpha1.JobOverride{ObjectMeta: meta("live"), Spec: v1alpha1.JobOverrideSpec{Job: "live", Cluster: "c", Reason: "r", Expires: &future}}
	forever := &v1alpha1.JobOverride{ObjectMeta: meta("forever"), Spec: v1alpha1.JobOverrideSpec{Job: "forever", Cluster: "c", Reason: "r"}}
	expiredDrain := &v1alpha1.ClusterDrain{ObjectMeta: meta("build01"), Spec: v1alpha1.ClusterDrainSpec{Cluster: "build01", Reason: "r", Expires: past}}
	liveDrain := &v1alpha1.ClusterDrain{ObjectMeta: meta("build02"), Spec: v1alpha1.ClusterDrainSpec{Cluster: "build02", Reason: "r", Expires: future}}
	gone := &v1alpha1.DispatcherReplica{ObjectMeta: meta("replica-gone")}
	recent := &v1alpha1.DispatcherReplica{ObjectMeta: meta("replica-recent")}
	for _, o := range []client.Object{expiredOverride, liveOverride, forever, expiredDrain, liveDrain, gone, recent} {
		if err := apiClient.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for dr, age := range map[*v1alpha1.DispatcherReplica]time.Duration{gone: 15 * 24 * time.Hour, recent: 13 * 24 * time.Hour} {
		dr.Status.Heartbeat = &metav1.Time{Time: time.Now().Add(-age)}
		if err := apiClient.Update(ctx, dr); err != nil {
			t.Fatal(err)
		}
	}
	a := startBackend(t, apiConfig, testOptions(ns, "replica-a"))
	a.Watch(newFakeReplica(&table.Table{}, nil))
	runBackend(t, a, true, nil)
	eventually(t, 10*time.Second, "the expired objects collected", func() bool {
		return !exists(t, expiredOverride) && !exists(t, expiredDrain) && !exists(t, gone)
	})
	time.Sleep(500 * time.Millisecond) // a few more collections
	for _, o := range []client.Object{liveOverride, forever, liveDrain, recent, &v1alpha1.DispatcherReplica{ObjectMeta: meta("replica-a")}} {
		if !exists(t, o) {
			t.Errorf("%T %s was deleted", o, o.GetName())
		}
	}
}

// TestLeaderFoldsPlacements: a placement reaches the leader's table
// (AdoptRows), is published, and its JobPlacement deleted; a placement the
// table places elsewhere is left for placementGrace.
func TestLeaderFoldsPlacements(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	tab := smallTable()
	fa := newFakeReplica(tab, nil)
	opts := testOptions(ns, "replica-a")
	opts.PlacedRowsDelay = time.Millisecond // fold at the next publication
	a := startBackend(t, apiConfig, opts)
	a.Watch(fa)
	runBackend(t, a, true, nil)
	eventually(t, 10*time.Second, "the first publication", func() bool { return a.Status().PublicationServed > 0 })

	placed := table.Assignment{Job: "rehearse-7-pull-ci-x", Cluster: "build03", Reason: table.ReasonBalanced, AssignedAt: time.Now().UTC()}
	elsewhere := tab.Assignments[5]
	elsewhere.Cluster = "build99"
	var objs []*v1alpha1.JobPlacement
	for _, row := range []table.Assignment{placed, elsewhere} {
		spec, err := placementSpec(row, nil, "replica-b", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		jp := &v1alpha1.JobPlacement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ObjectName(row.Job)}, Spec: spec}
		if err := apiClient.Create(ctx, jp); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, jp)
	}
	eventually(t, 10*time.Second, "the placement folded", func() bool { return !exists(t, objs[0]) })
	fa.with(func(f *fakeReplica) {
		if len(f.rowsAdopted) != 1 || f.rowsAdopted[0] != placed {
			t.Errorf("the leader adopted %+v, want only %+v (the table has the other job)", f.rowsAdopted, placed)
		}
	})
	follower := startBackend(t, apiConfig, testOptions(ns, "replica-b"))
	st, err := follower.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := indexOf(st.Table.Assignments, placed.Job); i < 0 || st.Table.Assignments[i] != placed {
		t.Errorf("the published table lacks the placed row")
	}
	if i := indexOf(st.Table.Assignments, elsewhere.Job); i < 0 || st.Table.Assignments[i] != tab.Assignments[5] {
		t.Errorf("the published table's row of %s is not the leader's", elsewhere.Job)
	}
	if !exists(t, objs[1]) {
		t.Error("the placement the table overrides was deleted before its grace")
	}
}

func indexOf(rows []table.Assignment, job string) int {
	for i, a := range rows {
		if a.Job == job {
			return i
		}
	}
	return -1
}

// TestPublicationsGrow: a new leader numbers its publications after the
// highest in the API, and with fewer shards deletes the others.
func TestPublicationsGrow(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	createShards(t, ns, smallTable(), DefaultShards, 41)
	opts := testOptions(ns, "replica-a")
	opts.Shards = 4
	fa := newFakeReplica(smallTable(), nil)
	a := startBackend(t, apiConfig, opts)
	a.Watch(fa)
	runBackend(t, a, true, nil)
	eventually(t, 10*time.Second, "the publication of 4 shards", func() bool {
		return a.Status().PublicationServed == 42 && len(shardVersions(t, ns)) == 4
	})
	var first string
	fa.with(func(f *fakeReplica) { first = f.state.Table.Assignments[0].Job })
	fa.setRow(table.Assignment{Job: first, Cluster: "build42"})
	eventually(t, 10*time.Second, "publication 43", func() bool { return a.Status().PublicationServed == 43 })
	var l v1alpha1.TableShardList
	if err := apiClient.List(ctx, &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	pubs := map[int64]int{}
	for _, o := range l.Items {
		pubs[o.Spec.Publication]++
		if o.Spec.Shards != 4 || o.Spec.PublishedBy != "replica-a" {
			t.Errorf("shard %s: %d shards, by %q", o.Name, o.Spec.Shards, o.Spec.PublishedBy)
		}
	}
	if pubs[42] != 3 || pubs[43] != 1 {
		t.Errorf("publications of the shards: %v, want 3 of 42 and 1 of 43", pubs)
	}
}

// TestAnEmptyTableIsNotPublished: a leader whose table has no rows yet (no
// dispatch, the shards unreadable at its start) leaves the published table
// in the API alone; its first row is published.
func TestAnEmptyTableIsNotPublished(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	createShards(t, ns, smallTable(), DefaultShards, 41)
	before := shardVersions(t, ns)
	fa := newFakeReplica(&table.Table{}, nil)
	fa.refuseTables = true
	a := startBackend(t, apiConfig, testOptions(ns, "replica-a"))
	a.Watch(fa)
	runBackend(t, a, true, nil)
	eventually(t, 10*time.Second, "leading", func() bool { return a.Status().Role == RoleLeader })
	time.Sleep(10 * testOptions(ns, "").PublishInterval)
	if after := shardVersions(t, ns); !maps.Equal(before, after) {
		t.Errorf("a leader with an empty table wrote the shards: %v, then %v", before, after)
	}
	fa.AdoptRows([]table.Assignment{{Job: "first", Cluster: "build01", Reason: table.ReasonBalanced}}, nil)
	eventually(t, 10*time.Second, "publication 42", func() bool { return a.Status().PublicationServed == 42 })
}

// createShards writes the table into ns as the shards of a publication.
func createShards(t *testing.T, ns string, tab *table.Table, n int, publication int64) {
	t.Helper()
	for _, o := range shardObjects(t, tab, nil, n, publication) {
		o.Namespace = ns
		if err := apiClient.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
}
