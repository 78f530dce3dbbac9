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

	// Guarded by leadership.mu.
	over, started bool
	lease         int64              // the term: the Lease's leaseTransitions when it began
	deposedBy     string             // why a newer term ended it, when one did
	stepDown      context.CancelFunc // ends the campaign, and so the term

	done chan struct{} // closed when every duty of the term returned (if started)
}

// duty is one runnable of the leader: it runs while a term lasts, and a
// new term starts it again. A duty that stepsDown ends the term when it
// returns while the term lasts.
type duty struct {
	name      string
	run       func(ctx context.Context)
	stepsDown bool
}

// leaderDuties are the runnables of every term: onLead (the dispatch loop
// with its failover, when set), the publisher, the collector and the probe
// of the API server's fence.
func (b *Backend) leaderDuties(onLead func(ctx context.Context)) []duty {
	duties := []duty{
		{name: "publisher", run: b.pub.run},
		{name: "collector", run: b.gc.run},
		{name: "server fence probe", run: b.leader.watchServerFence},
	}
	if onLead != nil {
		duties = append(duties, duty{name: "leader's work", run: onLead, stepsDown: true})
	}
	return duties
}

// Elect campaigns for the Lease Options.LeaseName until ctx is done. While
// this replica leads, the dispatcher is told so (SetLeading(true)) and the
// leader's duties run (leaderDuties: onLead, the publisher, the collector)
// with a context that ends with the term. When the Lease is lost, Elect
// waits for every duty to return, tells the dispatcher (SetLeading(false))
// and campaigns again: a replica that lost the Lease keeps serving. onLead
// returning while this replica leads steps it down. When ctx is done, the
// Lease is released.
func (b *Backend) Elect(ctx context.Context, onLead func(ctx context.Context)) {
	duties := b.leaderDuties(onLead)
	lock := fencedLock{lead: b.leader, Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: b.k.opts.Namespace, Name: b.k.opts.LeaseName},
		Client:     b.leases,
		LockConfig: resourcelock.ResourceLockConfig{Identity: b.k.opts.Replica},
	}}
	for ctx.Err() == nil {
		campaign, stepDown := context.WithCancel(ctx)
		t := &leadTerm{done: make(chan struct{})}
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   b.k.opts.LeaseDuration,
			RenewDeadline:   b.k.opts.RenewDeadline,
			RetryPeriod:     b.k.opts.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            b.k.opts.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(leadCtx context.Context) { b.runTerm(leadCtx, t, duties, stepDown) },
				OnStoppedLeading: func() {},
				OnNewLeader: func(identity string) {
					b.k.log.Info("Leader observed", "leader", identity, "self", identity == b.k.opts.Replica)
				},
			},
		})
		if err != nil { // the options were checked in New
			b.k.log.Error(err, "Leader election: not campaigning")
			stepDown()
			return
		}
		b.leader.setElector(le)
		le.Run(campaign)
		stepDown()
		b.endTerm(t)
		if ctx.Err() == nil {
			wait := time.Duration(float64(b.k.opts.RetryPeriod) * (0.5 + rand.Float64()))
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
}

// runTerm is one term of leadership (client-go runs it on its own
// goroutine, which may start after the term ended: then it does nothing).
// It runs the duties until each returned.
func (b *Backend) runTerm(leadCtx context.Context, t *leadTerm, duties []duty, stepDown context.CancelFunc) {
	if !b.leader.begin(leadCtx, t, stepDown) {
		return
	}
	defer close(t.done)
	b.pub.markRepair() // rewrite every shard another term wrote
	b.k.metrics.leader.Set(1)
	b.k.metrics.term.Set(float64(t.lease))
	b.k.log.Info("Leading", "lease", b.k.opts.LeaseName, "replica", b.k.opts.Replica, "term", t.lease)
	if r := b.watcher.get(); r != nil {
		r.SetLeading(true)
	}
	b.beat.poke()
	var wg sync.WaitGroup
	for _, d := range duties {
		wg.Go(func() {
			d.run(leadCtx)
			if d.stepsDown && leadCtx.Err() == nil {
				b.k.log.Info("The leader's work ended while leading: stepping down", "duty", d.name)
				stepDown()
			}
		})
	}
	wg.Wait()
}

