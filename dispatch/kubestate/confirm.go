package kubestate

import (
	"context"
	"slices"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// A drain is acknowledged once every live replica has it in force: each
// replica lists the drains it holds in its DispatcherReplica (written at
// once when they change), and the leader waits for the others' lists.

// drainConfirmPoll is how often ConfirmDrain reads the replicas' records.
const drainConfirmPoll = 20 * time.Millisecond

// drainToken names a drain in DispatcherReplicaStatus.Drains.
func drainToken(o table.Drain) string {
	return o.Cluster + "@" + o.CreatedAt.UTC().Format(time.RFC3339)
}

// drainTokens are the tokens of the drains in cs active at now, sorted.
func drainTokens(cs []table.Drain, now time.Time) []string {
	var out []string
	for _, o := range cs {
		if o.Drain() && o.Active(now) {
			out = append(out, drainToken(o))
		}
	}
	slices.Sort(out)
	return out
}

// ConfirmDrain waits, within Options.DrainConfirmTimeout, until every
// other live replica (see liveWindow) lists
// the drain o as in force, and returns the replicas that did not. A replica
// stopped or cut off stays unconfirmed until the timeout; its answers may
// name the drained cluster until it catches up.
func (b *Backend) ConfirmDrain(ctx context.Context, o table.Drain) ([]string, error) {
	return b.writes.ConfirmDrain(ctx, o)
}

// ConfirmDrain is Backend.ConfirmDrain.
func (w *writer) ConfirmDrain(ctx context.Context, o table.Drain) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, w.k.opts.DrainConfirmTimeout)
	defer cancel()
	want := drainToken(o)
	poll := time.NewTicker(drainConfirmPoll)
	defer poll.Stop()
	for {
		pending, err := w.unconfirmed(ctx, want)
		if err == nil && len(pending) == 0 {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return pending, err
		case <-poll.C:
		}
	}
}

// liveWindow is how old a replica's heartbeat may be for it to count as
// live: three intervals, plus the second its record rounds the time to.
func (w *writer) liveWindow() time.Duration {
	return 3*w.k.opts.HeartbeatInterval + time.Second
}

// unconfirmed lists the other live replicas whose record does not list want.
func (w *writer) unconfirmed(ctx context.Context, want string) ([]string, error) {
	var l v1alpha1.DispatcherReplicaList
	if err := w.k.list(ctx, &l); err != nil {
		return nil, err
	}
	now := w.k.opts.Clock.Now()
	var out []string
	for _, r := range l.Items {
		hb := r.Status.Heartbeat
		if r.Name == w.k.opts.Replica || hb == nil || now.Sub(hb.Time) > w.liveWindow() {
			continue
		}
		if !slices.Contains(r.Status.Drains, want) {
			out = append(out, r.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}
