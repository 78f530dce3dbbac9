package kubestate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Every replica follows the shared state as a controller does: the
// informers' events only queue the kind that changed on a workqueue, and
// one worker reconciles each kind from the cache, after a short debounce
// (a publication writes several shards).

// followKind is a kind of the shared state the follower reconciles.
type followKind string

// The kinds the follower reconciles.
const (
	followTable      followKind = kindTableShard
	followOverrides  followKind = kindJobOverride
	followDrains     followKind = kindClusterDrain
	followPlacements followKind = kindJobPlacement
)

// follower is the room that applies the shared state to the dispatcher:
// a reconcile per kind on a workqueue, with what it adopted last.
type follower struct {
	k       *kube
	leader  *leadership
	served  *servedTable
	watcher *watcherRef
	beat    *heartbeat
	pub     *publisher
	queue   workqueue.TypedDelayingInterface[followKind]

	mu              sync.Mutex
	events          map[followKind]eventSpan // events not yet reconciled, for the debounce
	placementsDirty map[string]bool
	placementsAll   bool   // every placement is to be looked at (catching up)
	adoptedShards   string // resource versions of the shards last adopted
	adoptedTerm     int64  // the term of the shard set last adopted: older ones are refused
	skipped         []SkippedShard
	refusedSet      string    // why the shard set in the API is not adopted; empty when it is
	refusedSince    time.Time // since when it is refused
	rowsRefused     []RefusedRow
	objectsRefused  map[string]map[string]string // kind -> name -> why it is left out

	decodeMu sync.Mutex
	decoded  map[string]decodedShard // shard name -> its content at a resource version
}

// eventSpan is when the first and the last event of a kind not yet
// reconciled came.
type eventSpan struct{ first, last time.Time }

// wait is how long after now the kind is to be reconciled: until its
// events were quiet for followDebounce, at most followMaxDelay after the
// first; 0 when due (or no event came).
func (s eventSpan) wait(now time.Time) time.Duration {
	if s.first.IsZero() {
		return 0
	}
	return max(min(s.last.Add(followDebounce).Sub(now), s.first.Add(followMaxDelay).Sub(now)), 0)
}

// decodedShard is a shard's content decoded at a resource version.
type decodedShard struct {
	resourceVersion string
	content         shardContent
	err             error
}

func newFollower(k *kube, leader *leadership, served *servedTable, w *watcherRef, beat *heartbeat, pub *publisher) *follower {
	return &follower{
		k: k, leader: leader, served: served, watcher: w, beat: beat, pub: pub,
		queue:           workqueue.NewTypedDelayingQueue[followKind](),
		events:          map[followKind]eventSpan{},
		placementsDirty: map[string]bool{},
		decoded:         map[string]decodedShard{},
	}
}

// followView is what Status shows of the follower.
type followView struct {
	adoptedTerm    int64
	skipped        []SkippedShard
	refusedSet     string
	refusedSince   time.Time
	rowsRefused    []RefusedRow
	objectsRefused []string
}

func (f *follower) view() followView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return followView{
		adoptedTerm:    f.adoptedTerm,
		skipped:        slices.Clone(f.skipped),
		refusedSet:     f.refusedSet,
		refusedSince:   f.refusedSince,
		rowsRefused:    slices.Clone(f.rowsRefused),
		objectsRefused: f.refusedObjectsLocked(),
	}
}

// changed queues kind after the debounce.
func (f *follower) changed(kind followKind) {
	now := time.Now()
	f.mu.Lock()
	span := f.events[kind]
	if span.first.IsZero() {
		span.first = now
	}
	span.last = now
	f.events[kind] = span
	f.mu.Unlock()
	f.queue.AddAfter(kind, followDebounce)
}

// resync queues every kind now; with placements, every placement too.
func (f *follower) resync(placements bool) {
	kinds := []followKind{followOverrides, followDrains, followTable}
	if placements {
		f.mu.Lock()
		f.placementsAll = true
		f.mu.Unlock()
		kinds = append(kinds, followPlacements)
	}
	for _, kind := range kinds {
		f.queue.Add(kind)
	}
}

// followTable queues the table now (this replica stopped leading).
func (f *follower) followTable() { f.queue.Add(followTable) }

