package kubestate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// The kinds of objects, as metrics and errors name them.
const (
	kindJobOverride       = "JobOverride"
	kindClusterDrain      = "ClusterDrain"
	kindTableShard        = "TableShard"
	kindJobPlacement      = "JobPlacement"
	kindDispatcherReplica = "DispatcherReplica"
)

// followDebounce is how long the follower waits for more TableShard events
// before it applies the shards (a publication writes several), and
// followMaxDelay the longest it waits while events keep coming.
const (
	followDebounce = 50 * time.Millisecond
	followMaxDelay = 500 * time.Millisecond
)

// Backend is the kubernetes state backend of one replica (a
// state.Backend). Use New and Start, give it to the dispatcher (which
// Loads it and Watches it), then Run and Elect until shutdown.
type Backend struct {
	opts    Options
	log     logr.Logger
	client  client.Client // the API server itself: writes, and reads that must not lag
	cache   cache.Cache   // informers on every kind, in Options.Namespace
	leases  coordinationv1client.LeasesGetter
	metrics *metrics

	cacheCancel context.CancelFunc

	serverFence string // Status.ServerFence; under mu

	decodeMu sync.Mutex
	decoded  map[string]decodedShard // shard name -> its content at a resource version

	admMu     sync.Mutex
	admCounts map[string]decodedAdmissions // replica name -> its counts at a resource version
	ignored   map[string]string            // replica name -> why the last demand left its counts out

	wake      chan struct{} // the follower has work (dirty flags)
	claimWake chan struct{} // a claim was queued
	beatNow   chan struct{} // write the replica record now
	termCh    chan struct{} // a leadership term began

	mu      sync.Mutex
	started bool
	running bool
	replica state.Watcher // the dispatcher, once it Watches
	own     *demand.AdmissionCounts

	// Leadership.
	leading   bool
	term      *leadTerm
	renewedAt time.Time // when this replica last renewed the Lease (sent), zero when released
	leaseTerm int64     // the Lease's leaseTransitions at that renewal

	// Follower state: what changed since the follower last applied it.
	tableDirty, overridesDirty, drainsDirty bool
	drainsInForce                           []string // drainTokens of the drains the dispatcher was given last
	placementsDirty                         map[string]bool
	placementsAll                           bool   // every placement is to be looked at (catching up)
	adoptedShards                           string // resource versions of the shards last adopted
	adoptedTerm                             int64  // the term of the shard set last adopted: older ones are refused
	skipped                                 []SkippedShard
	refusedSet                              string    // why the shard set in the API is not adopted; empty when it is
	refusedSince                            time.Time // since when it is refused
	rowsRefused                             []RefusedRow
	objectsRefused                          map[string]map[string]string // kind -> name -> why it is left out

	// The table served: the one last adopted, or published while leading.
	tableRows   []table.Assignment // sorted by job
	publication int64

	// Publisher state.
	lastPublished    int64
	lastPublishTime  time.Time
	lastPublishErr   error
	unpublishedSince time.Time         // the table has changes not published since then (publication failing); zero when none
	repair           bool              // a shard in the API may not be this term's: compare them all at the next publication
	wrote            map[string]string // shard name -> checksum this term wrote
	unpublishedRows  int               // rows the last publication left out (shards full)

	lastAPIErr   error
	lastAPIErrAt time.Time
	// catchUpUntil: after an API error, reads go to the API server itself
	// and the follower polls until then (see catchUpPolling).
	catchUpUntil time.Time
	// elector is the current campaign's, whose view of the Lease is fresh.
	elector *leaderelection.LeaderElector

	pending map[string]*pendingClaim // job -> claim to retry
}

// decodedShard is a shard's content decoded at a resource version.
type decodedShard struct {
	resourceVersion string
	content         shardContent
	err             error
}

// decodedAdmissions are a replica's admission counts at a resource version.
type decodedAdmissions struct {
	resourceVersion string
	counts          *demand.AdmissionCounts
	err             error
}

// New returns a backend on the API server of cfg. It contacts nothing:
// Start does. Without client-side rate limits in cfg (QPS 0), it makes
// none, as controller-runtime's config does: the API server's priority and
// fairness governs.
func New(cfg *rest.Config, opts Options) (*Backend, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg.QPS = -1
	}
	b := &Backend{
		opts:            opts,
		log:             opts.Logger,
		decoded:         map[string]decodedShard{},
		admCounts:       map[string]decodedAdmissions{},
		wake:            make(chan struct{}, 1),
		claimWake:       make(chan struct{}, 1),
		beatNow:         make(chan struct{}, 1),
		termCh:          make(chan struct{}, 1),
		placementsDirty: map[string]bool{},
		pending:         map[string]*pendingClaim{},
	}
	if b.metrics, err = newMetrics(opts.Registerer, b.publicationLag); err != nil {
		return nil, fmt.Errorf("kubernetes state backend: metrics: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := coordinationv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes state backend: %w", err)
	}
	mapper := restMapper()
	if b.client, err = client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper, HTTPClient: httpClient}); err != nil {
		return nil, fmt.Errorf("kubernetes state backend: client: %w", err)
	}
	b.cache, err = cache.New(cfg, cache.Options{
		HTTPClient:                  httpClient,
		Scheme:                      scheme,
		Mapper:                      mapper,
		DefaultNamespaces:           map[string]cache.Config{opts.Namespace: {}},
		ByObject:                    map[client.Object]cache.ByObject{&coordinationv1.Lease{}: {Field: fields.OneTermEqualSelector("metadata.name", opts.LeaseName)}},
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		DefaultWatchErrorHandler: func(ctx context.Context, r *toolscache.Reflector, err error) {
			b.recordAPIError(fmt.Errorf("list or watch: %w", err))
			toolscache.DefaultWatchErrorHandler(ctx, r, err)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes state backend: cache: %w", err)
	}
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("kubernetes state backend: %w", err)
	}
	b.leases = cs.CoordinationV1()
	return b, nil
}

