package kubestate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
//
// It assembles the roles, each in a room of its own with its own state:
// the writer (shared writes and claims), the follower (a reconcile per
// kind), the leadership (the elector and its fence), the publisher and the
// collector (leader duties, run per term by Elect), the heartbeat (this
// replica's record) and the demand. Backend owns the informer cache and
// the client (kube) they share.
type Backend struct {
	k      *kube
	leases coordinationv1client.LeasesGetter

	watcher *watcherRef
	served  *servedTable
	leader  *leadership
	writes  *writer
	follow  *follower
	pub     *publisher
	gc      *collector
	beat    *heartbeat
	demand  *replicasDemand

	mu          sync.Mutex
	started     bool
	running     bool
	cacheCancel context.CancelFunc
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
	k := &kube{opts: opts, log: opts.Logger}
	b := &Backend{k: k, watcher: &watcherRef{}, served: &servedTable{}, leader: &leadership{k: k}}
	b.writes = newWriter(k, b.served, b.watcher)
	b.pub = &publisher{k: k, leader: b.leader, served: b.served, watcher: b.watcher}
	b.gc = &collector{k: k, leader: b.leader, fold: b.pub.foldPlacements}
	b.beat = newHeartbeat(k, b.leader, b.served, b.pub, b.watcher)
	b.demand = &replicasDemand{k: k, watcher: b.watcher, own: b.beat.ownCounts, counts: map[string]decodedAdmissions{}}
	if b.k.metrics, err = newMetrics(opts.Registerer, b.publicationLag); err != nil {
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
	if b.k.client, err = client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper, HTTPClient: httpClient}); err != nil {
		return nil, fmt.Errorf("kubernetes state backend: client: %w", err)
	}
	b.k.cache, err = cache.New(cfg, cache.Options{
		HTTPClient:                  httpClient,
		Scheme:                      scheme,
		Mapper:                      mapper,
		DefaultNamespaces:           map[string]cache.Config{opts.Namespace: {}},
		ByObject:                    map[client.Object]cache.ByObject{&coordinationv1.Lease{}: {Field: fields.OneTermEqualSelector("metadata.name", opts.LeaseName)}},
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		DefaultWatchErrorHandler: func(ctx context.Context, r *toolscache.Reflector, err error) {
			b.k.recordAPIError(fmt.Errorf("list or watch: %w", err))
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
	b.follow = newFollower(k, b.leader, b.served, b.watcher, b.beat, b.pub) // last: its queue runs a goroutine until Close
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

	for _, obj := range []client.Object{&v1alpha1.TableShard{}, &v1alpha1.JobOverride{}, &v1alpha1.ClusterDrain{}, &v1alpha1.JobPlacement{}, &v1alpha1.DispatcherReplica{}, &coordinationv1.Lease{}} {
		inf, err := b.k.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("kubernetes state backend: informer of %T: %w", obj, err)
		}
		if h := b.follow.handler(obj); h != nil {
			if _, err := inf.AddEventHandler(h); err != nil {
				return fmt.Errorf("kubernetes state backend: informer of %T: %w", obj, err)
			}
		}
	}
	cacheCtx, cancel := context.WithCancel(context.Background())
	b.mu.Lock()
	b.cacheCancel = cancel
	b.mu.Unlock()
	go func() {
		if err := b.k.cache.Start(cacheCtx); err != nil {
			b.k.log.Error(err, "The informers of the shared state stopped")
		}
	}()
	if !b.k.cache.WaitForCacheSync(ctx) {
		cancel()
		reason := context.Cause(ctx)
		if reason == nil {
			reason = errors.New("the informers stopped")
		}
		if err, _ := b.k.apiError(); err != nil {
			reason = fmt.Errorf("%w; last API error: %w", reason, err)
		}
		return fmt.Errorf("kubernetes API: namespace %s: the shared state was not listed: %w", b.k.opts.Namespace, reason)
	}
	own := &v1alpha1.DispatcherReplica{}
	err := b.k.cache.Get(ctx, client.ObjectKey{Namespace: b.k.opts.Namespace, Name: b.k.opts.Replica}, own)
	switch {
	case err == nil:
		counts, derr := decodeAdmissions(own.Status.Admissions)
		if derr != nil {
			b.k.log.Error(derr, "This replica's admission counts in its DispatcherReplica are unreadable: starting from none", "replica", b.k.opts.Replica)
		}
		b.beat.setOwn(counts)
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("kubernetes state backend: reading this replica's record: %w", err)
	}
	b.k.log.Info("Following the shared state", "namespace", b.k.opts.Namespace, "replica", b.k.opts.Replica)
	return nil
}

// Close stops the informers and the follower's queue; Run does when it returns.
func (b *Backend) Close() {
	b.mu.Lock()
	cancel := b.cacheCancel
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	b.follow.queue.ShutDown()
}

// Watch starts driving the dispatcher: it gets the changes of the shared
// state since Load, the leadership, and its record is written.
func (b *Backend) Watch(r state.Watcher) {
	b.watcher.set(r)
	r.SetLeading(b.leader.isLeading())
	b.follow.resync(false)
	b.beat.poke()
}

// Run follows the shared state, writes this replica's record every
// HeartbeatInterval and retries the claims that failed, until ctx is done
// (the leader's duties run under Elect). It then writes the record a last time and stops the
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
	wg.Go(func() { b.follow.run(ctx) })
	wg.Go(func() { b.writes.run(ctx) })
	wg.Go(func() { b.beat.run(ctx) })
	wg.Wait()
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.k.opts.WriteTimeout)
	defer cancel()
	if err := b.beat.beat(final); err != nil {
		b.k.log.Error(err, "Writing this replica's record at shutdown")
	}
	return nil
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
