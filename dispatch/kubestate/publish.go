package kubestate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// The leader publishes its table as TableShards: whenever the dispatcher's
// table version changes it takes a snapshot, cuts it into shards and writes
// those whose checksum differs from the shard in the API, numbered with one
// publication above every publication seen. Then it folds the placements:
// a JobPlacement whose row the publication holds is deleted. A publication
// that changes no row writes nothing, so the GeneratedAt followers see is
// that of the last publication that changed a shard. Before its first
// dispatch (no table) the leader publishes nothing.

// publishBackoffMax caps the backoff of a failing publication.
const publishBackoffMax = 10 * time.Second

// shardWriters is how many shards a publication writes at once.
const shardWriters = 4

// pacing is how a publication spends CPU: how many shards it encodes,
// compresses or writes at once, and the pause after each of a worker's,
// skipped once hurry (if set) reports a change someone waits for.
type pacing struct {
	workers int
	pause   time.Duration
	hurry   func() bool
}

// fullSpeed publishes on half the CPUs, without pauses: someone waits
// for the change (a reschedule, a drain, a dispatch).
func fullSpeed() pacing { return pacing{workers: publishWorkers()} }

// gentle is the pace of a change nobody waits for (rows that placements
// carry already): one shard at a time with a pause after each, spreading
// the encoding, the API server's writes and the watch events over a
// second or two instead of a burst that stalls admissions. hurry ends the
// pauses when a change someone waits for comes meanwhile.
func gentle(hurry func() bool) pacing {
	return pacing{workers: 1, pause: 50 * time.Millisecond, hurry: hurry}
}