// handler is the informer's event handler of obj's kind; nil for the
// kinds the follower does not reconcile.
func (f *follower) handler(obj client.Object) toolscache.ResourceEventHandler {
	switch obj.(type) {
	case *v1alpha1.TableShard:
		return f.onShard()
	case *v1alpha1.JobOverride:
		return f.onChange(followOverrides)
	case *v1alpha1.ClusterDrain:
		return f.onChange(followDrains)
	case *v1alpha1.JobPlacement:
		return f.onPlacement()
	}
	return nil
}

// onChange is an event handler that queues kind.
func (f *follower) onChange(kind followKind) toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { f.changed(kind) },
		UpdateFunc: func(any, any) { f.changed(kind) },
		DeleteFunc: func(any) { f.changed(kind) },
	}
}

// onShard queues the table and, on the leader, tells the publisher of a
// shard that is not this term's own as written (another writer's, or
// deleted), for it to repair.
func (f *follower) onShard() toolscache.ResourceEventHandler {
	mark := func(obj any, deleted bool) {
		f.pub.observeShard(obj, deleted)
		f.changed(followTable)
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { mark(obj, false) },
		UpdateFunc: func(_, obj any) { mark(obj, false) },
		DeleteFunc: func(obj any) { mark(obj, true) },
	}
}

// onPlacement queues the placements added or changed. Deletions need no
// work: the leader deletes a placement once its table holds the job.
func (f *follower) onPlacement() toolscache.ResourceEventHandler {
	mark := func(obj any) {
		jp, ok := obj.(*v1alpha1.JobPlacement)
		if !ok {
			return
		}
		f.mu.Lock()
		f.placementsDirty[jp.Name] = true
		f.mu.Unlock()
		f.changed(followPlacements)
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: mark,
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*v1alpha1.JobPlacement)
			c, ok2 := cur.(*v1alpha1.JobPlacement)
			if ok1 && ok2 && reflect.DeepEqual(o.Spec, c.Spec) {
				return // a resync
			}
			mark(cur)
		},
	}
}

// run reconciles the queued kinds until ctx is done, and while catching up
// after an API error, queues every kind every catchUpInterval: the
// informers may still be backing off after an outage, and reads go to the
// API server itself.
func (f *follower) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, f.queue.ShutDown)
	defer stop()
	go func() {
		poll := f.k.opts.Clock.NewTicker(catchUpInterval)
		defer poll.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-poll.C():
				if f.k.catchingUp() {
					f.resync(true)
				}
			}
		}
	}()
	for {
		kind, shutdown := f.queue.Get()
		if shutdown {
			return
		}
		if ctx.Err() == nil {
			f.reconcile(ctx, kind)
		}
		f.queue.Done(kind)
	}
}

// reconcile gives the attached dispatcher the objects of kind, once the
// events of kind were quiet for followDebounce (or came for followMaxDelay).
func (f *follower) reconcile(ctx context.Context, kind followKind) {
	r := f.watcher.get()
	if r == nil {
		return // Watch queues every kind
	}
	now := time.Now()
	f.mu.Lock()
	if wait := f.events[kind].wait(now); wait > 0 {
		f.mu.Unlock()
		f.queue.AddAfter(kind, wait)
		return
	}
	delete(f.events, kind)
	var placements map[string]bool
	if kind == followPlacements {
		placements = f.placementsDirty
		if f.placementsAll {
			placements = nil // every one
		}
		f.placementsDirty, f.placementsAll = map[string]bool{}, false
	}
	f.mu.Unlock()

	check := func(a table.Assignment) error { return r.CheckRow(a, nil) }
	switch kind {
	case followOverrides:
		if os, err := f.overrides(ctx, check); err != nil {
			f.k.log.Error(err, "Listing the job overrides")
		} else {
			r.SetOverrides(os)
		}
	case followDrains:
		if cs, err := f.drains(ctx, check); err != nil {
			f.k.log.Error(err, "Listing the cluster drains")
		} else {
			r.SetDrains(cs)
			f.beat.setDrains(drainTokens(cs, f.k.opts.Clock.Now()))
		}
	case followTable:
		if !f.leader.isLeading() { // the leader's own table is the newest; endTerm queues it when the term ends
			f.adoptTable(ctx, r)
		}
	case followPlacements:
		if placements == nil || len(placements) > 0 {
			f.adoptPlacements(ctx, r, placements)
		}
	}
}

