package kubestate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"

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

// FencePolicy is the ValidatingAdmissionPolicy that fences leader writes in
// the API server (manifests/components/ha/tableshard-fence.yaml): a
// TableShard is written only by the Lease's holder, in the Lease's term.
// It closes what the renew deadline cannot: a write already on its way
// when the Lease passed. A replica whose write it refuses is deposed.
const FencePolicy = "prowjob-dispatcher-tableshard-fence"

// refusedByFence returns why the API server's fence refused err's write,
// or "" when err is not such a refusal.
func refusedByFence(err error) string {
	var status apierrors.APIStatus
	if !apierrors.IsForbidden(err) || !errors.As(err, &status) {
		return ""
	}
	msg := status.Status().Message
	if !strings.Contains(msg, "ValidatingAdmissionPolicy '"+FencePolicy+"'") {
		return ""
	}
	if _, why, ok := strings.Cut(msg, "denied request: "); ok {
		return "the API server's fence: " + why
	}
	return "the API server's fence: " + msg
}

// fencedLock is the Lease lock that tells the backend when this replica
// last renewed the Lease, and in which term.
type fencedLock struct {
	resourcelock.Interface
	lead *leadership
}

func (l fencedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := l.lead.k.opts.Clock.Now()
	err := l.Interface.Create(ctx, ler)
	l.lead.renewed(ler, start, err)
	return err
}

func (l fencedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := l.lead.k.opts.Clock.Now()
	err := l.Interface.Update(ctx, ler)
	l.lead.renewed(ler, start, err)
	return err
}

// renewed records a write of the Lease record ler, sent at start. The
// renewal counts from start, not from the answer: the other candidates
// count the Lease's duration from when they saw it change, which is later.
func (l *leadership) renewed(ler resourcelock.LeaderElectionRecord, start time.Time, err error) {
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ler.HolderIdentity != l.k.opts.Replica { // released
		l.renewedAt = time.Time{}
		return
	}
	l.renewedAt, l.leaseTerm = start, int64(ler.LeaderTransitions)
}

// fence returns the term a leader write carries and the time by which it
// must be made, or errFenced when this replica does not lead, or its last
// renewal of the Lease is older than the renew deadline, or it met a newer
// term.
func (l *leadership) fence() (term int64, deadline time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fenceLocked()
}

func (l *leadership) fenceLocked() (int64, time.Time, error) {
	t := l.term
	switch {
	case !l.leading || t == nil || t.over:
		return 0, time.Time{}, fmt.Errorf("not leading: %w", errFenced)
	case t.deposedBy != "":
		return 0, time.Time{}, fmt.Errorf("term %d: %s: %w", t.lease, t.deposedBy, errFenced)
	}
	deadline := l.renewedAt.Add(l.k.opts.RenewDeadline)
	if now := l.k.opts.Clock.Now(); l.renewedAt.IsZero() || !now.Before(deadline) {
		return 0, time.Time{}, fmt.Errorf("term %d: the Lease was last renewed %s ago, not within the renew deadline %s: %w",
			t.lease, now.Sub(l.renewedAt).Round(time.Millisecond), l.k.opts.RenewDeadline, errFenced)
	}
	return t.lease, deadline, nil
}

