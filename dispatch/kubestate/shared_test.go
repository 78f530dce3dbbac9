package kubestate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// twoReplicas starts two attached, running backends (no election) in a new namespace.
func twoReplicas(t *testing.T) (string, *Backend, *fakeReplica, *Backend, *fakeReplica) {
	t.Helper()
	ns := newNamespace(t)
	a, fa := startBackend(t, apiConfig, testOptions(ns, "replica-a")), newFakeReplica(&table.Table{}, nil)
	b, fb := startBackend(t, apiConfig, testOptions(ns, "replica-b")), newFakeReplica(&table.Table{}, nil)
	a.Watch(fa)
	b.Watch(fb)
	runBackend(t, a, false, nil)
	runBackend(t, b, false, nil)
	return ns, a, fa, b, fb
}

func TestOverridesFollowed(t *testing.T) {
	needAPI(t)
	ns, a, _, _, fb := twoReplicas(t)
	ctx := context.Background()
	now := time.Now()
	overrides := func() []table.Override {
		var out []table.Override
		fb.with(func(f *fakeReplica) { out = f.overrides })
		return out
	}

	o := table.Override{Job: "pull-ci-openshift-origin-main-e2e-aws", Cluster: "build02", Reason: "flaky on build01", By: "alice",
		CreatedAt: now, Expires: now.Add(time.Hour)}
	weird := table.Override{Job: "Periodic_Job With Spaces", Cluster: "build03", Reason: "r", CreatedAt: now}
	for _, o := range []table.Override{o, weird} {
		if err := a.PutOverride(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	second := func(o table.Override) table.Override {
		o.CreatedAt, o.Expires = apiTime(o.CreatedAt).UTC(), goTime(apiTime(o.Expires))
		return o
	}
	want := []table.Override{second(weird), second(o)} // sorted by job
	eventually(t, 5*time.Second, "the other replica's SetOverrides", func() bool { return cmp.Equal(overrides(), want) })

	// Replacing it.
	o.Cluster, o.Reason = "build05", "moved again"
	if err := a.PutOverride(ctx, o); err != nil {
		t.Fatal(err)
	}
	want = []table.Override{second(weird), second(o)}
	eventually(t, 5*time.Second, "the replaced override", func() bool { return cmp.Equal(overrides(), want) })

	// An override made with kubectl under another name is deleted too.
	manual := &v1alpha1.JobOverride{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-hand"},
		Spec: v1alpha1.JobOverrideSpec{Job: o.Job, Cluster: "build09", Reason: "kubectl"}}
	if err := apiClient.Create(ctx, manual); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the override made with kubectl", func() bool { return len(overrides()) == 3 })
	if err := a.DeleteOverride(ctx, o.Job); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the deletion", func() bool { return cmp.Equal(overrides(), []table.Override{second(weird)}) })
	if err := a.DeleteOverride(ctx, "no-such-job"); err != nil {
		t.Errorf("deleting a missing override: %v", err)
	}
	if err := a.PutOverride(ctx, table.Override{Job: "x"}); err == nil {
		t.Error("an override without a cluster was written")
	}
}

func TestDrainsFollowed(t *testing.T) {
	needAPI(t)
	_, a, _, _, fb := twoReplicas(t)
	ctx := context.Background()
	now := time.Now()
	got := func() []table.Drain {
		var out []table.Drain
		fb.with(func(f *fakeReplica) { out = f.drains })
		return out
	}
	drain := table.Drain{Cluster: "build01", Reason: "maintenance", By: "bob", CreatedAt: now, Expires: now.Add(6 * time.Hour)}
	cap := table.Drain{Cluster: "Build_02", Capacity: 30, Reason: "slow", By: "health", CreatedAt: now, Expires: now.Add(time.Hour)}
	for _, o := range []table.Drain{drain, cap} {
		if err := a.PutDrain(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	second := func(o table.Drain) table.Drain {
		o.CreatedAt, o.Expires = goTime(apiTime(o.CreatedAt)), goTime(apiTime(o.Expires))
		return o
	}
	want := []table.Drain{second(cap), second(drain)}
	eventually(t, 5*time.Second, "the other replica's SetDrains", func() bool { return cmp.Equal(got(), want) })
	if err := a.DeleteDrain(ctx, "Build_02"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the deletion", func() bool { return cmp.Equal(got(), []table.Drain{second(drain)}) })
	if err := a.PutDrain(ctx, table.Drain{Cluster: "build03", Reason: "forever"}); err == nil {
		t.Error("a drain without expiry was written")
	}
}

func TestClaimRace(t *testing.T) {
	needAPI(t)
	_, a, fa, b, fb := twoReplicas(t)
	ctx := context.Background()
	const n = 20
	type result struct {
		a, b       table.Assignment
		errA, errB error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		job := fmt.Sprintf("rehearse-%d-pull-ci-openshift-release-main-e2e", i)
		prov := &jobs.Job{Name: job, Agent: jobs.Agent}
		wg.Go(func() {
			results[i].a, results[i].errA = a.Claim(ctx, table.Assignment{Job: job, Cluster: "build01", Reason: table.ReasonBalanced}, prov)
		})
		wg.Go(func() {
			results[i].b, results[i].errB = b.Claim(ctx, table.Assignment{Job: job, Cluster: "build02", Reason: table.ReasonBalanced}, prov)
		})
	}
	wg.Wait()
	wins := map[string]int{}
	for i, r := range results {
		if r.errA != nil || r.errB != nil {
			t.Fatalf("job %d: claims failed: %v, %v", i, r.errA, r.errB)
		}
		if r.a != r.b {
			t.Errorf("job %d: replica a got %+v, replica b %+v", i, r.a, r.b)
		}
		wins[r.a.Cluster]++
	}
	t.Logf("winners: %v", wins)

	// Each replica adopts the rows of the placements (both its own and the other's).
	eventually(t, 5*time.Second, "both replicas adopting every placement", func() bool {
		count := func(f *fakeReplica) (n int) {
			f.with(func(f *fakeReplica) { n = len(f.state.Table.Assignments) })
			return n
		}
		return count(fa) == n && count(fb) == n
	})
	fa.with(func(f *fakeReplica) {
		fb.with(func(g *fakeReplica) {
			if diff := cmp.Diff(f.state.Table, g.state.Table); diff != "" {
				t.Errorf("the replicas' tables differ (-a +b):\n%s", diff)
			}
			if len(g.provAdopted) == 0 {
				t.Error("no provisional record adopted")
			}
		})
	})

	// A later claim gets the row in force.
	won, err := b.Claim(ctx, table.Assignment{Job: "rehearse-0-pull-ci-openshift-release-main-e2e", Cluster: "build09"}, nil)
	if err != nil || won != results[0].a {
		t.Errorf("a later claim got %+v, %v; want %+v", won, err, results[0].a)
	}
	if st := a.Status(); st.PendingClaims != 0 {
		t.Errorf("%d claims pending", st.PendingClaims)
	}
}

// TestUnreachableAPIServer: a backend whose API server does not answer
// fails to start, and its writes fail fast, with clear errors.
func TestUnreachableAPIServer(t *testing.T) {
	needAPI(t)
	p := newProxy(t, apiConfig.Host)
	p.setUp(false)
	opts := testOptions("nowhere", "replica-x")
	opts.Logger = testLogger(t, "replica-x")
	b, err := New(p.config(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.Start(ctx); err == nil || !strings.Contains(err.Error(), "the shared state was not listed") {
		t.Errorf("Start: %v", err)
	} else {
		t.Logf("Start: %v", err)
	}
	start := time.Now()
	_, err = b.Claim(context.Background(), table.Assignment{Job: "j", Cluster: "c"}, nil)
	if err == nil || !strings.Contains(err.Error(), "the write was not made") || time.Since(start) > 2*time.Second {
		t.Errorf("Claim took %s: %v", time.Since(start), err)
	} else {
		t.Logf("Claim failed in %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if err := b.PutOverride(context.Background(), table.Override{Job: "j", Cluster: "c", Reason: "r"}); err == nil || !strings.Contains(err.Error(), "the write was not made") {
		t.Errorf("PutOverride: %v", err)
	}
}

// TestClaimRetried: a claim made while the API server is unreachable
// fails fast, and is made once it answers again; a claim that lost
// meanwhile adopts the winner.
func TestClaimRetried(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	p := newProxy(t, apiConfig.Host)
	opts := testOptions(ns, "replica-c")
	opts.WriteTimeout = time.Second
	c, fc := startBackend(t, p.config(), opts), newFakeReplica(&table.Table{}, nil)
	c.Watch(fc)
	runBackend(t, c, false, nil)

	p.setUp(false)
	ours := table.Assignment{Job: "rehearse-1-pull-ci-a", Cluster: "build01", Reason: table.ReasonBalanced}
	lost := table.Assignment{Job: "rehearse-2-pull-ci-b", Cluster: "build01", Reason: table.ReasonBalanced}
	for _, row := range []table.Assignment{ours, lost} {
		start := time.Now()
		if _, err := c.Claim(ctx, row, nil); err == nil || time.Since(start) > opts.WriteTimeout+500*time.Millisecond {
			t.Fatalf("Claim with the API server unreachable took %s: %v", time.Since(start), err)
		}
	}
	if st := c.Status(); st.PendingClaims != 2 || st.LastAPIError == "" {
		t.Errorf("status %+v, want 2 claims pending and the API error", st)
	}
	// Another replica places the second job meanwhile.
	winner := table.Assignment{Job: lost.Job, Cluster: "build04", Reason: table.ReasonBalanced}
	spec, err := placementSpec(winner, nil, "replica-d", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := apiClient.Create(ctx, &v1alpha1.JobPlacement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ObjectName(lost.Job)}, Spec: spec}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	p.setUp(true)
	eventually(t, 20*time.Second, "the claims retried", func() bool { return c.Status().PendingClaims == 0 })
	jp := &v1alpha1.JobPlacement{}
	if err := apiClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: ObjectName(ours.Job)}, jp); err != nil {
		t.Fatalf("the retried claim: %v", err)
	}
	if row, _, _ := placementRow(jp); row != ours {
		t.Errorf("the retried claim recorded %+v, want %+v", row, ours)
	}
	eventually(t, 5*time.Second, "the winner adopted", func() bool {
		var got table.Assignment
		fc.with(func(f *fakeReplica) {
			for _, a := range f.rowsAdopted {
				if a.Job == lost.Job {
					got = a
				}
			}
		})
		return got == winner
	})
}

// TestWriteConflict: an update that lost a race reads the object again
// and writes once more.
func TestWriteConflict(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	b := startBackend(t, apiConfig, testOptions(ns, "replica-a"))
	o := table.Override{Job: "j", Cluster: "build01", Reason: "first"}
	if err := b.PutOverride(ctx, o); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the cache", func() bool {
		return b.k.cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "j"}, &v1alpha1.JobOverride{}) == nil
	})
	// Someone else updates it; the backend's cache may lag.
	jo := &v1alpha1.JobOverride{}
	if err := apiClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "j"}, jo); err != nil {
		t.Fatal(err)
	}
	jo.Spec.Reason = "kubectl edit"
	if err := apiClient.Update(ctx, jo); err != nil {
		t.Fatal(err)
	}
	o.Reason = "second"
	if err := b.PutOverride(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := apiClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "j"}, jo); err != nil || jo.Spec.Reason != "second" {
		t.Errorf("after the conflict: %+v, %v", jo.Spec, err)
	}
	if err := apiClient.Delete(ctx, jo); err != nil {
		t.Fatal(err)
	}
	o.Reason = "third" // the cache may still hold it: update, not found, create
	if err := b.PutOverride(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := apiClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "j"}, jo); err != nil || jo.Spec.Reason != "third" {
		t.Errorf("after the deletion: %+v, %v", jo.Spec, err)
	}
}

