package kubestate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Every replica follows the shared state: the informers' events only mark
// what changed, and the follow loop applies it to the dispatcher from the
// cache, after a short debounce (a publication writes several shards).

// onChange is an event handler that marks (under mu) and wakes the follower.
func (b *Backend) onChange(mark func()) toolscache.ResourceEventHandler {
	f := func() {
		b.mu.Lock()
		mark()
		b.mu.Unlock()
		signal(b.wake)
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { f() },
		UpdateFunc: func(any, any) { f() },
		DeleteFunc: func(any) { f() },
	}
}

// onShard marks the table for the follower and, on the leader, a shard
// that is not this term's own as written (another writer's, or deleted) for
// the publisher to repair.
func (b *Backend) onShard() toolscache.ResourceEventHandler {
	mark := func(obj any, deleted bool) {
		b.mu.Lock()
		b.tableDirty = true
		if t := b.term; b.leading && t != nil {
			ts, ok := obj.(*v1alpha1.TableShard)
			if deleted || !ok || ts.Spec.Term != t.lease || ts.Spec.PublishedBy != b.opts.Replica || ts.Spec.Checksum != b.wrote[ts.Name] {
				b.repair = true
			}
		}
		b.mu.Unlock()
		signal(b.wake)
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { mark(obj, false) },
		UpdateFunc: func(_, obj any) { mark(obj, false) },
		DeleteFunc: func(obj any) { mark(obj, true) },
	}
}

