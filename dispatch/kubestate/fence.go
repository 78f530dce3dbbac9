package kubestate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Leader writes are fenced by the Lease. A term is the Lease's
// leaseTransitions while this replica holds it: client-go raises it each
// time the Lease changes holder, so a newer leader's term is always
// higher. Every TableShard carries the term (and holder) that wrote it;
// followers never adopt a shard set of a term older than one they adopted,
// nor of a term or holder the Lease never had. A leader writes only while
// its last successful renewal is younger than the renew deadline (by then
// the Lease may be another's), each write bounded by that deadline, and it
// stops for good when it meets a newer term.

// errFenced is a leader write refused because this replica may no longer lead.
var errFenced = errors.New("fenced")

// fencedLock is the Lease lock that tells the backend when this replica
// last renewed the Lease, and in which term.
type fencedLock struct {
	resourcelock.Interface
	b *Backend
}

func (l fencedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := l.b.opts.Clock.Now()
	err := l.Interface.Create(ctx, ler)
	l.b.renewed(ler, start, err)
	return err
}

func (l fencedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := l.b.opts.Clock.Now()
	err := l.Interface.Update(ctx, ler)
	l.b.renewed(ler, start, err)
	return err
}

// renewed records a write of the Lease record ler, sent at start. The
// renewal counts from start, not from the answer: the other candidates
// count the Lease's duration from when they saw it change, which is later.
func (b *Backend) renewed(ler resourcelock.LeaderElectionRecord, start time.Time, err error) {
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ler.HolderIdentity != b.opts.Replica { // released
		b.renewedAt = time.Time{}
		return
	}
	b.renewedAt, b.leaseTerm = start, int64(ler.LeaderTransitions)
}

// fence returns the term a leader write carries and the time by which it
// must be made, or errFenced when this replica does not lead, or its last
// renewal of the Lease is older than the renew deadline, or it met a newer
// term.
func (b *Backend) fence() (term int64, deadline time.Time, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fenceLocked()
}

func (b *Backend) fenceLocked() (int64, time.Time, error) {
	t := b.term
	switch {
	case !b.leading || t == nil || t.over:
		return 0, time.Time{}, fmt.Errorf("not leading: %w", errFenced)
	case t.deposedBy != "":
		return 0, time.Time{}, fmt.Errorf("term %d: %s: %w", t.lease, t.deposedBy, errFenced)
	}
	deadline := b.renewedAt.Add(b.opts.RenewDeadline)
	if now := b.opts.Clock.Now(); b.renewedAt.IsZero() || !now.Before(deadline) {
		return 0, time.Time{}, fmt.Errorf("term %d: the Lease was last renewed %s ago, not within the renew deadline %s: %w",
			t.lease, now.Sub(b.renewedAt).Round(time.Millisecond), b.opts.RenewDeadline, errFenced)
	}
	return t.lease, deadline, nil
}

// leaderWrite runs one write of the leader under its fence: the write's
// context ends at the fence's deadline.
func (b *Backend) leaderWrite(ctx context.Context, f func(ctx context.Context, term int64) error) error {
	term, deadline, err := b.fence()
	if err != nil {
		b.metrics.fenced.Inc()
		return err
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return f(ctx, term)
}

// deposed records that this replica met a newer term than its own: it
// writes nothing more in this term, and steps down.
func (b *Backend) deposed(why string) {
	b.mu.Lock()
	t := b.term
	if t != nil && t.deposedBy == "" {
		t.deposedBy = why
	}
	b.mu.Unlock()
	if t != nil && t.stepDown != nil {
		b.log.Info("A newer leader wrote: stepping down", "term", t.lease, "why", why)
		t.stepDown()
	}
}