// leaderWrite runs one write of the leader under its fence: the write's
// context ends at the fence's deadline.
func (l *leadership) leaderWrite(ctx context.Context, f func(ctx context.Context, term int64) error) error {
	term, deadline, err := l.fence()
	if err != nil {
		l.k.metrics.fenced.Inc()
		return err
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	err = f(ctx, term)
	if why := refusedByFence(err); why != "" {
		l.k.metrics.fenced.Inc()
		l.deposed(why)
		return fmt.Errorf("term %d: %w: %w", term, errFenced, err)
	}
	return err
}

// deposed records that this replica met a newer term than its own: it
// writes nothing more in this term, and steps down.
func (l *leadership) deposed(why string) {
	l.mu.Lock()
	t := l.term
	if t != nil && t.deposedBy == "" {
		t.deposedBy = why
	}
	l.mu.Unlock()
	if t != nil && t.stepDown != nil {
		l.k.log.Info("A newer leader wrote: stepping down", "term", t.lease, "why", why)
		t.stepDown()
	}
}

// Values of Status.ServerFence.
const (
	ServerFenceOn      = "on"
	ServerFenceMissing = "missing"
)

// watchServerFence probes the API server's fence (probeServerFence) while
// ctx lasts, until it is on: once at first, then after 1 s, 2 s, ... up to
// a minute, so that a policy installed (or compiled by the API server,
// which takes about a second) after this replica began to lead is found.
func (l *leadership) watchServerFence(ctx context.Context) {
	warned := false
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		state := l.probeServerFence(ctx)
		if state == ServerFenceOn || ctx.Err() != nil {
			return
		}
		if state == ServerFenceMissing && !warned {
			warned = true
			l.k.log.Error(errors.New("the API server does not fence table writes by the Lease"),
				"Install the ValidatingAdmissionPolicy "+FencePolicy+" (manifests/components/ha/tableshard-fence.yaml): "+
					"without it, a leader's write held up past its renew deadline can land after another replica took the Lease")
		}
		select {
		case <-ctx.Done():
			return
		case <-l.k.opts.Clock.After(wait):
		}
	}
}

// probeServerFence asks the API server, by a dry-run write of a TableShard
// no holder wrote, whether FencePolicy fences the leader's writes, records
// the answer in Status.ServerFence and returns it. Without the fence, the
// leader's own fence by time is all there is, which a write held up past
// the renew deadline (a stalled process, an API server restart) can defeat.
func (l *leadership) probeServerFence(ctx context.Context) string {
	probe := &v1alpha1.TableShard{
		ObjectMeta: metav1.ObjectMeta{Namespace: l.k.opts.Namespace, Name: "fence-probe"},
		Spec:       v1alpha1.TableShardSpec{Shard: 0, Shards: 1, Checksum: "sha256:fence-probe", Data: []byte("fence-probe")},
	}
	ctx, cancel := context.WithTimeout(ctx, l.k.opts.WriteTimeout)
	defer cancel()
	err := l.k.client.Create(ctx, probe, client.DryRunAll)
	var state string
	switch {
	case refusedByFence(err) != "":
		state = ServerFenceOn
	case err == nil:
		state = ServerFenceMissing
	default:
		state = "unknown: " + err.Error()
	}
	l.mu.Lock()
	l.serverFence = state
	l.mu.Unlock()
	label, _, _ := strings.Cut(state, ":") // "unknown: why" is "unknown"
	l.k.metrics.serverFence.Reset()
	l.k.metrics.serverFence.WithLabelValues(label).Set(1)
	return state
}

// leaderDelete deletes obj, as deleteObject does, under the leader's fence.
func (l *leadership) leaderDelete(ctx context.Context, kind string, obj client.Object, pre *metav1.Preconditions) error {
	return l.leaderWrite(ctx, func(ctx context.Context, _ int64) error { return l.k.deleteObject(ctx, kind, obj, pre) })
}

// checkNewerTerm reads the Lease when a shard carries term seen, newer than
// this replica's term: when the Lease had that term, a newer leader wrote,
// and this replica is deposed (errFenced); otherwise the shard is forged
// and is to be repaired (nil).
func (l *leadership) checkNewerTerm(ctx context.Context, term, seen int64) error {
	lease := &coordinationv1.Lease{}
	if err := l.k.read(ctx, "Lease", l.k.opts.LeaseName, lease); err != nil {
		return fmt.Errorf("a table shard is of term %d, newer than this leader's %d, and the Lease cannot tell: %w", seen, term, err)
	}
	transitions := int64(0)
	if lease.Spec.LeaseTransitions != nil {
		transitions = int64(*lease.Spec.LeaseTransitions)
	}
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	if transitions >= seen || holder != l.k.opts.Replica {
		why := fmt.Sprintf("a table shard is of term %d, and the Lease is at term %d held by %q", seen, transitions, holder)
		l.deposed(why)
		return fmt.Errorf("term %d: %s: %w", term, why, errFenced)
	}
	l.k.log.Error(fmt.Errorf("a table shard is of term %d, later than the Lease's %d", seen, transitions), "Repairing a table shard no leader wrote")
	return nil
}