// endTerm ends term t once the elector returned: it waits for the duties,
// then makes this replica a follower.
func (b *Backend) endTerm(t *leadTerm) {
	if !b.leader.end(t) {
		return
	}
	<-t.done
	b.leader.stopLeading()
	b.follow.followTable() // follow the next leader's publications
	if r := b.watcher.get(); r != nil {
		r.SetLeading(false)
	}
	b.k.metrics.leader.Set(0)
	b.k.log.Info("No longer leading", "lease", b.k.opts.LeaseName, "replica", b.k.opts.Replica)
	b.beat.poke()
}

// leadership is the elector's room: whether this replica leads, in which
// term, and when it last renewed the Lease (the fence of its writes).
type leadership struct {
	k *kube

	mu          sync.Mutex
	leading     bool
	term        *leadTerm
	renewedAt   time.Time // when this replica last renewed the Lease (sent), zero when released
	leaseTerm   int64     // the Lease's leaseTransitions at that renewal
	elector     *leaderelection.LeaderElector
	serverFence string // Status.ServerFence
}

// begin makes t the term in force, unless it is over already.
func (l *leadership) begin(ctx context.Context, t *leadTerm, stepDown context.CancelFunc) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.over {
		return false
	}
	t.started, t.ctx, t.lease, t.stepDown = true, ctx, l.leaseTerm, stepDown
	l.term, l.leading = t, true
	return true
}

// end marks t over (its writes are fenced from now on) and reports
// whether it had started.
func (l *leadership) end(t *leadTerm) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t.over = true
	if l.term == t {
		l.term = nil
	}
	return t.started
}

func (l *leadership) stopLeading() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading = false
}

func (l *leadership) setElector(le *leaderelection.LeaderElector) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.elector = le
}

// isLeading reports whether this replica leads (fenced or not).
func (l *leadership) isLeading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

// termWriting returns the term this replica leads in, and whether it does.
func (l *leadership) termWriting() (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.term; l.leading && t != nil {
		return t.lease, true
	}
	return 0, false
}

// leaderView is what Status and the record show of the leadership.
type leaderView struct {
	leading     bool
	term        int64 // when leading
	fenced      error // when leading
	serverFence string
}

func (l *leadership) view() leaderView {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := leaderView{leading: l.leading, serverFence: l.serverFence}
	if l.leading {
		if l.term != nil {
			v.term = l.term.lease
		}
		_, _, v.fenced = l.fenceLocked()
	}
	return v
}

// Leading reports whether this replica leads.
func (b *Backend) Leading() bool { return b.leader.isLeading() }

// Leader returns the replica holding the Lease, the address of its API
// (its DispatcherReplica's spec.address; empty when unknown) and whether it
// is this replica. The name is empty when no replica holds the Lease. A
// replica whose term is fenced (its renewal is overdue, or a newer leader
// wrote) is not the leader to itself.
func (b *Backend) Leader() (name, address string, self bool) {
	ctx := context.Background()
	name, leading := b.leader.holder(ctx)
	switch {
	case leading:
		return b.k.opts.Replica, b.k.opts.Address, true
	case name == "":
		return "", "", false
	case name == b.k.opts.Replica: // the Lease still names this replica, which does not lead any more
		return name, b.k.opts.Address, false
	}
	dr := &v1alpha1.DispatcherReplica{}
	if err := b.k.get(ctx, name, dr); err == nil {
		address = dr.Spec.Address
	}
	return name, address, false
}

// OtherLeader names the replica other than this one that holds the Lease;
// empty while this replica leads, or the Lease names no replica or this
// one. It is state.Backend's: the dispatcher refuses the writes
// only the leader makes while it names a replica.
func (b *Backend) OtherLeader() string {
	name, leading := b.leader.holder(context.Background())
	if leading || name == b.k.opts.Replica {
		return ""
	}
	return name
}

// holder returns whether this replica leads (a replica whose term is
// fenced does not) and, if not, the replica the Lease names (empty when
// none).
func (l *leadership) holder(ctx context.Context) (name string, leading bool) {
	l.mu.Lock()
	leading, le := l.leading, l.elector
	_, _, fenced := l.fenceLocked()
	l.mu.Unlock()
	if leading && fenced == nil {
		return l.k.opts.Replica, true
	}
	if le != nil {
		// The campaign reads the Lease itself every RetryPeriod: fresher than the cache.
		return le.GetLeader(), false
	}
	lease := &coordinationv1.Lease{}
	if err := l.k.get(ctx, l.k.opts.LeaseName, lease); err != nil || lease.Spec.HolderIdentity == nil {
		return "", false
	}
	return *lease.Spec.HolderIdentity, false
}
