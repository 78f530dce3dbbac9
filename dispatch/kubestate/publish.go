package kubestate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// publisher is the leader's room that writes its table as TableShards,
// with what it last published.
type publisher struct {
	k       *kube
	leader  *leadership
	served  *servedTable
	watcher *watcherRef

	mu               sync.Mutex
	lastPublished    int64
	lastPublishTime  time.Time
	lastPublishErr   error
	unpublishedSince time.Time         // the table has changes not published since then (publication failing); zero when none
	repair           bool              // a shard in the API may not be this term's: compare them all at the next publication
	wrote            map[string]string // shard name -> checksum this term wrote
	unpublishedRows  int               // rows the last publication left out (shards full)
}

// run publishes the dispatcher's table while ctx (the term) lasts.
func (p *publisher) run(ctx context.Context) {
	var (
		enc           shardEncoder
		published     bool
		version       uint64
		backoff       time.Duration
		lastPublished time.Time
	)
	ticker := p.k.opts.Clock.NewTicker(p.k.opts.PublishInterval)
	defer ticker.Stop()
	for {
		repair := p.takeRepair() // a publication compares every shard: it repairs them all
		if r := p.watcher.get(); r != nil && (!published || r.TableVersion() != version || repair) {
			placedOnly := published && !repair && onlyPlaced(r, version, p.placed)
			if placedOnly && p.k.opts.Clock.Since(lastPublished) < p.k.opts.PlacedRowsDelay {
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
				pace = gentle(func() bool { return !onlyPlaced(r, v, p.placed) })
			}
			err := p.publish(ctx, &enc, st, pace)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				published, version, backoff, lastPublished = true, v, 0, p.k.opts.Clock.Now()
				p.setUnpublished(false)
			} else {
				p.setUnpublished(true)
				if errors.Is(err, errFenced) {
					p.k.log.Info("Not publishing: this replica may no longer lead", "why", err.Error())
					select { // the term ends soon; a renewal lifts the fence
					case <-ctx.Done():
						return
					case <-ticker.C():
					}
					continue
				}
				backoff = min(max(2*backoff, p.k.opts.PublishInterval), publishBackoffMax)
				p.k.log.Error(err, "Publishing the table failed: retrying", "in", backoff)
				select {
				case <-ctx.Done():
					return
				case <-p.k.opts.Clock.After(backoff):
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
func (p *publisher) takeRepair() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.repair
	p.repair = false
	return r
}

// markRepair makes the next publication compare every shard.
func (p *publisher) markRepair() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.repair = true
}

// observeShard marks, on the leader, a shard that is not this term's own
// as written (another writer's, or deleted) for repair.
func (p *publisher) observeShard(obj any, deleted bool) {
	term, leading := p.leader.termWriting()
	if !leading {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ts, ok := obj.(*v1alpha1.TableShard)
	if deleted || !ok || ts.Spec.Term != term || ts.Spec.PublishedBy != p.k.opts.Replica || ts.Spec.Checksum != p.wrote[ts.Name] {
		p.repair = true
	}
}

// publishView is what Status shows of the publisher.
type publishView struct {
	lastPublished    int64
	lastPublishTime  time.Time
	lastPublishErr   error
	unpublishedSince time.Time
	unpublishedRows  int
}

func (p *publisher) view() publishView {
	p.mu.Lock()
	defer p.mu.Unlock()
	return publishView{p.lastPublished, p.lastPublishTime, p.lastPublishErr, p.unpublishedSince, p.unpublishedRows}
}

// setUnpublished records whether the table has changes a publication failed to write.
func (p *publisher) setUnpublished(failing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case !failing:
		p.unpublishedSince = time.Time{}
	case p.unpublishedSince.IsZero():
		p.unpublishedSince = p.k.opts.Clock.Now()
	}
}

// publish writes the shards of st that changed (or that this term did not
// write), deletes the shards of another shard count, and folds the
// placements st holds. pace says how many shards are encoded and written
// at once, and the pause between two. Every write is fenced (fence.go).
func (p *publisher) publish(ctx context.Context, enc *shardEncoder, st *state.State, pace pacing) (err error) {
	defer func() {
		p.mu.Lock()
		p.lastPublishErr = err
		p.mu.Unlock()
		if err != nil {
			p.k.metrics.publications.WithLabelValues(resultError).Inc()
		}
	}()
	if st == nil || st.Table == nil || len(st.Table.Assignments) == 0 { // no table yet: the shards in the API stay
		return nil
	}
	term, _, err := p.leader.fence()
	if err != nil {
		return err
	}
	start := time.Now()
	n := p.k.opts.Shards
	shards, err := enc.encode(ctx, st.Table, st.Provisional, n, pace)
	if err != nil {
		return err
	}
	var l v1alpha1.TableShardList
	if err := p.k.list(ctx, &l); err != nil {
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
		if err := p.leader.checkNewerTerm(ctx, term, newest); err != nil {
			return err
		}
	}
	changed := changedShards(shards, current, term, p.k.opts.Replica)
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
		p.k.log.Error(fmt.Errorf("%d rows do not fit in their shards (at most %d rows and %d bytes compressed each)", len(left), maxShardRows, maxShardBytes),
			"Rows left out of the publication: followers place their jobs anew; raise the number of shards", "rows", len(left), "first", shortName(left[0]))
	}
	p.mu.Lock()
	pub := max(p.lastPublished, highest) + 1
	p.mu.Unlock()
	var generatedAt *metav1.Time
	if st.Table != nil {
		generatedAt = apiTime(st.Table.GeneratedAt)
	}
	if len(changed) > 0 {
		p.mu.Lock()
		p.lastPublished = pub // consumed even if a write fails: publications only grow
		p.mu.Unlock()
		errs := make([]error, len(changed))
		writers := pacing{workers: shardWriters}
		if pace.pause > 0 {
			writers = pace
		}
		writers.run(ctx, len(changed), func(k int) {
			e := changed[k]
			spec := v1alpha1.TableShardSpec{
				Shard: int32(e.index), Shards: int32(n), Publication: pub, Term: term, PublishedBy: p.k.opts.Replica,
				GeneratedAt: generatedAt, Rows: int32(e.rows), Checksum: e.checksum, Data: data[k],
			}
			errs[k] = p.writeShard(ctx, shardName(e.index), spec)
		})
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("publication %d: %w", pub, err)
		}
	}
	for _, o := range l.Items { // shards of another shard count, or any other name
		if idx := slices.IndexFunc(shards, func(e encodedShard) bool { return shardName(e.index) == o.Name }); idx < 0 {
			pre := &metav1.Preconditions{UID: &o.UID, ResourceVersion: &o.ResourceVersion}
			if err := p.leader.leaderDelete(ctx, kindTableShard, &v1alpha1.TableShard{ObjectMeta: p.k.meta(o.Name)}, pre); err != nil {
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
	now := p.k.opts.Clock.Now()
	served := highest // the shards in the API hold this table already
	if len(changed) > 0 {
		served = pub
	}
	p.served.set(rows, served)
	p.mu.Lock()
	p.lastPublishTime, p.unpublishedRows = now, len(left)
	p.mu.Unlock()
	p.k.metrics.rowsUnpublished.Set(float64(len(left)))
	if len(changed) > 0 {
		p.k.metrics.publications.WithLabelValues(resultOK).Inc()
		p.k.log.V(1).Info("Published the table", "publication", served, "shards", len(changed), "rows", len(rows), "took", time.Since(start))
	} else {
		p.k.metrics.publications.WithLabelValues(resultUnchanged).Inc()
	}
	p.foldPlacements(ctx)
	return nil
}

// writeShard creates or updates one shard under the leader's fence, with
// the fence's term. On a conflict it reads the shard from the API server
// and, unless it holds this content already, writes it once more; a shard
// of a newer term than the Lease had is repaired, one of a newer term the
// Lease had deposes this replica and is left alone.
func (p *publisher) writeShard(ctx context.Context, name string, spec v1alpha1.TableShardSpec) error {
	p.mu.Lock()
	if p.wrote == nil {
		p.wrote = map[string]string{}
	}
	prev, had := p.wrote[name]
	p.wrote[name] = spec.Checksum // before the write: its watch event must not look foreign
	p.mu.Unlock()
	err := p.leader.leaderWrite(ctx, func(ctx context.Context, term int64) error {
		spec.Term = term
		_, err := upsert(ctx, p.k, kindTableShard, name,
			func() *v1alpha1.TableShard { return &v1alpha1.TableShard{} },
			func(ts *v1alpha1.TableShard) error {
				if ts.ResourceVersion != "" && ts.Spec.Term > term {
					if err := p.leader.checkNewerTerm(ctx, term, ts.Spec.Term); err != nil {
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
		p.mu.Lock()
		if had {
			p.wrote[name] = prev
		} else {
			delete(p.wrote, name)
		}
		p.mu.Unlock()
	}
	return err
}

// errShardCurrent says a shard holds the content to write already.
var errShardCurrent = errors.New("the shard is current")

// foldPlacements deletes the placements whose row the table served holds
// (the table carries them now), and those whose job it places elsewhere
// after placementGrace.
func (p *publisher) foldPlacements(ctx context.Context) {
	placements, err := p.k.placements(ctx)
	if err != nil {
		p.k.log.Error(err, "Listing the job placements to fold")
		return
	}
	now := p.k.opts.Clock.Now()
	for i := range placements {
		jp := &placements[i]
		cluster, ok := p.served.lookup(jp.Spec.Job)
		if !ok || cluster != jp.Spec.Cluster && now.Sub(jp.CreationTimestamp.Time) < placementGrace {
			continue
		}
		pre := &metav1.Preconditions{UID: &jp.UID, ResourceVersion: &jp.ResourceVersion}
		if err := p.leader.leaderDelete(ctx, kindJobPlacement, &v1alpha1.JobPlacement{ObjectMeta: p.k.meta(jp.Name)}, pre); err != nil {
			if errors.Is(err, errFenced) {
				return
			}
			p.k.log.Error(err, "Folding a job placement", "job", jp.Spec.Job)
			continue
		}
		if cluster != jp.Spec.Cluster {
			p.k.log.Info("Dropped a job placement the table overrides", "job", jp.Spec.Job, "placed", jp.Spec.Cluster, "table", cluster)
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
func (p *publisher) placed(job, cluster string) bool {
	jp := &v1alpha1.JobPlacement{}
	if err := p.k.cached(context.Background(), ObjectName(job), jp); err != nil {
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
