package kubestate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clocktesting "k8s.io/utils/clock/testing"
)

// offlineBackend is a backend on an API server it never reaches, for the
// tests of what it decides alone.
func offlineBackend(t *testing.T, clock *clocktesting.FakeClock, reg prometheus.Registerer) *Backend {
	t.Helper()
	opts := testOptions("ns", "replica-a")
	opts.Clock, opts.Registerer = clock, reg
	b, err := New(&rest.Config{Host: "http://127.0.0.1:1"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFence: a leader writes only while its last renewal of the Lease is
// younger than the renew deadline, in the term of that renewal, and never
// again once a newer term deposed it (issue 18: a leader SIGSTOPped past
// its Lease wrote for about 7 s after it resumed).
func TestFence(t *testing.T) {
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	renew := func(b *Backend, at time.Time, holder string, transitions int) {
		b.leader.renewed(resourcelock.LeaderElectionRecord{HolderIdentity: holder, LeaderTransitions: transitions}, at, nil)
	}
	cases := []struct {
		name  string
		setup func(b *Backend, clock *clocktesting.FakeClock)
		term  int64
		want  string // empty: may write
	}{
		{name: "not leading", setup: func(*Backend, *clocktesting.FakeClock) {}, want: "not leading"},
		{name: "renewed just now", setup: func(b *Backend, _ *clocktesting.FakeClock) { renew(b, start, "replica-a", 4); lead(b) }, term: 4},
		{name: "renewed just within the deadline", setup: func(b *Backend, c *clocktesting.FakeClock) {
			renew(b, start, "replica-a", 4)
			lead(b)
			c.Step(b.k.opts.RenewDeadline - time.Millisecond)
		}, term: 4},
		{name: "resumed past the renew deadline", setup: func(b *Backend, c *clocktesting.FakeClock) {
			renew(b, start, "replica-a", 4)
			lead(b)
			c.Step(b.k.opts.RenewDeadline)
		}, want: "not within the renew deadline"},
		{name: "SIGSTOPped past the Lease", setup: func(b *Backend, c *clocktesting.FakeClock) {
			renew(b, start, "replica-a", 4)
			lead(b)
			c.Step(b.k.opts.LeaseDuration + time.Minute)
		}, want: "not within the renew deadline"},
		{name: "released", setup: func(b *Backend, _ *clocktesting.FakeClock) {
			renew(b, start, "replica-a", 4)
			lead(b)
			renew(b, start, "", 4)
		}, want: "not within the renew deadline"},
		{name: "a failed renewal does not count", setup: func(b *Backend, c *clocktesting.FakeClock) {
			renew(b, start, "replica-a", 4)
			lead(b)
			c.Step(b.k.opts.RenewDeadline)
			b.leader.renewed(resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a", LeaderTransitions: 4}, c.Now(), errors.New("timeout"))
		}, want: "not within the renew deadline"},
		{name: "deposed by a newer term", setup: func(b *Backend, _ *clocktesting.FakeClock) {
			renew(b, start, "replica-a", 4)
			lead(b)
			b.leader.deposed("a table shard is of term 5")
		}, want: "term 5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := clocktesting.NewFakeClock(start)
			reg := prometheus.NewPedanticRegistry()
			b := offlineBackend(t, clock, reg)
			c.setup(b, clock)
			term, deadline, err := b.leader.fence()
			if c.want == "" {
				if err != nil || term != c.term || !deadline.Equal(start.Add(b.k.opts.RenewDeadline)) {
					t.Errorf("fence() = %d, %s, %v; want term %d until %s", term, deadline, err, c.term, start.Add(b.k.opts.RenewDeadline))
				}
				return
			}
			if !errors.Is(err, errFenced) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("fence() = %d, %v; want errFenced for %q", term, err, c.want)
			}
			wrote := false
			err = b.leader.leaderWrite(context.Background(), func(context.Context, int64) error { wrote = true; return nil })
			if wrote || !errors.Is(err, errFenced) {
				t.Errorf("leaderWrite wrote %v, %v", wrote, err)
			}
			if got := testutil.ToFloat64(b.k.metrics.fenced); got != 1 {
				t.Errorf("leader_writes_fenced_total %v, want 1", got)
			}
			if b.Leading() && b.Status().Role != RoleFenced {
				t.Errorf("role %q, want %q", b.Status().Role, RoleFenced)
			}
		})
	}
}

// lead makes b lead in the term of its last renewal, as Elect's
// OnStartedLeading does, without campaigning.
func lead(b *Backend) {
	l := b.leader
	l.mu.Lock()
	defer l.mu.Unlock()
	l.term = &leadTerm{ctx: context.Background(), started: true, lease: l.leaseTerm, done: make(chan struct{}), stepDown: func() {}}
	l.leading = true
}

// TestStatusShowsLag: a replica whose publication fails shows how long in
// Status (degraded, still ready) and in the lag gauge an alert uses.
func TestStatusShowsLag(t *testing.T) {
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clock := clocktesting.NewFakeClock(start)
	reg := prometheus.NewPedanticRegistry()
	b := offlineBackend(t, clock, reg)
	b.leader.renewed(resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a"}, start, nil)
	lead(b)
	if s := b.Status(); s.PublicationLagSeconds != 0 || len(s.Degraded) > 0 {
		t.Fatalf("a current leader: lag %v, degraded %v", s.PublicationLagSeconds, s.Degraded)
	}
	b.pub.setUnpublished(true)
	clock.Step(10 * time.Second)
	b.pub.setUnpublished(true) // still failing: the lag counts from the first failure
	if s := b.Status(); s.PublicationLagSeconds != 10 || len(s.Degraded) > 0 {
		t.Errorf("10 s behind: lag %v, degraded %v; want 10 and not degraded yet", s.PublicationLagSeconds, s.Degraded)
	}
	clock.Step(b.k.opts.StaleAfter)
	s := b.Status()
	if len(s.Degraded) != 1 || !strings.Contains(s.Degraded[0], "behind") {
		t.Errorf("degraded %v, want the lag", s.Degraded)
	}
	if got := testutil.ToFloat64(b.k.metrics.lag); got != (10*time.Second + b.k.opts.StaleAfter).Seconds() {
		t.Errorf("publication lag gauge %v", got)
	}
	b.pub.setUnpublished(false)
	if s := b.Status(); s.PublicationLagSeconds != 0 || len(s.Degraded) > 0 {
		t.Errorf("published again: lag %v, degraded %v", s.PublicationLagSeconds, s.Degraded)
	}
}
