package kubestate

import (
	"context"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// candidate is a backend campaigning, with what its onLead saw.
type candidate struct {
	b    *Backend
	fake *fakeReplica
	stop func()

	mu     sync.Mutex
	terms  int
	inTerm bool
}

func (c *candidate) onLead(ctx context.Context) {
	c.mu.Lock()
	c.terms++
	c.inTerm = true
	c.mu.Unlock()
	<-ctx.Done()
	time.Sleep(100 * time.Millisecond) // the dispatcher finishing its work
	c.mu.Lock()
	c.inTerm = false
	c.mu.Unlock()
}

func (c *candidate) campaign(t *testing.T) {
	c.stop = runBackend(t, c.b, true, c.onLead)
}

func leaders(cs ...*candidate) (n int, who *candidate) {
	for _, c := range cs {
		if c.b.Leading() {
			n++
			who = c
		}
	}
	return n, who
}

func TestElect(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	opts := testOptions(ns, "")
	var cs []*candidate
	for _, name := range []string{"replica-a", "replica-b"} {
		o := opts
		o.Replica, o.Address = name, "http://"+name+".test:8080"
		c := &candidate{b: startBackend(t, apiConfig, o), fake: newFakeReplica(&table.Table{}, nil)}
		c.b.Watch(c.fake)
		c.campaign(t)
		cs = append(cs, c)
	}
	eventually(t, 10*time.Second, "a leader", func() bool { n, _ := leaders(cs...); return n == 1 })
	// Exactly one leads, and the other knows which.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := leaders(cs...); n != 1 {
			t.Fatalf("%d leaders", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, leader := leaders(cs...)
	follower := cs[0]
	if leader == cs[0] {
		follower = cs[1]
	}
	eventually(t, 5*time.Second, "the follower seeing the leader and its address", func() bool {
		name, address, self := follower.b.Leader()
		return name == leader.b.k.opts.Replica && address == leader.b.k.opts.Address && !self
	})
	if name, _, self := leader.b.Leader(); !self || name != leader.b.k.opts.Replica {
		t.Errorf("the leader's Leader() = %s, %v", name, self)
	}
	if st := leader.b.Status(); st.Role != RoleLeader {
		t.Errorf("leader's role %q", st.Role)
	}

	// The leader stops: the other leads within LeaseDuration + RetryPeriod
	// (the Lease is released, so within a retry period).
	leader.stop()
	took := eventually(t, opts.LeaseDuration+opts.RetryPeriod, "the follower leading", func() bool { return follower.b.Leading() })
	t.Logf("the follower led %s after the leader stopped", took.Round(time.Millisecond))
	leader.fake.with(func(f *fakeReplica) {
		if len(f.leadingCalls) < 2 || f.leadingCalls[len(f.leadingCalls)-1] {
			t.Errorf("the stopped leader was told %v", f.leadingCalls)
		}
	})
	leader.mu.Lock()
	if leader.inTerm {
		t.Error("the stopped leader's onLead had not returned when it stopped")
	}
	leader.mu.Unlock()

	// It comes back (a restarted pod): it follows.
	back := &candidate{b: startBackend(t, apiConfig, leader.b.k.opts), fake: newFakeReplica(&table.Table{}, nil)}
	back.b.Watch(back.fake)
	back.campaign(t)
	cs = []*candidate{back, follower}
	time.Sleep(2 * opts.RetryPeriod)
	if back.b.Leading() || !follower.b.Leading() {
		t.Fatalf("after the old leader came back: leading %v and %v", back.b.Leading(), follower.b.Leading())
	}

	// The Lease is taken from the leader: it steps down, keeps running and
	// campaigns again; one of the two leads once the intruder's Lease expired.
	cs2, err := kubernetes.NewForConfig(apiConfig)
	if err != nil {
		t.Fatal(err)
	}
	leases := cs2.CoordinationV1().Leases(ns)
	current := follower
	lease, err := leases.Get(context.Background(), DefaultLeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewMicroTime(time.Now())
	lease.Spec = coordinationv1.LeaseSpec{HolderIdentity: ptr.To("intruder"), LeaseDurationSeconds: ptr.To[int32](3),
		AcquireTime: &now, RenewTime: &now, LeaseTransitions: lease.Spec.LeaseTransitions}
	if _, err := leases.Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, opts.RenewDeadline+2*opts.RetryPeriod, "the leader stepping down", func() bool { return !current.b.Leading() })
	if !current.fake.leadingCallsEndWith(false) {
		t.Error("the dispatcher of the replica that lost the Lease was not told")
	}
	took = eventually(t, 3*time.Second+opts.LeaseDuration+opts.RetryPeriod, "a leader again", func() bool { n, _ := leaders(cs...); return n == 1 })
	_, again := leaders(cs...)
	t.Logf("%s leads again %s after it lost the Lease", again.b.k.opts.Replica, took.Round(time.Millisecond))
	if n, _ := leaders(cs...); n != 1 {
		t.Errorf("%d leaders", n)
	}
}