// run calls f(0) .. f(n-1) at this pace; the pauses end early when ctx does.
func (p pacing) run(ctx context.Context, n int, f func(i int)) {
	parallelN(n, p.workers, func(i int) {
		f(i)
		if p.pause > 0 && i < n-1 && (p.hurry == nil || !p.hurry()) {
			t := time.NewTimer(p.pause)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	})
}

// placementGrace is how long a placement whose job the leader's table
// places on another cluster stays: the row of the leader's table is in
// force, and the placement only waited to be adopted.
const placementGrace = time.Minute

// publishLoop publishes the dispatcher's table while ctx (the term) lasts.
func (b *Backend) publishLoop(ctx context.Context) {
	var (
		enc           shardEncoder
		published     bool
		version       uint64
		backoff       time.Duration
		lastPublished time.Time
	)
	ticker := b.opts.Clock.NewTicker(b.opts.PublishInterval)
	defer ticker.Stop()
	for {
		repair := b.takeRepair() // a publication compares every shard: it repairs them all
		if r := b.attached(); r != nil && (!published || r.TableVersion() != version || repair) {
			placedOnly := published && !repair && onlyPlaced(r, version, b.placed)
			if placedOnly && b.opts.Clock.Since(lastPublished) < b.opts.PlacedRowsDelay {
				select { // the placements carry the change; it is published with the next one
				case <-ctx.Done():
					return
				case <-ticker.C():
				}
				continue
			}
			st, v := r.Published()
			pace := fullSpeed()
			if placedOnly { // nobody waits for it: spread its cost, unless a change someone waits for comes
				pace = gentle(func() bool { return !onlyPlaced(r, v, b.placed) })
			}
			err := b.publish(ctx, &enc, st, pace)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				published, version, backoff, lastPublished = true, v, 0, b.opts.Clock.Now()
				b.setUnpublished(false)
			} else {
				b.setUnpublished(true)
				if errors.Is(err, errFenced) {
					b.log.Info("Not publishing: this replica may no longer lead", "why", err.Error())
					select { // the term ends soon; a renewal lifts the fence
					case <-ctx.Done():
						return
					case <-ticker.C():
					}
					continue
				}
				backoff = min(max(2*backoff, b.opts.PublishInterval), publishBackoffMax)
				b.log.Error(err, "Publishing the table failed: retrying", "in", backoff)
				select {
				case <-ctx.Done():
					return
				case <-b.opts.Clock.After(backoff):
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// takeRepair reports, and clears, that a shard in the API may not be this
// term's own (another writer's event, or a new term).
func (b *Backend) takeRepair() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.repair
	b.repair = false
	return r
}

// setUnpublished records whether the table has changes a publication failed to write.
func (b *Backend) setUnpublished(failing bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !failing:
		b.unpublishedSince = time.Time{}
	case b.unpublishedSince.IsZero():
		b.unpublishedSince = b.opts.Clock.Now()
	}
}

// publish writes the shards of st that changed (or that this term did not
// write), deletes the shards of another shard count, and folds the
// placements st holds. pace says how many shards are encoded and written
// at once, and the pause between two. Every write is fenced (fence.go).
func (b *Backend) publish(ctx context.Context, enc *shardEncoder, st *state.State, pace pacing) (err error) {
	defer func() {
		b.mu.Lock()
		b.lastPublishErr = err
		b.mu.Unlock()
		if err != nil {
			b.metrics.publications.WithLabelValues(resultError).Inc()
		}
	}()
	if st == nil || st.Table == nil || len(st.Table.Assignments) == 0 { // no table yet: the shards in the API stay
		return nil
	}
	term, _, err := b.fence()
	if err != nil {
		return err
	}
	start := time.Now()
	n := b.opts.Shards
	shards, err := enc.encode(ctx, st.Table, st.Provisional, n, pace)
	if err != nil {
		return err
	}
	var l v1alpha1.TableShardList
	if err := b.list(ctx, &l); err != nil {
		return fmt.Errorf("listing the table shards: %w", err)
	}
	current := map[string]writtenShard{}
	var highest, newest int64
	for _, o := range l.Items {
		current[o.Name] = writtenShard{shards: o.Spec.Shards, shard: o.Spec.Shard, checksum: o.Spec.Checksum, term: o.Spec.Term, publishedBy: o.Spec.PublishedBy}
		newest = max(newest, o.Spec.Term)
		if o.Spec.Term <= term && o.Spec.Publication < math.MaxInt64/2 { // a hand-written number must not exhaust ours
			highest = max(highest, o.Spec.Publication)
		}
	}
	if newest > term {
		if err := b.checkNewerTerm(ctx, term, newest); err != nil {
			return err
		}
	}
	changed := changedShards(shards, current, term, b.opts.Replica)
	data := make([][]byte, len(changed))
	compressErrs := make([]error, len(changed))
	pace.run(ctx, len(changed), func(i int) { data[i], compressErrs[i] = changed[i].compress() })
	if err := errors.Join(compressErrs...); err != nil { // all or nothing: refuse before writing any
		return err
	}
	var left []string
	for _, e := range shards {
		left = append(left, e.dropped...)
	}
	if len(left) > 0 {
		slices.Sort(left)
		b.log.Error(fmt.Errorf("%d rows do not fit in their shards (at most %d rows and %d bytes compressed each)", len(left), maxShardRows, maxShardBytes),
			"Rows left out of the publication: followers place their jobs anew; raise the number of shards", "rows", len(left), "first", shortName(left[0]))
	}
	b.mu.Lock()
	pub := max(b.lastPublished, highest) + 1
	b.mu.Unlock()
	var generatedAt *metav1.Time
	if st.Table != nil {
		generatedAt = apiTime(st.Table.GeneratedAt)
	}
	if len(changed) > 0 {
		b.mu.Lock()
		b.lastPublished = pub // consumed even if a write fails: publications only grow
		b.mu.Unlock()
		errs := make([]error, len(changed))
		writers := pacing{workers: shardWriters}
		if pace.pause > 0 {
			writers = pace
		}
		writers.run(ctx, len(changed), func(k int) {
			e := changed[k]
			spec := v1alpha1.TableShardSpec{
				Shard: int32(e.index), Shards: int32(n), Publication: pub, Term: term, PublishedBy: b.opts.Replica,
				GeneratedAt: generatedAt, Rows: int32(e.rows), Checksum: e.checksum, Data: data[k],
			}
			errs[k] = b.writeShard(ctx, shardName(e.index), spec)
		})
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("publication %d: %w", pub, err)
		}
	}
	for _, o := range l.Items { // shards of another shard count, or any other name
		if idx := slices.IndexFunc(shards, func(e encodedShard) bool { return shardName(e.index) == o.Name }); idx < 0 {
			pre := &metav1.Preconditions{UID: &o.UID, ResourceVersion: &o.ResourceVersion}
			if err := b.leaderDelete(ctx, kindTableShard, &v1alpha1.TableShard{ObjectMeta: b.meta(o.Name)}, pre); err != nil {
				return fmt.Errorf("deleting the stale table shard: %w", err)
			}
		}
	}
	rows := sortedRows(st.Table)
	if rows == nil {
		rows = []table.Assignment{}
	}
	if len(left) > 0 { // served is what the shards hold
		rows = slices.DeleteFunc(slices.Clone(rows), func(a table.Assignment) bool { _, gone := slices.BinarySearch(left, a.Job); return gone })
	}
	now := b.opts.Clock.Now()
	served := highest // the shards in the API hold this table already
	if len(changed) > 0 {
		served = pub
	}
	b.mu.Lock()
	b.tableRows, b.lastPublishTime, b.publication, b.unpublishedRows = rows, now, served, len(left)
	b.mu.Unlock()
	b.metrics.rowsUnpublished.Set(float64(len(left)))
	if len(changed) > 0 {
		b.metrics.publications.WithLabelValues(resultOK).Inc()
		b.log.V(1).Info("Published the table", "publication", served, "shards", len(changed), "rows", len(rows), "took", time.Since(start))
	} else {
		b.metrics.publications.WithLabelValues(resultUnchanged).Inc()
	}
	b.foldPlacements(ctx)
	return nil
}

// writeShard creates or updates one shard under the leader's fence, with
// the fence's term. On a conflict it reads the shard from the API server
// and, unless it holds this content already, writes it once more; a shard
// of a newer term than the Lease had is repaired, one of a newer term the
// Lease had deposes this replica and is left alone.
func (b *Backend) writeShard(ctx context.Context, name string, spec v1alpha1.TableShardSpec) error {
	b.mu.Lock()
	if b.wrote == nil {
		b.wrote = map[string]string{}
	}
	prev, had := b.wrote[name]
	b.wrote[name] = spec.Checksum // before the write: its watch event must not look foreign
	b.mu.Unlock()
	err := b.leaderWrite(ctx, func(ctx context.Context, term int64) error {
		spec.Term = term
		_, err := upsert(ctx, b, kindTableShard, name,
			func() *v1alpha1.TableShard { return &v1alpha1.TableShard{} },
			func(ts *v1alpha1.TableShard) error {
				if ts.ResourceVersion != "" && ts.Spec.Term > term {
					if err := b.checkNewerTerm(ctx, term, ts.Spec.Term); err != nil {
						return err
					}
				}
				if ts.ResourceVersion != "" && ts.Spec.Checksum == spec.Checksum && ts.Spec.Shards == spec.Shards && ts.Spec.Shard == spec.Shard &&
					ts.Spec.Term == term && ts.Spec.PublishedBy == spec.PublishedBy {
					return errShardCurrent // the cache lagged behind this leader's last write
				}
				ts.Spec = spec
				return nil
			})
		return err
	})
	if errors.Is(err, errShardCurrent) {
		err = nil
	}
	if err != nil {
		b.mu.Lock()
		if had {
			b.wrote[name] = prev
		} else {
			delete(b.wrote, name)
		}
		b.mu.Unlock()
	}
	return err
}

// checkNewerTerm reads the Lease when a shard carries term seen, newer than
// this replica's term: when the Lease had that term, a newer leader wrote,
// and this replica is deposed (errFenced); otherwise the shard is forged
// and is to be repaired (nil).
func (b *Backend) checkNewerTerm(ctx context.Context, term, seen int64) error {
	lease := &coordinationv1.Lease{}
	if err := b.read(ctx, "Lease", b.opts.LeaseName, lease); err != nil {
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
	if transitions >= seen || holder != b.opts.Replica {
		why := fmt.Sprintf("a table shard is of term %d, and the Lease is at term %d held by %q", seen, transitions, holder)
		b.deposed(why)
		return fmt.Errorf("term %d: %s: %w", term, why, errFenced)
	}
	b.log.Error(fmt.Errorf("a table shard is of term %d, later than the Lease's %d", seen, transitions), "Repairing a table shard no leader wrote")
	return nil
}

// leaderDelete deletes obj, as deleteObject does, under the leader's fence.
func (b *Backend) leaderDelete(ctx context.Context, kind string, obj client.Object, pre *metav1.Preconditions) error {
	return b.leaderWrite(ctx, func(ctx context.Context, _ int64) error { return b.deleteObject(ctx, kind, obj, pre) })
}

// errShardCurrent says a shard holds the content to write already.
var errShardCurrent = errors.New("the shard is current")

// foldPlacements deletes the placements whose row the table served holds
// (the table carries them now), and those whose job it places elsewhere
// after placementGrace.
func (b *Backend) foldPlacements(ctx context.Context) {
	placements, err := b.placements(ctx)
	if err != nil {
		b.log.Error(err, "Listing the job placements to fold")
		return
	}
	now := b.opts.Clock.Now()
	for i := range placements {
		jp := &placements[i]
		cluster, ok := b.tableLookup(jp.Spec.Job)
		if !ok || cluster != jp.Spec.Cluster && now.Sub(jp.CreationTimestamp.Time) < placementGrace {
			continue
		}
		pre := &metav1.Preconditions{UID: &jp.UID, ResourceVersion: &jp.ResourceVersion}
		if err := b.leaderDelete(ctx, kindJobPlacement, &v1alpha1.JobPlacement{ObjectMeta: b.meta(jp.Name)}, pre); err != nil {
			if errors.Is(err, errFenced) {
				return
			}
			b.log.Error(err, "Folding a job placement", "job", jp.Spec.Job)
			continue
		}
		if cluster != jp.Spec.Cluster {
			b.log.Info("Dropped a job placement the table overrides", "job", jp.Spec.Job, "placed", jp.Spec.Cluster, "table", cluster)
		}
	}
}

// shardEncoder encodes a table into shards, encoding again only the
// shards whose content changed since its last call.
type shardEncoder struct {
	contents []shardContent
	shards   []encodedShard
}

func (e *shardEncoder) encode(ctx context.Context, t *table.Table, provisional []state.Provisional, n int, pace pacing) ([]encodedShard, error) {
	cut := cutShards(t, provisional, n)
	if len(e.contents) != n {
		e.contents, e.shards = make([]shardContent, n), make([]encodedShard, n)
	}
	var todo []int
	for i, c := range cut {
		if e.shards[i].raw == nil || !slices.Equal(e.contents[i].Rows, c.Rows) || !reflect.DeepEqual(e.contents[i].Provisional, c.Provisional) {
			todo = append(todo, i)
		}
	}
	errs := make([]error, len(todo))
	pace.run(ctx, len(todo), func(k int) {
		i := todo[k]
		s, err := fitShard(i, cut[i])
		e.contents[i], e.shards[i], errs[k] = cut[i], s, err
	})
	if err := errors.Join(errs...); err != nil {
		e.contents, e.shards = nil, nil
		return nil, err
	}
	return slices.Clone(e.shards), nil
}

// placed reports whether a JobPlacement in the cache carries row's cluster for its job.
func (b *Backend) placed(job, cluster string) bool {
	jp := &v1alpha1.JobPlacement{}
	if err := b.cache.Get(context.Background(), client.ObjectKey{Namespace: b.opts.Namespace, Name: ObjectName(job)}, jp); err != nil {
		return false
	}
	return jp.Spec.Job == job && jp.Spec.Cluster == cluster
}

// onlyPlaced reports whether every row r changed since the table version
// published is one that placed says a JobPlacement carries: then the change
// may wait for the next publication. It copies no table.
func onlyPlaced(r state.Watcher, published uint64, placed func(job, cluster string) bool) bool {
	rows, ok := r.RowsChangedSince(published)
	if !ok {
		return false
	}
	for _, a := range rows {
		if !placed(a.Job, a.Cluster) {
			return false
		}
	}
	return true
}
