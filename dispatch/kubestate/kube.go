package kubestate

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// kube is the API access every role shares: the client for writes and
// reads that must not lag, the informer cache, bounded writes and the
// record of API errors that makes reads catch up after an outage.
type kube struct {
	opts    Options
	log     logr.Logger
	client  client.Client // the API server itself: writes, and reads that must not lag
	cache   cache.Cache   // informers on every kind, in Options.Namespace
	metrics *metrics

	mu           sync.Mutex
	lastAPIErr   error
	lastAPIErrAt time.Time
	// catchUpUntil: after an API error, reads go to the API server itself
	// and the follower polls until then (see catchUpPolling).
	catchUpUntil time.Time
}

// catchUpPolling is how long after the last API error the backend reads
// from the API server itself and the follower polls it every
// catchUpInterval: the informers' reflectors back off up to a minute
// between retries, so after an outage the cache may lag that long. It
// exceeds the reflectors' longest backoff with jitter and their reset time.
// A read while catching up gives up after catchUpReadTimeout (and the
// cache answers): an API server coming back accepts connections before it
// answers them, and the next poll is due soon anyway.
const (
	catchUpPolling     = 3 * time.Minute
	catchUpInterval    = 500 * time.Millisecond
	catchUpReadTimeout = time.Second
)

// write runs one write under WriteTimeout and counts it; an error wraps
// as "kubernetes API: VERB KIND NAME: ...: the write was not made".
func (k *kube) write(ctx context.Context, verb, kind, name string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, k.opts.WriteTimeout)
	defer cancel()
	err := f(ctx)
	res := writeResult(err)
	k.metrics.writes.WithLabelValues(kind, res).Inc()
	if err == nil {
		return nil
	}
	if res == resultError {
		k.recordAPIError(fmt.Errorf("%s %s %s: %w", verb, kind, name, err))
	}
	return &writeError{verb: verb, kind: kind, namespace: k.opts.Namespace, name: name, err: err}
}

// read gets an object from the API server itself under WriteTimeout.
func (k *kube) read(ctx context.Context, kind, name string, obj client.Object) error {
	ctx, cancel := context.WithTimeout(ctx, k.opts.WriteTimeout)
	defer cancel()
	err := k.client.Get(ctx, client.ObjectKey{Namespace: k.opts.Namespace, Name: name}, obj)
	if err != nil && writeResult(err) == resultError {
		k.recordAPIError(fmt.Errorf("get %s %s: %w", kind, name, err))
	}
	if err != nil {
		return fmt.Errorf("kubernetes API: get %s %s/%s: %w", kind, k.opts.Namespace, name, err)
	}
	return nil
}

// writeError is a write the API server did not make.
type writeError struct {
	verb, kind, namespace, name string
	err                         error
}

func (e *writeError) Error() string {
	return fmt.Sprintf("kubernetes API: %s %s %s/%s: %v: the write was not made", e.verb, e.kind, e.namespace, e.name, e.err)
}

func (e *writeError) Unwrap() error { return e.err }

func (k *kube) recordAPIError(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastAPIErr, k.lastAPIErrAt = err, k.opts.Clock.Now()
	k.catchUpUntil = k.lastAPIErrAt.Add(catchUpPolling)
}

// catchingUp reports whether reads bypass the cache (an API error was recent).
func (k *kube) catchingUp() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.opts.Clock.Now().Before(k.catchUpUntil)
}

func (k *kube) apiError() (error, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastAPIErr, k.lastAPIErrAt
}

// list lists a kind in the namespace: from the cache, or, while catching
// up after an API error, from the API server itself (the cache when that
// fails too).
func (k *kube) list(ctx context.Context, l client.ObjectList) error {
	if k.catchingUp() {
		lctx, cancel := context.WithTimeout(ctx, catchUpReadTimeout)
		err := k.client.List(lctx, l, client.InNamespace(k.opts.Namespace))
		cancel()
		if err == nil {
			return nil
		}
	}
	return k.cache.List(ctx, l, client.InNamespace(k.opts.Namespace))
}

// get reads an object of the namespace as list does.
func (k *kube) get(ctx context.Context, name string, obj client.Object) error {
	key := client.ObjectKey{Namespace: k.opts.Namespace, Name: name}
	if k.catchingUp() {
		gctx, cancel := context.WithTimeout(ctx, catchUpReadTimeout)
		err := k.client.Get(gctx, key, obj)
		cancel()
		if err == nil || apierrors.IsNotFound(err) {
			return err
		}
	}
	return k.cache.Get(ctx, key, obj)
}