// adoptTable adopts the latest publication when the shards changed: a
// set the rules refuse leaves the table in force, and the rows r refuses
// (an unknown, blocked or incapable cluster) are left out.
func (f *follower) adoptTable(ctx context.Context, r state.Watcher) {
	f.mu.Lock()
	adopted := f.adoptedShards
	f.mu.Unlock()
	set, version, err := f.shardSet(ctx, adopted)
	if err != nil {
		f.k.log.Error(err, "Listing the table shards")
		return
	}
	if version == adopted {
		return
	}
	if set.state == nil {
		f.recordFollowed(set, version, nil, nil)
		return
	}
	placements, err := f.k.placements(ctx)
	if err != nil {
		f.k.log.Error(err, "Listing the job placements")
	}
	st := set.state
	refused := checkRows(r, st)
	rows := st.Table.Assignments // the leader's, before the placements
	overlayPlacements(st, placements, r)
	start := time.Now()
	r.AdoptTable(st)
	f.recordFollowed(set, version, rows, refused)
	f.k.log.V(1).Info("Adopted the leader's table", "publication", set.publication, "term", set.term, "rows", len(st.Table.Assignments),
		"skipped", len(set.skipped), "refused", len(refused), "took", time.Since(start))
}

// RefusedRow is a row of the shared state a replica did not put in force.
type RefusedRow struct {
	Job     string `json:"job"`
	Cluster string `json:"cluster"`
	Error   string `json:"error"`
}

// maxRefusedShown bounds the refused rows Status lists.
const maxRefusedShown = 20

// checkRows removes from st's table the rows r refuses, with their
// provisional records, and returns them.
func checkRows(r state.Watcher, st *state.State) []RefusedRow {
	if st.Table == nil {
		return nil
	}
	prov := make(map[string]*state.Provisional, len(st.Provisional))
	for i := range st.Provisional {
		prov[st.Provisional[i].Job.Name] = &st.Provisional[i]
	}
	var refused []RefusedRow
	kept := st.Table.Assignments[:0:0]
	for _, a := range st.Table.Assignments {
		if err := r.CheckRow(a, prov[a.Job]); err != nil {
			refused = append(refused, RefusedRow{Job: a.Job, Cluster: a.Cluster, Error: err.Error()})
			continue
		}
		kept = append(kept, a)
	}
	if len(refused) == 0 {
		return nil
	}
	st.Table = &table.Table{GeneratedAt: st.Table.GeneratedAt, Assignments: kept}
	gone := make(map[string]bool, len(refused))
	for _, x := range refused {
		gone[x.Job] = true
	}
	st.Provisional = slices.DeleteFunc(slices.Clone(st.Provisional), func(p state.Provisional) bool { return gone[p.Job.Name] })
	return refused
}

// recordFollowed records the shard set seen: adopted (rows set, with the
// rows refused), refused as a whole, or only what was skipped.
func (f *follower) recordFollowed(set shardSet, version string, rows []table.Assignment, refused []RefusedRow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.skipped, set.skipped) {
		for _, s := range set.skipped {
			f.k.log.Error(errors.New(s.Error), "A table shard failed its check: its rows are not applied", "shard", s.Name)
		}
	}
	f.skipped = set.skipped
	if set.refused != "" {
		if f.refusedSet != set.refused {
			f.k.log.Error(errors.New(set.refused), "The table shards in the API are no set to adopt: the table in force stays", "term", f.adoptedTerm)
			f.k.metrics.setsRefused.Inc()
		}
		if f.refusedSet == "" {
			f.refusedSince = f.k.opts.Clock.Now()
		}
		f.refusedSet = set.refused
		return
	}
	f.refusedSet, f.refusedSince = "", time.Time{}
	if rows != nil {
		f.adoptedShards = version
		f.served.set(rows, set.publication)
		f.adoptedTerm = max(f.adoptedTerm, set.term)
		if len(refused) > 0 {
			f.k.log.Error(errors.New(refused[0].Error), "Rows of the leader's table refused: their jobs are placed anew at admission",
				"refused", len(refused), "publication", set.publication, "term", set.term, "by", set.publishedBy)
		}
		f.rowsRefused = refused
		f.k.metrics.rowsRefused.Set(float64(len(refused)))
	}
}