func TestNamesToDelete(t *testing.T) {
	type obj struct {
		name  string
		match bool
	}
	cases := []struct {
		name string
		objs []obj
		want []string
	}{
		{name: "the canonical object", objs: []obj{{"j", true}, {"other", false}}, want: []string{"j"}},
		{name: "not in the cache yet", objs: []obj{{"other", false}}, want: []string{"j"}},
		{name: "made with kubectl too", objs: []obj{{"by-hand", true}, {"j", true}}, want: []string{"by-hand", "j"}},
		{name: "the canonical name holds another job", objs: []obj{{"j", false}, {"by-hand", true}}, want: []string{"by-hand"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := namesToDelete("j", len(c.objs), func(i int) (string, bool) { return c.objs[i].name, c.objs[i].match })
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFollowingResumesRightAfterAnOutage: after the API server was
// unreachable for long enough that the informers back off for seconds, an
// override made once it answers again reaches the follower within 2 s:
// the backend reads the API server itself while it catches up.
func TestFollowingResumesRightAfterAnOutage(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	p := newProxy(t, apiConfig.Host)
	f, ff := startBackend(t, p.config(), testOptions(ns, "replica-f")), newFakeReplica(&table.Table{}, nil)
	f.Watch(ff)
	runBackend(t, f, false, nil)

	p.setUp(false)
	// Long enough for the reflectors' backoff to grow past the 2 s bound.
	time.Sleep(12 * time.Second)
	if st := f.Status(); st.LastAPIError == "" || !st.CatchingUp {
		t.Errorf("status during the outage %+v, want the API error and catching up", st)
	}
	p.setUp(true)
	o := table.Override{Job: "pull-ci-after-the-outage", Cluster: "build02", Reason: "back", CreatedAt: time.Now().Truncate(time.Second)}
	if err := apiClient.Create(ctx, &v1alpha1.JobOverride{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ObjectName(o.Job)}, Spec: jobOverrideSpec(o)}); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 90*time.Second, "the follower seeing the override made after the outage", func() bool {
		var got []table.Override
		ff.with(func(ff *fakeReplica) { got = ff.overrides })
		return slices.ContainsFunc(got, func(g table.Override) bool { return g.Job == o.Job && g.Cluster == o.Cluster })
	})
	t.Logf("an override made right after a 12 s outage reached the follower after %s", took.Round(time.Millisecond))
	if took > followBound {
		t.Errorf("the follower took %s, want at most %s", took, followBound)
	}
}