// restMapper maps the kinds the backend uses without discovery, so that a
// backend starts (and fails clearly) while the API server is unreachable.
func restMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for _, kind := range []string{kindJobOverride, kindClusterDrain, kindTableShard, kindJobPlacement, kindDispatcherReplica} {
		m.Add(v1alpha1.GroupVersion.WithKind(kind), meta.RESTScopeNamespace)
		m.Add(v1alpha1.GroupVersion.WithKind(kind+"List"), meta.RESTScopeNamespace)
	}
	m.Add(coordinationv1.SchemeGroupVersion.WithKind("Lease"), meta.RESTScopeNamespace)
	m.Add(coordinationv1.SchemeGroupVersion.WithKind("LeaseList"), meta.RESTScopeNamespace)
	return m
}

// Start starts the informers and waits, at most until ctx is done, for
// them to list the shared state. The informers then run until Run returns
// (or Close). A failed Start stops them.
func (b *Backend) Start(ctx context.Context) error {
	b.mu.Lock()
	if b.started {
		b.mu.Unlock()
		return errors.New("kubernetes state backend: started twice")
	}
	b.started = true
	b.mu.Unlock()

	handlers := []struct {
		obj client.Object
		h   toolscache.ResourceEventHandler
	}{
		{&v1alpha1.TableShard{}, b.onShard()},
		{&v1alpha1.JobOverride{}, b.onChange(func() { b.overridesDirty = true })},
		{&v1alpha1.ClusterDrain{}, b.onChange(func() { b.drainsDirty = true })},
		{&v1alpha1.JobPlacement{}, b.onPlacement()},
		{&v1alpha1.DispatcherReplica{}, nil},
		{&coordinationv1.Lease{}, nil},
	}
	for _, h := range handlers {
		inf, err := b.cache.GetInformer(ctx, h.obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("kubernetes state backend: informer of %T: %w", h.obj, err)
		}
		if h.h != nil {
			if _, err := inf.AddEventHandler(h.h); err != nil {
				return fmt.Errorf("kubernetes state backend: informer of %T: %w", h.obj, err)
			}
		}
	}
	cacheCtx, cancel := context.WithCancel(context.Background())
	b.mu.Lock()
	b.cacheCancel = cancel
	b.mu.Unlock()
	go func() {
		if err := b.cache.Start(cacheCtx); err != nil {
			b.log.Error(err, "The informers of the shared state stopped")
		}
	}()
	if !b.cache.WaitForCacheSync(ctx) {
		cancel()
		reason := context.Cause(ctx)
		if reason == nil {
			reason = errors.New("the informers stopped")
		}
		if err, _ := b.apiError(); err != nil {
			reason = fmt.Errorf("%w; last API error: %w", reason, err)
		}
		return fmt.Errorf("kubernetes API: namespace %s: the shared state was not listed: %w", b.opts.Namespace, reason)
	}
	own := &v1alpha1.DispatcherReplica{}
	err := b.cache.Get(ctx, client.ObjectKey{Namespace: b.opts.Namespace, Name: b.opts.Replica}, own)
	switch {
	case err == nil:
		counts, derr := decodeAdmissions(own.Status.Admissions)
		if derr != nil {
			b.log.Error(derr, "This replica's admission counts in its DispatcherReplica are unreadable: starting from none", "replica", b.opts.Replica)
		}
		b.mu.Lock()
		b.own = counts
		b.mu.Unlock()
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("kubernetes state backend: reading this replica's record: %w", err)
	}
	b.log.Info("Following the shared state", "namespace", b.opts.Namespace, "replica", b.opts.Replica)
	return nil
}