// shardSet assembles the shards in the cache, and says which resource
// versions it holds; when those are unless's, it assembles nothing.
func (f *follower) shardSet(ctx context.Context, unless string) (shardSet, string, error) {
	var l v1alpha1.TableShardList
	if err := f.k.list(ctx, &l); err != nil {
		return shardSet{}, "", err
	}
	objs := make([]*v1alpha1.TableShard, len(l.Items))
	var version strings.Builder
	slices.SortFunc(l.Items, func(x, y v1alpha1.TableShard) int { return cmp.Compare(x.Name, y.Name) })
	present := map[string]bool{}
	for i := range l.Items {
		objs[i] = &l.Items[i]
		present[objs[i].Name] = true
		fmt.Fprintf(&version, "%s@%s,", objs[i].Name, objs[i].ResourceVersion)
	}
	if version.String() == unless {
		return shardSet{}, unless, nil
	}
	rules := shardRules{shards: f.k.opts.Shards}
	lease := &coordinationv1.Lease{}
	if err := f.k.get(ctx, f.k.opts.LeaseName, lease); err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
		rules.leaseHolder = *lease.Spec.HolderIdentity
		if lease.Spec.LeaseTransitions != nil {
			rules.leaseTerm = int64(*lease.Spec.LeaseTransitions)
		}
	}
	f.mu.Lock()
	rules.adoptedTerm = f.adoptedTerm
	f.mu.Unlock()
	if rules.leaseHolder != "" { // a Lease made anew (deleted by hand) starts its terms again
		rules.adoptedTerm = min(rules.adoptedTerm, rules.leaseTerm)
	}
	set := assembleShards(objs, rules, f.decodeCached)
	f.decodeMu.Lock()
	for name := range f.decoded {
		if !present[name] {
			delete(f.decoded, name)
		}
	}
	f.decodeMu.Unlock()
	return set, version.String(), nil
}

// decodeCached decodes a shard once per resource version.
func (f *follower) decodeCached(o *v1alpha1.TableShard) (shardContent, error) {
	f.decodeMu.Lock()
	d, ok := f.decoded[o.Name]
	f.decodeMu.Unlock()
	if ok && d.resourceVersion == o.ResourceVersion {
		return d.content, d.err
	}
	c, err := decodeShard(&o.Spec)
	f.decodeMu.Lock()
	f.decoded[o.Name] = decodedShard{resourceVersion: o.ResourceVersion, content: c, err: err}
	f.decodeMu.Unlock()
	return c, err
}

// adoptPlacements gives the dispatcher the rows of the placements named
// (all when names is nil) whose job the table served lacks (the table's row
// is in force otherwise).
func (f *follower) adoptPlacements(ctx context.Context, r state.Watcher, names map[string]bool) {
	var l v1alpha1.JobPlacementList
	if err := f.k.list(ctx, &l); err != nil {
		f.k.log.Error(err, "Listing the job placements")
		return
	}
	var rows []table.Assignment
	var provisional []state.Provisional
	for i := range l.Items {
		jp := &l.Items[i]
		if names != nil && !names[jp.Name] {
			continue
		}
		if _, ok := f.served.lookup(jp.Spec.Job); ok {
			continue
		}
		row, p, err := placementRow(jp)
		if err != nil {
			f.k.log.Error(err, "A job placement's provisional record is unreadable: adopting its row alone")
		}
		if err := r.CheckRow(row, p); err != nil {
			f.k.log.Error(err, "A job placement refused: its job is placed anew at admission", "placement", jp.Name, "replica", jp.Spec.Replica)
			continue
		}
		rows = append(rows, row)
		if p != nil {
			provisional = append(provisional, *p)
		}
	}
	if len(rows) > 0 {
		r.AdoptRows(rows, provisional)
	}
}

