package kubestate

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// TestEventSpanWait: the follower reconciles a kind once its events were
// quiet for followDebounce, and at most followMaxDelay after the first
// while they keep coming.
func TestEventSpanWait(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	cases := []struct {
		name string
		span eventSpan
		want time.Duration
	}{
		{name: "no event (a resync)", want: 0},
		{name: "one event now", span: eventSpan{first: now, last: now}, want: followDebounce},
		{name: "quiet for part of the debounce", span: eventSpan{first: ago(30 * time.Millisecond), last: ago(30 * time.Millisecond)}, want: followDebounce - 30*time.Millisecond},
		{name: "quiet for the debounce", span: eventSpan{first: ago(followDebounce), last: ago(followDebounce)}, want: 0},
		{name: "events keep coming: bounded by the first", span: eventSpan{first: ago(followMaxDelay - 10*time.Millisecond), last: now}, want: 10 * time.Millisecond},
		{name: "events kept coming past the bound", span: eventSpan{first: ago(followMaxDelay + time.Second), last: now}, want: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.span.wait(now); got != c.want {
				t.Errorf("wait = %s, want %s", got, c.want)
			}
		})
	}
}

// TestLeaderDutiesPerTerm: each term runs every duty with the term's
// context; a duty that steps down ends the term; the term's writes are
// fenced once it ends, and the replica follows again only after every
// duty returned; the next term runs the duties again, and a term that
// ended before client-go started it runs none.
func TestLeaderDutiesPerTerm(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	b := offlineBackend(t, clock, prometheus.NewPedanticRegistry())
	fake := newFakeReplica(&table.Table{}, nil)
	b.Watch(fake)
	for term := range 2 {
		b.leader.renewed(resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a", LeaderTransitions: term}, clock.Now(), nil)
		ctx, stepDown := context.WithCancel(context.Background())
		tm := &leadTerm{done: make(chan struct{})}
		var ran, returned atomic.Int32
		var writable, fencedAtEnd atomic.Bool
		checked := make(chan struct{})
		duties := []duty{
			{name: "long", run: func(ctx context.Context) {
				ran.Add(1)
				_, _, err := b.leader.fence()
				writable.Store(err == nil)
				close(checked)
				<-ctx.Done()
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					if _, _, err := b.leader.fence(); errors.Is(err, errFenced) {
						fencedAtEnd.Store(true)
						break
					}
				}
				returned.Add(1)
			}},
			{name: "short", run: func(context.Context) { ran.Add(1); <-checked; returned.Add(1) }, stepsDown: true},
		}
		go b.runTerm(ctx, tm, duties, stepDown)
		select { // the short duty returned while leading: it steps down
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("term %d: a duty that steps down returned, and the term goes on", term)
		}
		b.endTerm(tm) // as Elect does once the elector returned
		if ran.Load() != 2 || returned.Load() != 2 {
			t.Fatalf("term %d: endTerm returned with %d duties run, %d returned; want 2 and 2", term, ran.Load(), returned.Load())
		}
		if !writable.Load() || !fencedAtEnd.Load() {
			t.Errorf("term %d: writable during the term %v, fenced once it ended %v; want both", term, writable.Load(), fencedAtEnd.Load())
		}
		if b.Leading() {
			t.Errorf("term %d: still leading after endTerm", term)
		}
	}
	fake.with(func(f *fakeReplica) {
		if n := len(f.leadingCalls); n < 4 || !slices.Equal(f.leadingCalls[n-4:], []bool{true, false, true, false}) {
			t.Errorf("SetLeading calls %v, want them to end with true, false, true, false", f.leadingCalls)
		}
	})

	// A term over before client-go started it runs nothing.
	tm := &leadTerm{done: make(chan struct{})}
	b.endTerm(tm)
	ran := false
	b.runTerm(context.Background(), tm, []duty{{name: "late", run: func(context.Context) { ran = true }}}, func() {})
	if ran || b.Leading() {
		t.Errorf("a term over before it started: duty ran %v, leading %v", ran, b.Leading())
	}
}
