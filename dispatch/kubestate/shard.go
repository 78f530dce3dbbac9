package kubestate

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// The table codec. The leader cuts the table and the provisional jobs into
// shards by the FNV-1a hash of the job name; each shard is the JSON of its
// rows and provisional jobs, sorted by job, gzipped at BestSpeed, and
// checksummed (sha256 of the JSON). Equal content gives equal bytes, so a
// publication rewrites only the shards whose checksum changed.

// maxShardBytes is the most a shard's compressed data may hold: base64 and
// the object around it stay within etcd's default 1.5 MiB request limit.
const maxShardBytes = 1 << 20

// maxShardJSON bounds a shard's data uncompressed when reading it.
const maxShardJSON = 256 << 20

// shardContent is one shard's data, uncompressed.
type shardContent struct {
	Rows        []table.Assignment  `json:"rows"`
	Provisional []store.Provisional `json:"provisional"`
}

// shardOf is the shard of job among n shards: FNV-1a (32 bits) of the name mod n.
func shardOf(job string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(job); i++ {
		h ^= uint32(job[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// cutShards cuts a table's rows and the provisional jobs into n shards,
// each sorted by job; a nil table has no rows.
func cutShards(t *table.Table, provisional []store.Provisional, n int) []shardContent {
	out := make([]shardContent, n)
	var rows []table.Assignment
	if t != nil {
		rows = t.Assignments
	}
	for i := range out {
		out[i].Rows = make([]table.Assignment, 0, len(rows)/n+len(rows)/(4*n)+1)
		out[i].Provisional = []store.Provisional{}
	}
	for _, a := range rows {
		i := shardOf(a.Job, n)
		out[i].Rows = append(out[i].Rows, a)
	}
	for _, p := range provisional {
		i := shardOf(p.Job.Name, n)
		out[i].Provisional = append(out[i].Provisional, p)
	}
	for i := range out {
		slices.SortStableFunc(out[i].Rows, func(a, b table.Assignment) int { return cmp.Compare(a.Job, b.Job) })
		slices.SortStableFunc(out[i].Provisional, func(a, b store.Provisional) int { return cmp.Compare(a.Job.Name, b.Job.Name) })
	}
	return out
}

// encodedShard is one shard's JSON and checksum, before compression.
type encodedShard struct {
	index    int
	rows     int
	raw      []byte
	checksum string
}

// encodeShard encodes shard index's content.
func encodeShard(index int, c shardContent) (encodedShard, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return encodedShard{}, fmt.Errorf("table shard %s: %w", shardName(index), err)
	}
	return encodedShard{index: index, rows: len(c.Rows), raw: raw, checksum: checksumOf(raw)}, nil
}

// checksumOf is the checksum a TableShard carries for its uncompressed data.
func checksumOf(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// compress is the shard's data as written: gzipped, at most maxShardBytes.
func (e encodedShard) compress() ([]byte, error) {
	data, err := gzipBytes(e.raw)
	if err != nil {
		return nil, fmt.Errorf("table shard %s: %w", shardName(e.index), err)
	}
	if len(data) > maxShardBytes {
		return nil, fmt.Errorf("table shard %s: %d rows are %d bytes compressed, more than the %d a shard may hold: raise the number of shards",
			shardName(e.index), e.rows, len(data), maxShardBytes)
	}
	return data, nil
}

// decodeShard checks a shard's data against its checksum and decodes it.
// Every row and provisional job must belong in the shard (shardOf).
func decodeShard(spec *v1alpha1.TableShardSpec) (shardContent, error) {
	if spec.Shards < 1 || spec.Shard < 0 || spec.Shard >= spec.Shards {
		return shardContent{}, fmt.Errorf("shard %d of %d", spec.Shard, spec.Shards)
	}
	raw, err := gunzipBytes(spec.Data, maxShardJSON)
	if err != nil {
		return shardContent{}, err
	}
	if sum := checksumOf(raw); sum != spec.Checksum {
		return shardContent{}, fmt.Errorf("checksum %s, the shard says %s", sum, spec.Checksum)
	}
	var c shardContent
	if err := json.Unmarshal(raw, &c); err != nil {
		return shardContent{}, fmt.Errorf("decoding: %w", err)
	}
	n, i := int(spec.Shards), int(spec.Shard)
	for _, a := range c.Rows {
		if shardOf(a.Job, n) != i {
			return shardContent{}, fmt.Errorf("the row of job %q belongs in shard %d", a.Job, shardOf(a.Job, n))
		}
	}
	for _, p := range c.Provisional {
		if shardOf(p.Job.Name, n) != i {
			return shardContent{}, fmt.Errorf("the provisional job %q belongs in shard %d", p.Job.Name, shardOf(p.Job.Name, n))
		}
	}
	return c, nil
}

// SkippedShard is a table shard a replica could not apply.
type SkippedShard struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// shardSet is what a replica takes from the table shards in the API.
type shardSet struct {
	// state holds the merged table (nil when no shard applies) and provisional jobs.
	state *store.State
	// publication is the highest publication among the shards applied.
	publication int64
	// skipped are the shards of the set that failed to decode.
	skipped []SkippedShard
}

// assembleShards merges the latest set of shards: those cut into as many
// shards as the shard of the highest publication (a change of the shard
// count leaves shards of the old count behind until the leader deletes
// them). A shard that fails to decode is skipped and reported; the others
// apply. decode, called concurrently, may cache by resource version.
func assembleShards(objs []*v1alpha1.TableShard, decode func(*v1alpha1.TableShard) (shardContent, error)) shardSet {
	var latest *v1alpha1.TableShard
	for _, o := range objs {
		if latest == nil || o.Spec.Publication > latest.Spec.Publication ||
			o.Spec.Publication == latest.Spec.Publication && o.Name > latest.Name {
			latest = o
		}
	}
	var set shardSet
	if latest == nil {
		return set
	}
	var members []*v1alpha1.TableShard
	for _, o := range objs {
		if o.Spec.Shards != latest.Spec.Shards {
			continue
		}
		if o.Name != shardName(int(o.Spec.Shard)) {
			set.skipped = append(set.skipped, SkippedShard{Name: o.Name, Error: fmt.Sprintf("shard %d must be named %s", o.Spec.Shard, shardName(int(o.Spec.Shard)))})
			continue
		}
		members = append(members, o)
	}
	decoded := make([]shardContent, len(members))
	errs := make([]error, len(members))
	parallel(len(members), func(i int) { decoded[i], errs[i] = decode(members[i]) })
	var (
		contents    []shardContent
		rows, provs int
		generatedAt time.Time
	)
	for i, o := range members {
		if errs[i] != nil {
			set.skipped = append(set.skipped, SkippedShard{Name: o.Name, Error: errs[i].Error()})
			continue
		}
		c := decoded[i]
		contents = append(contents, c)
		rows += len(c.Rows)
		provs += len(c.Provisional)
		set.publication = max(set.publication, o.Spec.Publication)
		if t := goTime(o.Spec.GeneratedAt); t.After(generatedAt) {
			generatedAt = t
		}
	}
	slices.SortFunc(set.skipped, func(a, b SkippedShard) int { return cmp.Compare(a.Name, b.Name) })
	if len(contents) == 0 {
		return set
	}
	st := &store.State{Table: &table.Table{GeneratedAt: generatedAt, Assignments: make([]table.Assignment, 0, rows)}}
	if provs > 0 {
		st.Provisional = make([]store.Provisional, 0, provs)
	}
	for _, c := range contents {
		st.Table.Assignments = append(st.Table.Assignments, c.Rows...)
		st.Provisional = append(st.Provisional, c.Provisional...)
	}
	st.Table.Sort()
	slices.SortFunc(st.Provisional, func(a, b store.Provisional) int { return cmp.Compare(a.Job.Name, b.Job.Name) })
	set.state = st
	return set
}

// writtenShard is what a publisher compares of a shard in the API.
type writtenShard struct {
	shards   int32
	checksum string
}

// changedShards are the shards of enc whose content differs from the shard
// of that name in current (or that are absent): the ones a publication writes.
func changedShards(enc []encodedShard, current map[string]writtenShard) []encodedShard {
	var out []encodedShard
	for _, e := range enc {
		cur, ok := current[shardName(e.index)]
		if !ok || cur.checksum != e.checksum || int(cur.shards) != len(enc) {
			out = append(out, e)
		}
	}
	return out
}

// parallel calls f(0) .. f(n-1) on up to GOMAXPROCS goroutines.
func parallel(n int, f func(i int)) { parallelN(n, runtime.GOMAXPROCS(0), f) }

// publishWorkers is how many goroutines encode and compress a publication:
// half the CPUs, so that a publication of the whole table leaves the other
// half to the admissions the leader serves meanwhile.
func publishWorkers() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// parallelN calls f(0) .. f(n-1) on up to workers goroutines.
func parallelN(n, workers int, f func(i int)) {
	workers = min(n, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		})
	}
	wg.Wait()
}
