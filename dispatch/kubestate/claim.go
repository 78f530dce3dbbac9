package kubestate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// The backoff of a claim that could not be written: doubling from
// claimRetryMin up to claimRetryMax.
const (
	claimRetryMin = 500 * time.Millisecond
	claimRetryMax = 30 * time.Second
)

// pendingClaim is a claim the API server did not take, retried in the background.
type pendingClaim struct {
	row         table.Assignment
	provisional *jobs.Job
	attempts    int
	next        time.Time
}

// writer is the room of the shared writes any replica makes: job
// overrides, drains (and their confirmation), and the claims of new jobs'
// rows, with the claims to retry.
type writer struct {
	k       *kube
	served  *servedTable
	watcher *watcherRef
	wake    chan struct{} // a claim was queued

	mu      sync.Mutex
	pending map[string]*pendingClaim // job -> claim to retry
}

func newWriter(k *kube, served *servedTable, w *watcherRef) *writer {
	return &writer{k: k, served: served, watcher: w, wake: make(chan struct{}, 1), pending: map[string]*pendingClaim{}}
}

// pendingClaims counts the claims being retried.
func (w *writer) pendingClaims() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// errCollision is a claim whose object name another job holds.
var errCollision = errors.New("object name collision")

// Claim records the row of a job the table lacked as a JobPlacement,
// unless one exists: the first created wins, and Claim returns its row.
// When the API server does not take it, Claim returns the error (the
// caller keeps its row) and retries in the background; a retry that finds
// another row reports it through state.Watcher.AdoptRows.
func (b *Backend) Claim(ctx context.Context, row table.Assignment, provisional *jobs.Job) (table.Assignment, error) {
	return b.writes.Claim(ctx, row, provisional)
}

// Claim is Backend.Claim.
func (w *writer) Claim(ctx context.Context, row table.Assignment, provisional *jobs.Job) (table.Assignment, error) {
	if row.Job == "" || row.Cluster == "" {
		return row, fmt.Errorf("claim: job %q, cluster %q: both are required", row.Job, row.Cluster)
	}
	won, _, err := w.claim(ctx, row, provisional)
	if err != nil && !errors.Is(err, errCollision) {
		w.queueClaim(row, provisional)
	}
	if err != nil {
		return row, err
	}
	return won, nil
}

// claim creates the job's JobPlacement, or reads the one that exists, and
// returns the row in force with its provisional record.
func (w *writer) claim(ctx context.Context, row table.Assignment, provisional *jobs.Job) (table.Assignment, *state.Provisional, error) {
	spec, err := placementSpec(row, provisional, w.k.opts.Replica, w.k.opts.Clock.Now())
	if err != nil {
		return row, nil, err
	}
	name := ObjectName(row.Job)
	jp := &v1alpha1.JobPlacement{ObjectMeta: w.k.meta(name), Spec: spec}
	err = w.k.write(ctx, "create", kindJobPlacement, name, func(ctx context.Context) error { return w.k.client.Create(ctx, jp) })
	if err == nil {
		return row, nil, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return row, nil, err
	}
	cur := &v1alpha1.JobPlacement{}
	if err := w.k.read(ctx, kindJobPlacement, name, cur); err != nil {
		if apierrors.IsNotFound(err) { // folded and deleted meanwhile: the table has the job
			return row, nil, fmt.Errorf("claim of job %q: its placement was deleted meanwhile: %w", row.Job, err)
		}
		return row, nil, fmt.Errorf("claim of job %q: another replica placed it, reading its row: %w", row.Job, err)
	}
	if cur.Spec.Job != row.Job {
		return row, nil, fmt.Errorf("claim of job %q: JobPlacement %s holds job %q: %w", row.Job, name, cur.Spec.Job, errCollision)
	}
	won, prov, err := placementRow(cur)
	if err != nil {
		w.k.log.Error(err, "Claim: the winning placement's provisional record is unreadable", "job", row.Job)
	}
	return won, prov, nil
}

// queueClaim queues a claim for retry; a later claim of the job replaces it.
func (w *writer) queueClaim(row table.Assignment, provisional *jobs.Job) {
	w.mu.Lock()
	w.pending[row.Job] = &pendingClaim{row: row, provisional: provisional, attempts: 1, next: w.k.opts.Clock.Now().Add(claimRetryMin)}
	n := len(w.pending)
	w.mu.Unlock()
	w.k.metrics.pending.Set(float64(n))
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run retries the pending claims, each with its backoff, until ctx is done.
func (w *writer) run(ctx context.Context) {
	timer := w.k.opts.Clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		w.mu.Lock()
		var next time.Time
		for _, c := range w.pending {
			if next.IsZero() || c.next.Before(next) {
				next = c.next
			}
		}
		w.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(w.k.opts.Clock.Now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
			if !timer.Stop() {
				select {
				case <-timer.C():
				default:
				}
			}
			continue
		case <-timer.C():
		}
		w.retryClaims(ctx)
	}
}

// retryClaims retries the claims that are due. A claim whose job the table
// served holds now is dropped: the table's row is in force.
func (w *writer) retryClaims(ctx context.Context) {
	now := w.k.opts.Clock.Now()
	w.mu.Lock()
	var due []*pendingClaim
	for _, c := range w.pending {
		if !c.next.After(now) {
			due = append(due, c)
		}
	}
	w.mu.Unlock()
	for _, c := range due {
		if ctx.Err() != nil {
			return
		}
		done := true
		if _, ok := w.served.lookup(c.row.Job); !ok {
			won, prov, err := w.claim(ctx, c.row, c.provisional)
			switch {
			case errors.Is(err, errCollision):
				w.k.log.Error(err, "Retried claim dropped", "job", c.row.Job)
			case err != nil:
				done = false
				c.attempts++
				c.next = w.k.opts.Clock.Now().Add(min(claimRetryMin<<min(c.attempts-1, 10), claimRetryMax))
				w.k.log.V(1).Info("Retried claim failed", "job", c.row.Job, "attempts", c.attempts, "error", err.Error())
			case won.Cluster != c.row.Cluster:
				w.k.log.Info("Retried claim: another replica placed the job first: adopting its row", "job", c.row.Job, "cluster", won.Cluster, "ours", c.row.Cluster)
				if r := w.watcher.get(); r != nil {
					var provs []state.Provisional
					if prov != nil {
						provs = append(provs, *prov)
					}
					r.AdoptRows([]table.Assignment{won}, provs)
				}
			default:
				w.k.log.V(1).Info("Retried claim recorded", "job", c.row.Job, "cluster", c.row.Cluster)
			}
		}
		w.mu.Lock()
		if done && w.pending[c.row.Job] == c {
			delete(w.pending, c.row.Job)
		}
		n := len(w.pending)
		w.mu.Unlock()
		w.k.metrics.pending.Set(float64(n))
	}
}