// cached reads an object of the namespace from the cache alone.
func (k *kube) cached(ctx context.Context, name string, obj client.Object) error {
	return k.cache.Get(ctx, client.ObjectKey{Namespace: k.opts.Namespace, Name: name}, obj)
}

func (k *kube) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: k.opts.Namespace, Name: name}
}

// placements lists the job placements, oldest first.
func (k *kube) placements(ctx context.Context) ([]v1alpha1.JobPlacement, error) {
	var l v1alpha1.JobPlacementList
	if err := k.list(ctx, &l); err != nil {
		return nil, err
	}
	slices.SortFunc(l.Items, func(x, y v1alpha1.JobPlacement) int {
		return cmp.Or(x.CreationTimestamp.Compare(y.CreationTimestamp.Time), cmp.Compare(x.Name, y.Name))
	})
	return l.Items, nil
}

// deleteObject deletes obj; a missing one is no error. With preconditions,
// an object changed meanwhile is not deleted (and no error either).
func (k *kube) deleteObject(ctx context.Context, kind string, obj client.Object, pre *metav1.Preconditions) error {
	var opts []client.DeleteOption
	if pre != nil {
		opts = append(opts, client.Preconditions(*pre))
	}
	err := k.write(ctx, "delete", kind, obj.GetName(), func(ctx context.Context) error { return k.client.Delete(ctx, obj, opts...) })
	if apierrors.IsNotFound(err) || pre != nil && apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// upsert makes the object name of kind hold what set gives it: it updates
// the object (read from the cache, and from the API server after a
// conflict) or creates it. It returns the object written.
func upsert[T client.Object](ctx context.Context, k *kube, kind, name string, empty func() T, set func(T) error) (T, error) {
	cur := empty()
	err := k.cached(ctx, name, cur)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		exists = false // the cache could not say: try to create, and read on AlreadyExists
	}
	for attempt := 0; ; attempt++ {
		if !exists {
			obj := empty()
			obj.SetNamespace(k.opts.Namespace)
			obj.SetName(name)
			if err := set(obj); err != nil {
				return obj, err
			}
			err := k.write(ctx, "create", kind, name, func(ctx context.Context) error { return k.client.Create(ctx, obj) })
			if err == nil || !apierrors.IsAlreadyExists(err) || attempt > 0 {
				return obj, err
			}
		} else {
			if err := set(cur); err != nil {
				return cur, err
			}
			err := k.write(ctx, "update", kind, name, func(ctx context.Context) error { return k.client.Update(ctx, cur) })
			if err == nil || !(apierrors.IsConflict(err) || apierrors.IsNotFound(err)) || attempt > 0 {
				return cur, err
			}
		}
		// Created or changed meanwhile (or deleted): read it from the API server and try once more.
		cur = empty()
		err := k.read(ctx, kind, name, cur)
		switch {
		case err == nil:
			exists = true
		case apierrors.IsNotFound(err):
			exists = false
		default:
			return cur, &writeError{verb: "update", kind: kind, namespace: k.opts.Namespace, name: name, err: err}
		}
	}
}

// watcherRef holds the dispatcher once it Watches.
type watcherRef struct {
	mu sync.Mutex
	w  state.Watcher
}

func (r *watcherRef) set(w state.Watcher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w = w
}

// get returns the dispatcher; nil before it Watches.
func (r *watcherRef) get() state.Watcher {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.w
}

// servedTable is the table this replica serves: the one it last adopted,
// or published while leading.
type servedTable struct {
	mu          sync.Mutex
	rows        []table.Assignment // sorted by job
	publication int64
}

func (s *servedTable) set(rows []table.Assignment, publication int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows, s.publication = rows, publication
}

// lookup is the cluster of job in the table served.
func (s *servedTable) lookup(job string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.rows), func(i int) bool { return s.rows[i].Job >= job })
	if i < len(s.rows) && s.rows[i].Job == job {
		return s.rows[i].Cluster, true
	}
	return "", false
}

// size returns the publication served and its rows.
func (s *servedTable) size() (publication int64, rows int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.publication, len(s.rows)
}