// Close stops the informers; Run does when it returns.
func (b *Backend) Close() {
	b.mu.Lock()
	cancel := b.cacheCancel
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// Watch starts driving the dispatcher: it gets the changes of the shared
// state since Load, the leadership, and its record is written.
func (b *Backend) Watch(r state.Watcher) {
	b.mu.Lock()
	b.replica = r
	b.tableDirty, b.overridesDirty, b.drainsDirty = true, true, true
	leading := b.leading
	b.mu.Unlock()
	r.SetLeading(leading)
	signal(b.wake)
	signal(b.beatNow)
}

func (b *Backend) attached() state.Watcher {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.replica
}

// Run follows the shared state, writes this replica's record every
// HeartbeatInterval, retries the claims that failed and, while this
// replica leads (Elect), publishes the table and collects expired objects,
// until ctx is done. It then writes the record a last time and stops the
// informers. Errors of the API server are retried, never returned.
func (b *Backend) Run(ctx context.Context) error {
	b.mu.Lock()
	if !b.started || b.running {
		b.mu.Unlock()
		return errors.New("kubernetes state backend: Run needs a Start, and runs once")
	}
	b.running = true
	b.mu.Unlock()
	defer b.Close()
	var wg sync.WaitGroup
	wg.Go(func() { b.followLoop(ctx) })
	wg.Go(func() { b.claimLoop(ctx) })
	wg.Go(func() { b.heartbeatLoop(ctx) })
	wg.Go(func() { b.superviseLeaderDuties(ctx, &wg) })
	wg.Wait()
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.WriteTimeout)
	defer cancel()
	if err := b.heartbeat(final); err != nil {
		b.log.Error(err, "Writing this replica's record at shutdown")
	}
	return nil
}

// signal wakes the loop waiting on ch without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// write runs one write under WriteTimeout and counts it; an error wraps
// as "kubernetes API: VERB KIND NAME: ...: the write was not made".
func (b *Backend) write(ctx context.Context, verb, kind, name string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.WriteTimeout)
	defer cancel()
	err := f(ctx)
	res := writeResult(err)
	b.metrics.writes.WithLabelValues(kind, res).Inc()
	if err == nil {
		return nil
	}
	if res == resultError {
		b.recordAPIError(fmt.Errorf("%s %s %s: %w", verb, kind, name, err))
	}
	return &writeError{verb: verb, kind: kind, namespace: b.opts.Namespace, name: name, err: err}
}

// read gets an object from the API server itself under WriteTimeout.
func (b *Backend) read(ctx context.Context, kind, name string, obj client.Object) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.WriteTimeout)
	defer cancel()
	err := b.client.Get(ctx, client.ObjectKey{Namespace: b.opts.Namespace, Name: name}, obj)
	if err != nil && writeResult(err) == resultError {
		b.recordAPIError(fmt.Errorf("get %s %s: %w", kind, name, err))
	}
	if err != nil {
		return fmt.Errorf("kubernetes API: get %s %s/%s: %w", kind, b.opts.Namespace, name, err)
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

func (b *Backend) recordAPIError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastAPIErr, b.lastAPIErrAt = err, b.opts.Clock.Now()
	b.catchUpUntil = b.lastAPIErrAt.Add(catchUpPolling)
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

// catchingUp reports whether reads bypass the cache (an API error was recent).
func (b *Backend) catchingUp() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opts.Clock.Now().Before(b.catchUpUntil)
}

func (b *Backend) apiError() (error, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastAPIErr, b.lastAPIErrAt
}

// list lists a kind in the namespace: from the cache, or, while catching
// up after an API error, from the API server itself (the cache when that
// fails too).
func (b *Backend) list(ctx context.Context, l client.ObjectList) error {
	if b.catchingUp() {
		lctx, cancel := context.WithTimeout(ctx, catchUpReadTimeout)
		err := b.client.List(lctx, l, client.InNamespace(b.opts.Namespace))
		cancel()
		if err == nil {
			return nil
		}
	}
	return b.cache.List(ctx, l, client.InNamespace(b.opts.Namespace))
}

// get reads an object of the namespace as list does.
func (b *Backend) get(ctx context.Context, name string, obj client.Object) error {
	key := client.ObjectKey{Namespace: b.opts.Namespace, Name: name}
	if b.catchingUp() {
		gctx, cancel := context.WithTimeout(ctx, catchUpReadTimeout)
		err := b.client.Get(gctx, key, obj)
		cancel()
		if err == nil || apierrors.IsNotFound(err) {
			return err
		}
	}
	return b.cache.Get(ctx, key, obj)
}

// tableLookup is the cluster of job in the table served (adopted or published).
func (b *Backend) tableLookup(job string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rows := b.tableRows
	i := sort.Search(len(rows), func(i int) bool { return rows[i].Job >= job })
	if i < len(rows) && rows[i].Job == job {
		return rows[i].Cluster, true
	}
	return "", false
}

// sortedRows returns t's rows sorted by job, copying them only when they are not.
func sortedRows(t *table.Table) []table.Assignment {
	if t == nil {
		return nil
	}
	if sort.SliceIsSorted(t.Assignments, func(i, j int) bool { return t.Assignments[i].Job < t.Assignments[j].Job }) {
		return t.Assignments
	}
	c := copyOf(t)
	c.Sort()
	return c.Assignments
}

func copyOf(t *table.Table) *table.Table {
	c := *t
	c.Assignments = append([]table.Assignment(nil), t.Assignments...)
	return &c
}
