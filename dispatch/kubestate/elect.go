package kubestate

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
)

// leadTerm is one term of leadership, from acquiring the Lease to losing it.
type leadTerm struct {
	ctx context.Context // done when the term ends

	// Guarded by Backend.mu.
	over, started, dutiesStarted bool
	lease                        int64              // the term: the Lease's leaseTransitions when it began
	deposedBy                    string             // why a newer term ended it, when one did
	stepDown                     context.CancelFunc // ends the campaign, and so the term

	done   chan struct{}  // closed when onLead returned (if started)
	duties sync.WaitGroup // the publisher and the collector of the term
}

// Elect campaigns for the Lease Options.LeaseName until ctx is done. While
// this replica leads, the dispatcher is told so (SetLeading(true)), Run
// publishes the table and collects expired objects, and onLead runs with a
// context that ends with the term. When the Lease is lost, Elect waits for
// onLead and the leader's work to stop, tells the dispatcher
// (SetLeading(false)) and campaigns again: a replica that lost the Lease
// keeps serving. onLead returning while this replica leads steps it down.
// When ctx is done, the Lease is released.
func (b *Backend) Elect(ctx context.Context, onLead func(ctx context.Context)) {
	lock := fencedLock{b: b, Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: b.opts.Namespace, Name: b.opts.LeaseName},
		Client:     b.leases,
		LockConfig: resourcelock.ResourceLockConfig{Identity: b.opts.Replica},
	}}
	for ctx.Err() == nil {
		campaign, stepDown := context.WithCancel(ctx)
		t := &leadTerm{done: make(chan struct{})}
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   b.opts.LeaseDuration,
			RenewDeadline:   b.opts.RenewDeadline,
			RetryPeriod:     b.opts.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            b.opts.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(leadCtx context.Context) { b.lead(leadCtx, t, onLead, stepDown) },
				OnStoppedLeading: func() {},
				OnNewLeader: func(identity string) {
					b.log.Info("Leader observed", "leader", identity, "self", identity == b.opts.Replica)
				},
			},
		})
		if err != nil { // the options were checked in New
			b.log.Error(err, "Leader election: not campaigning")
			stepDown()
			return
		}
		b.mu.Lock()
		b.elector = le
		b.mu.Unlock()
		le.Run(campaign)
		stepDown()
		b.endTerm(t)
		if ctx.Err() == nil {
			wait := time.Duration(float64(b.opts.RetryPeriod) * (0.5 + rand.Float64()))
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
}

// lead is one term of leadership (client-go runs it on its own goroutine,
// which may start after the term ended: then it does nothing).
func (b *Backend) lead(leadCtx context.Context, t *leadTerm, onLead func(context.Context), stepDown context.CancelFunc) {
	b.mu.Lock()
	if t.over {
		b.mu.Unlock()
		return
	}
	t.started, t.ctx, t.lease, t.stepDown = true, leadCtx, b.leaseTerm, stepDown
	b.term, b.leading = t, true
	b.repair = true // rewrite every shard another term wrote
	r := b.replica
	b.mu.Unlock()
	defer close(t.done)
	b.metrics.leader.Set(1)
	b.metrics.term.Set(float64(t.lease))
	b.log.Info("Leading", "lease", b.opts.LeaseName, "replica", b.opts.Replica, "term", t.lease)
	if r != nil {
		r.SetLeading(true)
	}
	signal(b.termCh)
	signal(b.beatNow)
	go b.watchServerFence(leadCtx)
	if onLead == nil {
		<-leadCtx.Done()
		return
	}
	onLead(leadCtx)
	if leadCtx.Err() == nil {
		b.log.Info("The leader's work ended while leading: stepping down")
		stepDown()
	}
}

// endTerm ends term t once the elector returned: it waits for onLead and
// the leader's work, then makes this replica a follower.
func (b *Backend) endTerm(t *leadTerm) {
	b.mu.Lock()
	t.over = true
	started := t.started
	if b.term == t {
		b.term = nil
	}
	b.mu.Unlock()
	if !started {
		return
	}
	<-t.done
	t.duties.Wait()
	b.mu.Lock()
	b.leading = false
	b.tableDirty = true // follow the next leader's publications
	r := b.replica
	b.mu.Unlock()
	if r != nil {
		r.SetLeading(false)
	}
	b.metrics.leader.Set(0)
	b.log.Info("No longer leading", "lease", b.opts.LeaseName, "replica", b.opts.Replica)
	signal(b.wake)
	signal(b.beatNow)
}

// superviseLeaderDuties runs the publisher and the collector for each term
// of leadership, until ctx is done.
func (b *Backend) superviseLeaderDuties(ctx context.Context, wg *sync.WaitGroup) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.termCh:
		}
		b.mu.Lock()
		t := b.term
		if t == nil || t.over || t.dutiesStarted {
			b.mu.Unlock()
			continue
		}
		t.dutiesStarted = true
		t.duties.Add(2)
		b.mu.Unlock()
		dctx, cancel := context.WithCancel(t.ctx)
		stop := context.AfterFunc(ctx, cancel)
		var both sync.WaitGroup
		both.Add(2)
		for _, duty := range []func(context.Context){b.publishLoop, b.gcLoop} {
			wg.Go(func() {
				defer t.duties.Done()
				defer both.Done()
				duty(dctx)
			})
		}
		wg.Go(func() {
			both.Wait()
			stop()
			cancel()
		})
	}
}

// Leading reports whether this replica leads.
func (b *Backend) Leading() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.leading
}

// Leader returns the replica holding the Lease, the address of its API
// (its DispatcherReplica's spec.address; empty when unknown) and whether it
// is this replica. The name is empty when no replica holds the Lease. A
// replica whose term is fenced (its renewal is overdue, or a newer leader
// wrote) is not the leader to itself.
func (b *Backend) Leader() (name, address string, self bool) {
	ctx := context.Background()
	name, leading := b.leaseHolder(ctx)
	switch {
	case leading:
		return b.opts.Replica, b.opts.Address, true
	case name == "":
		return "", "", false
	case name == b.opts.Replica: // the Lease still names this replica, which does not lead any more
		return name, b.opts.Address, false
	}
	dr := &v1alpha1.DispatcherReplica{}
	if err := b.get(ctx, name, dr); err == nil {
		address = dr.Spec.Address
	}
	return name, address, false
}

// OtherLeader names the replica other than this one that holds the Lease;
// empty while this replica leads, or the Lease names no replica or this
// one. It is state.Backend's: the dispatcher refuses the writes
// only the leader makes while it names a replica.
func (b *Backend) OtherLeader() string {
	name, leading := b.leaseHolder(context.Background())
	if leading || name == b.opts.Replica {
		return ""
	}
	return name
}

// leaseHolder returns whether this replica leads (a replica whose term is
// fenced does not) and, if not, the replica the Lease names (empty when
// none).
func (b *Backend) leaseHolder(ctx context.Context) (name string, leading bool) {
	b.mu.Lock()
	leading, le := b.leading, b.elector
	_, _, fenced := b.fenceLocked()
	b.mu.Unlock()
	if leading && fenced == nil {
		return b.opts.Replica, true
	}
	if le != nil {
		// The campaign reads the Lease itself every RetryPeriod: fresher than the cache.
		return le.GetLeader(), false
	}
	lease := &coordinationv1.Lease{}
	if err := b.get(ctx, b.opts.LeaseName, lease); err != nil || lease.Spec.HolderIdentity == nil {
		return "", false
	}
	return *lease.Spec.HolderIdentity, false
}