// overlayPlacements adds to st the rows (and provisional records) of the
// placements whose job its table lacks and that r (when not nil) accepts;
// a table is made for them when st has none.
func overlayPlacements(st *state.State, placements []v1alpha1.JobPlacement, r state.Watcher) {
	var have map[string]bool
	var rows []table.Assignment
	for i := range placements {
		jp := &placements[i]
		if have == nil {
			have = map[string]bool{}
			if st.Table != nil {
				for _, a := range st.Table.Assignments {
					have[a.Job] = true
				}
			}
		}
		if have[jp.Spec.Job] {
			continue
		}
		row, p, _ := placementRow(jp)
		if r != nil && r.CheckRow(row, p) != nil {
			continue
		}
		have[row.Job] = true
		rows = append(rows, row)
		if p != nil && !slices.ContainsFunc(st.Provisional, func(q state.Provisional) bool { return q.Job.Name == p.Job.Name }) {
			st.Provisional = append(st.Provisional, *p)
		}
	}
	if len(rows) == 0 {
		return
	}
	if st.Table == nil {
		st.Table = &table.Table{}
	} else {
		st.Table = copyOf(st.Table)
	}
	st.Table.Assignments = append(st.Table.Assignments, rows...)
	st.Table.Sort()
	slices.SortFunc(st.Provisional, func(a, b state.Provisional) int { return cmp.Compare(a.Job.Name, b.Job.Name) })
}

// load returns the shared state once the informers listed it (Start): the
// table of the latest publication with the placements it lacks, its
// provisional jobs, the overrides and the drains. Table is nil when nothing
// was ever published or placed.
func (f *follower) load(ctx context.Context) (*state.State, error) {
	if !f.k.cache.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("kubernetes state backend: the shared state is not listed: %w", context.Cause(ctx))
	}
	set, version, err := f.shardSet(ctx, "-")
	if err != nil {
		return nil, fmt.Errorf("kubernetes state backend: table shards: %w", err)
	}
	st := set.state
	if st == nil {
		st = &state.State{}
	}
	var rows []table.Assignment
	if st.Table != nil {
		rows = st.Table.Assignments
	}
	placements, err := f.k.placements(ctx)
	if err != nil {
		return nil, fmt.Errorf("kubernetes state backend: job placements: %w", err)
	}
	overlayPlacements(st, placements, nil) // the configs are not loaded yet: nothing to check against
	if st.Overrides, err = f.overrides(ctx, nil); err != nil {
		return nil, fmt.Errorf("kubernetes state backend: job overrides: %w", err)
	}
	if st.Drains, err = f.drains(ctx, nil); err != nil {
		return nil, fmt.Errorf("kubernetes state backend: cluster drains: %w", err)
	}
	if rows == nil {
		rows = []table.Assignment{}
	}
	f.recordFollowed(set, version, rows, nil)
	return st, nil
}

// overrides lists the job overrides in the cache that checkOverride
// accepts (check, when set, checks their cluster), sorted by job.
func (f *follower) overrides(ctx context.Context, check func(table.Assignment) error) ([]table.Override, error) {
	var l v1alpha1.JobOverrideList
	if err := f.k.list(ctx, &l); err != nil {
		return nil, err
	}
	slices.SortFunc(l.Items, func(x, y v1alpha1.JobOverride) int {
		return cmp.Or(cmp.Compare(x.Spec.Job, y.Spec.Job), cmp.Compare(x.Name, y.Name))
	})
	out := make([]table.Override, 0, len(l.Items))
	refused := map[string]string{}
	now := f.k.opts.Clock.Now()
	for i := range l.Items {
		if err := checkOverride(&l.Items[i], now, check); err != nil {
			refused[l.Items[i].Name] = err.Error()
			continue
		}
		out = append(out, overrideOf(&l.Items[i]))
	}
	f.setRefusedObjects(kindJobOverride, refused)
	return out, nil
}

// drains lists the drains and caps in the cache that checkDrain
// accepts (check, when set, checks their cluster), sorted by cluster.
func (f *follower) drains(ctx context.Context, check func(table.Assignment) error) ([]table.Drain, error) {
	var l v1alpha1.ClusterDrainList
	if err := f.k.list(ctx, &l); err != nil {
		return nil, err
	}
	slices.SortFunc(l.Items, func(x, y v1alpha1.ClusterDrain) int {
		return cmp.Or(cmp.Compare(x.Spec.Cluster, y.Spec.Cluster), cmp.Compare(x.Name, y.Name))
	})
	out := make([]table.Drain, 0, len(l.Items))
	refused := map[string]string{}
	now := f.k.opts.Clock.Now()
	for i := range l.Items {
		if err := checkDrain(&l.Items[i], now, check); err != nil {
			refused[l.Items[i].Name] = err.Error()
			continue
		}
		out = append(out, drainOf(&l.Items[i]))
	}
	f.setRefusedObjects(kindClusterDrain, refused)
	return out, nil
}
