package kubestate

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
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

// maxShardRows is the most rows a shard holds. With the job names that
// admission records bounded (dispatch.MaxJobNameBytes), 16 shards hold
// 320,000 rows; the rows past a bound are left out of the publication.
const maxShardRows = 20000

// maxShardJSON bounds a shard's data uncompressed when reading it.
const maxShardJSON = 256 << 20

// shardContent is one shard's data, uncompressed.
type shardContent struct {
	Rows        []table.Assignment  `json:"rows"`
	Provisional []state.Provisional `json:"provisional"`
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
func cutShards(t *table.Table, provisional []state.Provisional, n int) []shardContent {
	out := make([]shardContent, n)
	var rows []table.Assignment
	if t != nil {
		rows = t.Assignments
	}
	for i := range out {
		out[i].Rows = make([]table.Assignment, 0, len(rows)/n+len(rows)/(4*n)+1)
		out[i].Provisional = []state.Provisional{}
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
		slices.SortStableFunc(out[i].Provisional, func(a, b state.Provisional) int { return cmp.Compare(a.Job.Name, b.Job.Name) })
	}
	return out
}

// encodedShard is one shard's JSON and checksum, and its data compressed
// when fitting it needed that already.
type encodedShard struct {
	index    int
	rows     int
	raw      []byte
	checksum string
	data     []byte   // nil until compressed
	dropped  []string // the jobs left out for the shard to fit, sorted
}

// fitShard encodes shard index's content within maxShardRows rows and
// maxShardBytes compressed: past them, the largest rows (the longest job
// names, details and files) are left out, with their provisional records,
// and named in dropped.
func fitShard(index int, c shardContent) (encodedShard, error) {
	var dropped []string
	if len(c.Rows) > maxShardRows {
		left := len(c.Rows)
		c, dropped = dropLargest(c, func(int) bool { left--; return left > maxShardRows }, dropped)
	}
	for {
		e, err := encodeShard(index, c)
		if err != nil {
			return e, err
		}
		e.dropped = dropped
		if len(e.raw) <= maxShardBytes*7/8 { // JSON never compresses to more than this
			return e, nil
		}
		data, err := gzipBytes(e.raw)
		if err != nil {
			return e, fmt.Errorf("table shard %s: %w", shardName(index), err)
		}
		if len(data) <= maxShardBytes {
			e.data = data
			return e, nil
		}
		// Leave out rows until the JSON shrinks as much as the data must, and a tenth more.
		target := int(float64(len(e.raw)) * 0.9 * float64(maxShardBytes) / float64(len(data)))
		raw := len(e.raw)
		c, dropped = dropLargest(c, func(size int) bool { raw -= size; return raw > target }, dropped)
	}
}

// dropLargest leaves out of c its largest rows (or, once no row is left,
// provisional jobs), ties by job name, while more(size of the one left
// out) says so, at least one; it adds their jobs to dropped, sorted.
func dropLargest(c shardContent, more func(size int) bool, dropped []string) (shardContent, []string) {
	type item struct {
		job  string
		size int
	}
	var items []item
	if len(c.Rows) > 0 {
		for _, a := range c.Rows {
			items = append(items, item{a.Job, len(a.Job) + len(a.Cluster) + len(a.Detail) + len(a.File) + len(a.Reason) + 128})
		}
	} else {
		for _, p := range c.Provisional {
			raw, _ := json.Marshal(p)
			items = append(items, item{p.Job.Name, len(raw)})
		}
	}
	slices.SortFunc(items, func(a, b item) int { return cmp.Or(cmp.Compare(b.size, a.size), cmp.Compare(a.job, b.job)) })
	gone := map[string]bool{}
	for _, it := range items {
		gone[it.job] = true
		dropped = append(dropped, it.job)
		if !more(it.size) {
			break
		}
	}
	out := shardContent{
		Rows:        slices.DeleteFunc(slices.Clone(c.Rows), func(a table.Assignment) bool { return gone[a.Job] }),
		Provisional: slices.DeleteFunc(slices.Clone(c.Provisional), func(p state.Provisional) bool { return gone[p.Job.Name] }),
	}
	slices.Sort(dropped)
	return out, dropped
}

// shortName is a job name as a log shows it: at most 80 bytes.
func shortName(job string) string {
	if len(job) <= 80 {
		return job
	}
	return fmt.Sprintf("%s... (%d bytes)", job[:80], len(job))
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
	if e.data != nil {
		return e.data, nil
	}
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
	state *state.State
	// publication is the highest publication among the shards applied.
	publication int64
	// term and publishedBy are the leader's term and name that wrote the set.
	term        int64
	publishedBy string
	// skipped are the shards of the set that failed to decode.
	skipped []SkippedShard
	// refused, when set, says why the set as a whole is not adopted (state is nil).
	refused string
}

// shardRules are what a shard set must agree with to be adopted.
type shardRules struct {
	// shards is how many shards the table is cut into (Options.Shards).
	shards int
	// leaseTerm and leaseHolder are the Lease's leaseTransitions and holder
	// (leaseHolder empty when there is no Lease): no shard may carry a
	// later term, nor, in that term, another writer.
	leaseTerm   int64
	leaseHolder string
	// adoptedTerm is the term of the set last adopted: an older one is refused.
	adoptedTerm int64
}

// assembleShards merges the shards named table-00 .. of rules.shards (the
// leader deletes any other). The set is adopted only whole: every shard
// present, cut into rules.shards, all of one term and writer that the
// Lease had, and no older term than the set adopted last; otherwise
// refused says why and nothing applies. A shard that fails to decode is
// skipped and reported; the others apply. decode, called concurrently,
// may cache by resource version.
func assembleShards(objs []*v1alpha1.TableShard, rules shardRules, decode func(*v1alpha1.TableShard) (shardContent, error)) shardSet {
	var set shardSet
	n := rules.shards
	members := make([]*v1alpha1.TableShard, n)
	found := 0
	for _, o := range objs {
		i, ok := shardIndex(o.Name, n)
		if !ok {
			continue
		}
		members[i] = o
		found++
	}
	if found == 0 {
		return set
	}
	if why := checkShardSet(members, rules); why != "" {
		set.refused = why
		return set
	}
	set.term, set.publishedBy = members[0].Spec.Term, members[0].Spec.PublishedBy
	decoded := make([]shardContent, n)
	errs := make([]error, n)
	parallel(n, func(i int) { decoded[i], errs[i] = decode(members[i]) })
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
	st := &state.State{Table: &table.Table{GeneratedAt: generatedAt, Assignments: make([]table.Assignment, 0, rows)}}
	if provs > 0 {
		st.Provisional = make([]state.Provisional, 0, provs)
	}
	for _, c := range contents {
		st.Table.Assignments = append(st.Table.Assignments, c.Rows...)
		st.Provisional = append(st.Provisional, c.Provisional...)
	}
	st.Table.Sort()
	slices.SortFunc(st.Provisional, func(a, b state.Provisional) int { return cmp.Compare(a.Job.Name, b.Job.Name) })
	set.state = st
	return set
}

// checkShardSet says why the shards (indexed by shard, nil when absent)
// are no set to adopt under rules; empty when they are one.
func checkShardSet(members []*v1alpha1.TableShard, rules shardRules) string {
	var first *v1alpha1.TableShard
	for i, o := range members {
		if o == nil {
			return fmt.Sprintf("%s is missing: a set of %d shards is adopted whole", shardName(i), len(members))
		}
		sp := &o.Spec
		switch {
		case int(sp.Shards) != len(members) || int(sp.Shard) != i:
			return fmt.Sprintf("%s says it is shard %d of %d, not %d of %d", o.Name, sp.Shard, sp.Shards, i, len(members))
		case rules.leaseHolder != "" && sp.Term > rules.leaseTerm:
			return fmt.Sprintf("%s is of term %d, later than the Lease's %d", o.Name, sp.Term, rules.leaseTerm)
		case rules.leaseHolder != "" && sp.Term == rules.leaseTerm && sp.PublishedBy != rules.leaseHolder:
			return fmt.Sprintf("%s is of term %d by %q, but %q holds the Lease in that term", o.Name, sp.Term, sp.PublishedBy, rules.leaseHolder)
		case sp.Term < rules.adoptedTerm:
			return fmt.Sprintf("%s is of term %d, older than the term %d adopted", o.Name, sp.Term, rules.adoptedTerm)
		}
		if first == nil {
			first = o
		} else if sp.Term != first.Spec.Term || sp.PublishedBy != first.Spec.PublishedBy {
			return fmt.Sprintf("%s is of term %d by %q, %s of term %d by %q: a set is of one term", o.Name, sp.Term, sp.PublishedBy,
				first.Name, first.Spec.Term, first.Spec.PublishedBy)
		}
	}
	return ""
}

// shardIndex is the index of the shard named name among n shards.
func shardIndex(name string, n int) (int, bool) {
	digits, ok := strings.CutPrefix(name, "table-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i < 0 || i >= n || shardName(i) != name {
		return 0, false
	}
	return i, true
}

// writtenShard is what a publisher compares of a shard in the API.
type writtenShard struct {
	shards, shard int32
	checksum      string
	term          int64
	publishedBy   string
}

// changedShards are the shards of enc that a publication by publisher in
// term writes: those whose shard of that name in current is absent, holds
// other content, or was written by another term or writer (a leader
// repairs every shard it did not write).
func changedShards(enc []encodedShard, current map[string]writtenShard, term int64, publisher string) []encodedShard {
	var out []encodedShard
	for _, e := range enc {
		cur, ok := current[shardName(e.index)]
		if !ok || cur.checksum != e.checksum || int(cur.shards) != len(enc) || int(cur.shard) != e.index ||
			cur.term != term || cur.publishedBy != publisher {
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