// onPlacement marks the placements added or changed. Deletions need no
// work: the leader deletes a placement once its table holds the job.
func (b *Backend) onPlacement() toolscache.ResourceEventHandler {
	mark := func(obj any) {
		jp, ok := obj.(*v1alpha1.JobPlacement)
		if !ok {
			return
		}
		b.mu.Lock()
		b.placementsDirty[jp.Name] = true
		b.mu.Unlock()
		signal(b.wake)
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

// followLoop applies what changed, debounced, until ctx is done.
func (b *Backend) followLoop(ctx context.Context) {
	poll := b.opts.Clock.NewTicker(catchUpInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C():
			if !b.catchingUp() {
				continue
			}
			// The informers may still be backing off after an outage: read
			// everything from the API server itself.
			b.mu.Lock()
			b.tableDirty, b.overridesDirty, b.drainsDirty, b.placementsAll = true, true, true, true
			b.mu.Unlock()
			b.follow(ctx)
			continue
		case <-b.wake:
		}
		deadline := time.After(followMaxDelay)
		quiet := time.NewTimer(followDebounce)
	debounce:
		for {
			select {
			case <-ctx.Done():
				quiet.Stop()
				return
			case <-b.wake:
				quiet.Reset(followDebounce)
			case <-quiet.C:
				break debounce
			case <-deadline:
				quiet.Stop()
				break debounce
			}
		}
		b.follow(ctx)
	}
}

// follow gives the attached dispatcher what changed since it last did.
func (b *Backend) follow(ctx context.Context) {
	b.mu.Lock()
	r := b.replica
	if r == nil {
		b.mu.Unlock()
		return // the flags stay set until Watch
	}
	tableDirty, overrides, drains, leading := b.tableDirty, b.overridesDirty, b.drainsDirty, b.leading
	placements := b.placementsDirty
	if b.placementsAll {
		placements = nil // every one
	}
	b.tableDirty, b.overridesDirty, b.drainsDirty, b.placementsAll = false, false, false, false
	b.placementsDirty = map[string]bool{}
	if leading {
		tableDirty = false // the leader's own table is the newest; Elect marks it when the term ends
	}
	b.mu.Unlock()

	check := func(a table.Assignment) error { return r.CheckRow(a, nil) }
	if overrides {
		if os, err := b.overrides(ctx, check); err != nil {
			b.log.Error(err, "Listing the job overrides")
		} else {
			r.SetOverrides(os)
		}
	}
	if drains {
		if cs, err := b.clusterOverrides(ctx, check); err != nil {
			b.log.Error(err, "Listing the cluster drains")
		} else {
			r.SetClusterOverrides(cs)
			tokens := drainTokens(cs, b.opts.Clock.Now())
			b.mu.Lock()
			changed := !slices.Equal(tokens, b.drainsInForce)
			b.drainsInForce = tokens
			b.mu.Unlock()
			if changed {
				signal(b.beatNow) // the leader waits for this record to list its drain
			}
		}
	}
	if tableDirty {
		b.followTable(ctx, r)
	}
	if placements == nil || len(placements) > 0 {
		b.adoptPlacements(ctx, r, placements)
	}
}

// followTable adopts the latest publication when the shards changed: a
// set the rules refuse leaves the table in force, and the rows r refuses
// (an unknown, blocked or incapable cluster) are left out.
func (b *Backend) followTable(ctx context.Context, r state.Watcher) {
	b.mu.Lock()
	adopted := b.adoptedShards
	b.mu.Unlock()
	set, version, err := b.shardSet(ctx, adopted)
	if err != nil {
		b.log.Error(err, "Listing the table shards")
		return
	}
	if version == adopted {
		return
	}
	if set.state == nil {
		b.recordFollowed(set, version, nil, nil)
		return
	}
	placements, err := b.placements(ctx)
	if err != nil {
		b.log.Error(err, "Listing the job placements")
	}
	st := set.state
	refused := checkRows(r, st)
	rows := st.Table.Assignments // the leader's, before the placements
	overlayPlacements(st, placements, r)
	start := time.Now()
	r.AdoptTable(st)
	b.recordFollowed(set, version, rows, refused)
	b.log.V(1).Info("Adopted the leader's table", "publication", set.publication, "term", set.term, "rows", len(st.Table.Assignments),
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
func (b *Backend) recordFollowed(set shardSet, version string, rows []table.Assignment, refused []RefusedRow) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !slices.Equal(b.skipped, set.skipped) {
		for _, s := range set.skipped {
			b.log.Error(errors.New(s.Error), "A table shard failed its check: its rows are not applied", "shard", s.Name)
		}
	}
	b.skipped = set.skipped
	if set.refused != "" {
		if b.refusedSet != set.refused {
			b.log.Error(errors.New(set.refused), "The table shards in the API are no set to adopt: the table in force stays", "term", b.adoptedTerm)
			b.metrics.setsRefused.Inc()
		}
		if b.refusedSet == "" {
			b.refusedSince = b.opts.Clock.Now()
		}
		b.refusedSet = set.refused
		return
	}
	b.refusedSet, b.refusedSince = "", time.Time{}
	if rows != nil {
		b.adoptedShards, b.tableRows, b.publication = version, rows, set.publication
		b.adoptedTerm = max(b.adoptedTerm, set.term)
		if len(refused) > 0 {
			b.log.Error(errors.New(refused[0].Error), "Rows of the leader's table refused: their jobs are placed anew at admission",
				"refused", len(refused), "publication", set.publication, "term", set.term, "by", set.publishedBy)
		}
		b.rowsRefused = refused
		b.metrics.rowsRefused.Set(float64(len(refused)))
	}
}

// shardSet assembles the shards in the cache, and says which resource
// versions it holds; when those are unless's, it assembles nothing.
func (b *Backend) shardSet(ctx context.Context, unless string) (shardSet, string, error) {
	var l v1alpha1.TableShardList
	if err := b.list(ctx, &l); err != nil {
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
	rules := shardRules{shards: b.opts.Shards}
	lease := &coordinationv1.Lease{}
	if err := b.get(ctx, b.opts.LeaseName, lease); err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
		rules.leaseHolder = *lease.Spec.HolderIdentity
		if lease.Spec.LeaseTransitions != nil {
			rules.leaseTerm = int64(*lease.Spec.LeaseTransitions)
		}
	}
	b.mu.Lock()
	rules.adoptedTerm = b.adoptedTerm
	b.mu.Unlock()
	if rules.leaseHolder != "" { // a Lease made anew (deleted by hand) starts its terms again
		rules.adoptedTerm = min(rules.adoptedTerm, rules.leaseTerm)
	}
	set := assembleShards(objs, rules, b.decodeCached)
	b.decodeMu.Lock()
	for name := range b.decoded {
		if !present[name] {
			delete(b.decoded, name)
		}
	}
	b.decodeMu.Unlock()
	return set, version.String(), nil
}

// decodeCached decodes a shard once per resource version.
func (b *Backend) decodeCached(o *v1alpha1.TableShard) (shardContent, error) {
	b.decodeMu.Lock()
	d, ok := b.decoded[o.Name]
	b.decodeMu.Unlock()
	if ok && d.resourceVersion == o.ResourceVersion {
		return d.content, d.err
	}
	c, err := decodeShard(&o.Spec)
	b.decodeMu.Lock()
	b.decoded[o.Name] = decodedShard{resourceVersion: o.ResourceVersion, content: c, err: err}
	b.decodeMu.Unlock()
	return c, err
}

// adoptPlacements gives the dispatcher the rows of the placements named
// (all when names is nil) whose job the table served lacks (the table's row
// is in force otherwise).
func (b *Backend) adoptPlacements(ctx context.Context, r state.Watcher, names map[string]bool) {
	var l v1alpha1.JobPlacementList
	if err := b.list(ctx, &l); err != nil {
		b.log.Error(err, "Listing the job placements")
		return
	}
	var rows []table.Assignment
	var provisional []state.Provisional
	for i := range l.Items {
		jp := &l.Items[i]
		if names != nil && !names[jp.Name] {
			continue
		}
		if _, ok := b.tableLookup(jp.Spec.Job); ok {
			continue
		}
		row, p, err := placementRow(jp)
		if err != nil {
			b.log.Error(err, "A job placement's provisional record is unreadable: adopting its row alone")
		}
		if err := r.CheckRow(row, p); err != nil {
			b.log.Error(err, "A job placement refused: its job is placed anew at admission", "placement", jp.Name, "replica", jp.Spec.Replica)
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
func (b *Backend) load(ctx context.Context) (*state.State, error) {
	if !b.cache.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("kubernetes state backend: the shared state is not listed: %w", context.Cause(ctx))
	}
	set, version, err := b.shardSet(ctx, "-")
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
	placements, err := b.placements(ctx)
	if err != nil {
		return nil, fmt.Errorf("kubernetes state backend: job placements: %w", err)
	}
	overlayPlacements(st, placements, nil) // the configs are not loaded yet: nothing to check against
	if st.Overrides, err = b.overrides(ctx, nil); err != nil {
		return nil, fmt.Errorf("kubernetes state backend: job overrides: %w", err)
	}
	if st.ClusterOverrides, err = b.clusterOverrides(ctx, nil); err != nil {
		return nil, fmt.Errorf("kubernetes state backend: cluster drains: %w", err)
	}
	if rows == nil {
		rows = []table.Assignment{}
	}
	b.recordFollowed(set, version, rows, nil)
	return st, nil
}

// placements lists the job placements in the cache.
func (b *Backend) placements(ctx context.Context) ([]v1alpha1.JobPlacement, error) {
	var l v1alpha1.JobPlacementList
	if err := b.list(ctx, &l); err != nil {
		return nil, err
	}
	slices.SortFunc(l.Items, func(x, y v1alpha1.JobPlacement) int {
		return cmp.Or(x.CreationTimestamp.Compare(y.CreationTimestamp.Time), cmp.Compare(x.Name, y.Name))
	})
	return l.Items, nil
}

// overrides lists the job overrides in the cache that checkOverride
// accepts (check, when set, checks their cluster), sorted by job.
func (b *Backend) overrides(ctx context.Context, check func(table.Assignment) error) ([]table.Override, error) {
	var l v1alpha1.JobOverrideList
	if err := b.list(ctx, &l); err != nil {
		return nil, err
	}
	slices.SortFunc(l.Items, func(x, y v1alpha1.JobOverride) int {
		return cmp.Or(cmp.Compare(x.Spec.Job, y.Spec.Job), cmp.Compare(x.Name, y.Name))
	})
	out := make([]table.Override, 0, len(l.Items))
	refused := map[string]string{}
	now := b.opts.Clock.Now()
	for i := range l.Items {
		if err := checkOverride(&l.Items[i], now, check); err != nil {
			refused[l.Items[i].Name] = err.Error()
			continue
		}
		out = append(out, overrideOf(&l.Items[i]))
	}
	b.setRefusedObjects(kindJobOverride, refused)
	return out, nil
}

// clusterOverrides lists the drains and caps in the cache that checkDrain
// accepts (check, when set, checks their cluster), sorted by cluster.
func (b *Backend) clusterOverrides(ctx context.Context, check func(table.Assignment) error) ([]table.ClusterOverride, error) {
	var l v1alpha1.ClusterDrainList
	if err := b.list(ctx, &l); err != nil {
		return nil, err
	}
	slices.SortFunc(l.Items, func(x, y v1alpha1.ClusterDrain) int {
		return cmp.Or(cmp.Compare(x.Spec.Cluster, y.Spec.Cluster), cmp.Compare(x.Name, y.Name))
	})
	out := make([]table.ClusterOverride, 0, len(l.Items))
	refused := map[string]string{}
	now := b.opts.Clock.Now()
	for i := range l.Items {
		if err := checkDrain(&l.Items[i], now, check); err != nil {
			refused[l.Items[i].Name] = err.Error()
			continue
		}
		out = append(out, clusterOverrideOf(&l.Items[i]))
	}
	b.setRefusedObjects(kindClusterDrain, refused)
	return out, nil
}
