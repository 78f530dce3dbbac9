package kubestate

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// A drain is confirmed once the other live replicas have it in force:
// when ConfirmDrain returns, the follower was given it already. A live
// replica that never lists it is named once the bound passes; one whose
// heartbeat is stale is not waited for.
func TestDrainConfirmed(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	opts := testOptions(ns, "replica-a")
	opts.DrainConfirmTimeout = time.Second
	// replica-b beats every 200 ms; a load that delays its beats must not
	// make replica-a take it for gone (it counts as live for 3 intervals + 1 s).
	opts.HeartbeatInterval = 2 * time.Second
	a, fa := startBackend(t, apiConfig, opts), newFakeReplica(&table.Table{}, nil)
	b, fb := startBackend(t, apiConfig, testOptions(ns, "replica-b")), newFakeReplica(&table.Table{}, nil)
	a.Watch(fa)
	b.Watch(fb)
	runBackend(t, a, false, nil)
	runBackend(t, b, false, nil)
	ctx := context.Background()
	inForce := func(f *fakeReplica, cluster string) (yes bool) {
		f.with(func(f *fakeReplica) {
			yes = slices.ContainsFunc(f.drains, func(o table.Drain) bool { return o.Cluster == cluster })
		})
		return yes
	}
	eventually(t, 5*time.Second, "replica-b's record in replica-a's cache", func() bool {
		var l v1alpha1.DispatcherReplicaList
		return a.k.list(ctx, &l) == nil && slices.ContainsFunc(l.Items, func(dr v1alpha1.DispatcherReplica) bool {
			return dr.Name == "replica-b" && dr.Status.Heartbeat != nil
		})
	})

	now := time.Now().Truncate(time.Second).UTC()
	drain := table.Drain{Cluster: "build01", Reason: "upgrade", By: "alice", CreatedAt: now, Expires: now.Add(time.Hour)}
	if err := a.PutDrain(ctx, drain); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	unconfirmed, err := a.ConfirmDrain(ctx, drain)
	if err != nil || len(unconfirmed) != 0 {
		t.Fatalf("ConfirmDrain: %v, %v; want every replica confirmed", unconfirmed, err)
	}
	if !inForce(fb, "build01") {
		var l v1alpha1.DispatcherReplicaList
		_ = a.k.list(ctx, &l)
		for _, dr := range l.Items {
			t.Logf("record %s: heartbeat %v, drains %v (now %v)", dr.Name, dr.Status.Heartbeat, dr.Status.Drains, time.Now())
		}
		t.Fatal("ConfirmDrain returned before replica-b had the drain in force")
	}
	t.Logf("replica-b confirmed the drain %s after it was written", time.Since(start).Round(time.Millisecond))

	// A live replica that never lists the drain is named; a stale one is not waited for.
	for name, beat := range map[string]time.Time{"replica-stuck": time.Now().Add(time.Minute), "replica-gone": time.Now().Add(-time.Hour)} {
		dr := &v1alpha1.DispatcherReplica{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Status: v1alpha1.DispatcherReplicaStatus{Heartbeat: &metav1.Time{Time: beat}}}
		if err := a.k.client.Create(ctx, dr); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "the hand-made records in a's cache", func() bool {
		var l v1alpha1.DispatcherReplicaList
		return a.k.list(ctx, &l) == nil && len(l.Items) == 4
	})
	start = time.Now()
	unconfirmed, err = a.ConfirmDrain(ctx, drain)
	if err != nil || !slices.Equal(unconfirmed, []string{"replica-stuck"}) {
		t.Errorf("ConfirmDrain with a stuck replica: %v, %v; want [replica-stuck]", unconfirmed, err)
	}
	if waited := time.Since(start); waited < opts.DrainConfirmTimeout || waited > opts.DrainConfirmTimeout+2*time.Second {
		t.Errorf("waited %s for the stuck replica, want about %s", waited, opts.DrainConfirmTimeout)
	}
}
