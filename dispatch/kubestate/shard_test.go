package kubestate

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// shardObjects encodes a table and provisional jobs as the TableShards a
// publication writes.
func shardObjects(t testing.TB, tab *table.Table, prov []state.Provisional, n int, publication int64) []*v1alpha1.TableShard {
	t.Helper()
	var out []*v1alpha1.TableShard
	for i, c := range cutShards(tab, prov, n) {
		e, err := encodeShard(i, c)
		if err != nil {
			t.Fatal(err)
		}
		data, err := e.compress()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &v1alpha1.TableShard{
			ObjectMeta: metav1.ObjectMeta{Name: shardName(i)},
			Spec: v1alpha1.TableShardSpec{Shard: int32(i), Shards: int32(n), Publication: publication,
				GeneratedAt: apiTime(tab.GeneratedAt), Rows: int32(e.rows), Checksum: e.checksum, Data: data},
		})
	}
	return out
}

func decodeObject(o *v1alpha1.TableShard) (shardContent, error) { return decodeShard(&o.Spec) }

func smallTable() *table.Table {
	at := time.Date(2026, 11, 21, 8, 30, 0, 123, time.UTC)
	tab := &table.Table{GeneratedAt: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)}
	for i := range 200 {
		tab.Assignments = append(tab.Assignments, table.Assignment{
			Job: realisticName(i), Cluster: fmt.Sprintf("build%02d", 1+i%5), Reason: table.ReasonBalanced,
			Detail: "balanced among 5 usable clusters", File: fmt.Sprintf("openshift/repo%d/x-presubmits.yaml", i%17),
			Demand: float64(i) / 7, AssignedAt: at,
		})
	}
	tab.Sort()
	return tab
}

func TestShardRoundTrip(t *testing.T) {
	cases := []struct {
		name   string
		table  *table.Table
		prov   []state.Provisional
		shards int
	}{
		{name: "small table, 16 shards", table: smallTable(), prov: someProvisional(7), shards: 16},
		{name: "one shard", table: smallTable(), shards: 1},
		{name: "more shards than rows", table: &table.Table{GeneratedAt: time.Unix(1e9, 0).UTC(), Assignments: smallTable().Assignments[:3]}, shards: 16},
		{name: "empty table", table: &table.Table{GeneratedAt: time.Unix(1e9, 0).UTC()}, prov: someProvisional(2), shards: 4},
		{name: "50,000 rows", table: bigTable(t), prov: someProvisional(300), shards: 16},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs := shardObjects(t, c.table, c.prov, c.shards, 3)
			rows := 0
			for _, o := range objs {
				rows += int(o.Spec.Rows)
			}
			if rows != len(c.table.Assignments) {
				t.Errorf("shards hold %d rows, the table %d", rows, len(c.table.Assignments))
			}
			set := assembleShards(objs, shardRules{shards: c.shards}, decodeObject)
			if len(set.skipped) > 0 || set.publication != 3 {
				t.Fatalf("skipped %v, publication %d", set.skipped, set.publication)
			}
			want := &state.State{Table: c.table, Provisional: c.prov}
			if diff := cmp.Diff(want, set.state, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShardDeterminism(t *testing.T) {
	tab, prov := smallTable(), someProvisional(20)
	first := shardObjects(t, tab, prov, 16, 1)

	// The same content in another order gives the same bytes.
	shuffled := copyTable(tab)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(shuffled.Assignments), func(i, j int) {
		shuffled.Assignments[i], shuffled.Assignments[j] = shuffled.Assignments[j], shuffled.Assignments[i]
	})
	provShuffled := slices.Clone(prov)
	slices.Reverse(provShuffled)
	second := shardObjects(t, shuffled, provShuffled, 16, 1)
	for i := range first {
		if first[i].Spec.Checksum != second[i].Spec.Checksum || !bytes.Equal(first[i].Spec.Data, second[i].Spec.Data) {
			t.Errorf("shard %d differs between two encodings of one table", i)
		}
	}
}

func TestChangedShards(t *testing.T) {
	tab := smallTable()
	encode := func(tab *table.Table, n int) []encodedShard {
		var out []encodedShard
		for i, c := range cutShards(tab, nil, n) {
			e, err := encodeShard(i, c)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
		return out
	}
	written := map[string]writtenShard{}
	for _, e := range encode(tab, 16) {
		written[shardName(e.index)] = writtenShard{shards: 16, shard: int32(e.index), checksum: e.checksum, term: 3, publishedBy: "replica-a"}
	}

	moved := copyTable(tab)
	moved.Assignments[42].Cluster = "build99"
	moved.GeneratedAt = moved.GeneratedAt.Add(time.Hour) // not content: no rewrite
	added := copyTable(tab)
	added.Assignments = append(added.Assignments, table.Assignment{Job: "a-new-job", Cluster: "build01"})
	cases := []struct {
		name    string
		enc     []encodedShard
		current map[string]writtenShard
		term    int64
		by      string
		want    []int
	}{
		{name: "first publication writes every shard", enc: encode(tab, 16), current: nil, want: seq(16)},
		{name: "nothing changed", enc: encode(tab, 16), current: written, want: nil},
		{name: "one row moved", enc: encode(moved, 16), current: written, want: []int{shardOf(tab.Assignments[42].Job, 16)}},
		{name: "one row added", enc: encode(added, 16), current: written, want: []int{shardOf("a-new-job", 16)}},
		{name: "another shard count rewrites all", enc: encode(tab, 8), current: written, want: seq(8)},
		{name: "a new term rewrites all", enc: encode(tab, 16), current: written, term: 4, want: seq(16)},
		{name: "another writer in the term rewrites all", enc: encode(tab, 16), current: written, by: "intruder", want: seq(16)},
		{name: "a shard another wrote is repaired", enc: encode(tab, 16), current: with(written, "table-05", func(w *writtenShard) { w.publishedBy = "kubectl" }), want: []int{5}},
		{name: "a shard claiming another index is repaired", enc: encode(tab, 16), current: with(written, "table-07", func(w *writtenShard) { w.shard = 0 }), want: []int{7}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			term, by := c.term, c.by
			if term == 0 {
				term = 3
			}
			if by == "" {
				by = "replica-a"
			}
			var got []int
			for _, e := range changedShards(c.enc, c.current, term, by) {
				got = append(got, e.index)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("shards written (-want +got):\n%s", diff)
			}
		})
	}
}

// with is a copy of m with f applied to its entry name.
func with(m map[string]writtenShard, name string, f func(*writtenShard)) map[string]writtenShard {
	out := maps.Clone(m)
	w := out[name]
	f(&w)
	out[name] = w
	return out
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestShardTooLarge(t *testing.T) {
	// Rows with details that hardly compress: 2,200 rows of 1 KiB of random hex (4 bits a byte).
	r := rand.New(rand.NewPCG(3, 4))
	tab := &table.Table{}
	for i := range 2200 {
		var b strings.Builder
		for range 1024 {
			b.WriteByte("0123456789abcdef"[r.IntN(16)])
		}
		tab.Assignments = append(tab.Assignments, table.Assignment{Job: fmt.Sprintf("job-%d", i), Cluster: "build01", Detail: b.String()})
	}
	e, err := encodeShard(0, cutShards(tab, nil, 1)[0])
	if err != nil {
		t.Fatal(err)
	}
	if data, err := e.compress(); err == nil || !strings.Contains(err.Error(), "raise the number of shards") {
		t.Fatalf("a shard of %d bytes compressed: error %v", len(data), err)
	}
	// Cut finer, every shard fits.
	for i, c := range cutShards(tab, nil, 4) {
		e, err := encodeShard(i, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.compress(); err != nil {
			t.Errorf("shard %d of 4: %v", i, err)
		}
	}
}

func TestCorruptShardSkipped(t *testing.T) {
	tab := smallTable()
	corrupt := func(mutate func(o *v1alpha1.TableShard)) []*v1alpha1.TableShard {
		objs := shardObjects(t, tab, nil, 8, 5)
		mutate(objs[3])
		return objs
	}
	other := shardObjects(t, &table.Table{Assignments: []table.Assignment{{Job: "other", Cluster: "x"}}}, nil, 1, 5)[0]
	misfiled := smallTable()
	misfiled.Assignments = nil
	for _, a := range tab.Assignments {
		if shardOf(a.Job, 8) == 2 {
			misfiled.Assignments = append(misfiled.Assignments, a)
		}
	}
	wrongShard := shardObjects(t, misfiled, nil, 1, 5)[0]
	cases := []struct {
		name string
		objs []*v1alpha1.TableShard
		want string
	}{
		{name: "checksum mismatch", objs: corrupt(func(o *v1alpha1.TableShard) { o.Spec.Data = other.Spec.Data }), want: "checksum"},
		{name: "not gzip", objs: corrupt(func(o *v1alpha1.TableShard) { o.Spec.Data = []byte("garbage") }), want: "gunzip"},
		{name: "truncated", objs: corrupt(func(o *v1alpha1.TableShard) { o.Spec.Data = o.Spec.Data[:len(o.Spec.Data)/2] }), want: "gunzip"},
		{name: "rows of another shard", objs: corrupt(func(o *v1alpha1.TableShard) {
			o.Spec.Data, o.Spec.Checksum = wrongShard.Spec.Data, wrongShard.Spec.Checksum
		}), want: "belongs in shard 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := assembleShards(c.objs, shardRules{shards: 8}, decodeObject)
			if len(set.skipped) != 1 || !strings.Contains(set.skipped[0].Error, c.want) {
				t.Fatalf("skipped %v, want one shard skipped for %q", set.skipped, c.want)
			}
			var want []table.Assignment
			for _, a := range tab.Assignments {
				if shardOf(a.Job, 8) != 3 {
					want = append(want, a)
				}
			}
			if diff := cmp.Diff(want, set.state.Table.Assignments); diff != "" {
				t.Errorf("rows of the other shards (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLatestShardSet(t *testing.T) {
	old := shardObjects(t, smallTable(), nil, 16, 4)
	newTab := &table.Table{Assignments: smallTable().Assignments[:50]}
	cur := shardObjects(t, newTab, nil, 8, 5)
	// After a change from 16 to 8 shards, table-08..15 of the old count remain.
	set := assembleShards(append(cur, old[8:]...), shardRules{shards: 8}, decodeObject)
	if len(set.skipped) > 0 || set.publication != 5 {
		t.Fatalf("skipped %v, publication %d", set.skipped, set.publication)
	}
	if diff := cmp.Diff(newTab.Assignments, set.state.Table.Assignments); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if set := assembleShards(nil, shardRules{shards: 8}, decodeObject); set.state != nil {
		t.Errorf("no shards gave a table of %d rows", len(set.state.Table.Assignments))
	}
}

func BenchmarkShardEncode(b *testing.B) {
	tab, prov := bigTable(b), someProvisional(500)
	var bytes, shards int
	b.ResetTimer()
	for range b.N {
		bytes, shards = 0, 0
		for i, c := range cutShards(tab, prov, 16) {
			e, err := encodeShard(i, c)
			if err != nil {
				b.Fatal(err)
			}
			data, err := e.compress()
			if err != nil {
				b.Fatal(err)
			}
			bytes += len(data)
			shards++
		}
	}
	b.ReportMetric(float64(bytes)/float64(shards), "bytes/shard")
	b.ReportMetric(float64(len(tab.Assignments)), "rows")
}

func BenchmarkShardDecode(b *testing.B) {
	tab, prov := bigTable(b), someProvisional(500)
	objs := shardObjects(b, tab, prov, 16, 1)
	var raw int
	for _, c := range cutShards(tab, prov, 16) {
		e, _ := encodeShard(0, c)
		raw += len(e.raw)
	}
	b.ResetTimer()
	for range b.N {
		set := assembleShards(objs, shardRules{shards: 16}, decodeObject)
		if len(set.state.Table.Assignments) != len(tab.Assignments) {
			b.Fatal("rows lost")
		}
	}
	b.ReportMetric(float64(raw)/16, "json-bytes/shard")
}

// BenchmarkShardEncodeOneRowChanged is the leader's cost of a publication
// after one row changed: the cut, the comparison with the last encoding,
// one shard encoded again and compressed.
func BenchmarkShardEncodeOneRowChanged(b *testing.B) {
	tab, prov := bigTable(b), someProvisional(500)
	var enc shardEncoder
	if _, err := enc.encode(context.Background(), tab, prov, 16, fullSpeed()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for k := range b.N {
		tab.Assignments[k%len(tab.Assignments)].Cluster = fmt.Sprintf("build%02d", k%12)
		shards, err := enc.encode(context.Background(), tab, prov, 16, fullSpeed())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := shards[shardOf(tab.Assignments[k%len(tab.Assignments)].Job, 16)].compress(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOnlyPlaced: a change made only of rows that placements carry may
// wait for the next publication; any other change may not.
func TestOnlyPlaced(t *testing.T) {
	base := &table.Table{Assignments: []table.Assignment{
		{Job: "a", Cluster: "build01", Reason: table.ReasonBalanced},
		{Job: "b", Cluster: "build02", Reason: table.ReasonBalanced},
	}}
	placements := map[string]string{"new": "build03", "a": "build07"}
	placed := func(job, cluster string) bool { return placements[job] == cluster }
	for name, tc := range map[string]struct {
		change func(f *fakeReplica)
		want   bool
	}{
		"unchanged":                  {func(*fakeReplica) {}, true},
		"a placed new job":           {func(f *fakeReplica) { f.AdoptRows([]table.Assignment{{Job: "new", Cluster: "build03"}}, nil) }, true},
		"a row moved where placed":   {func(f *fakeReplica) { f.setRow(table.Assignment{Job: "a", Cluster: "build07"}) }, true},
		"a new job placed elsewhere": {func(f *fakeReplica) { f.AdoptRows([]table.Assignment{{Job: "new", Cluster: "build01"}}, nil) }, false},
		"a new job not placed":       {func(f *fakeReplica) { f.AdoptRows([]table.Assignment{{Job: "other", Cluster: "build03"}}, nil) }, false},
		"a row moved":                {func(f *fakeReplica) { f.setRow(table.Assignment{Job: "b", Cluster: "build09"}) }, false},
		"the table replaced":         {func(f *fakeReplica) { f.AdoptTable(&state.State{Table: copyTable(base)}) }, false},
		"a placed job, then another not placed": {func(f *fakeReplica) {
			f.AdoptRows([]table.Assignment{{Job: "new", Cluster: "build03"}}, nil)
			f.setRow(table.Assignment{Job: "b", Cluster: "build09"})
		}, false},
	} {
		f := newFakeReplica(copyTable(base), nil)
		_, published := f.Published()
		tc.change(f)
		if got := onlyPlaced(f, published, placed); got != tc.want {
			t.Errorf("%s: onlyPlaced %v, want %v", name, got, tc.want)
		}
	}
}

// TestPacing: a paced run does every item; its pauses end when a change
// someone waits for comes (hurry) or when its context ends.
func TestPacing(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for name, tc := range map[string]struct {
		ctx  context.Context
		pace pacing
	}{
		"hurried":               {context.Background(), pacing{workers: 1, pause: time.Hour, hurry: func() bool { return true }}},
		"context ended":         {canceled, pacing{workers: 1, pause: time.Hour}},
		"full speed, 2 at once": {context.Background(), pacing{workers: 2}},
	} {
		done := make([]bool, 5)
		finished := make(chan struct{})
		go func() { defer close(finished); tc.pace.run(tc.ctx, len(done), func(i int) { done[i] = true }) }()
		select {
		case <-finished:
		case <-time.After(time.Minute):
			t.Fatalf("%s: still pausing after a minute", name)
		}
		if slices.Contains(done, false) {
			t.Errorf("%s: items done %v, want all", name, done)
		}
	}
}

// termed sets the term and writer of shards.
func termed(objs []*v1alpha1.TableShard, term int64, by string) []*v1alpha1.TableShard {
	for _, o := range objs {
		o.Spec.Term, o.Spec.PublishedBy = term, by
	}
	return objs
}

// TestShardSetRules: a set is adopted whole or not at all (issue 18: one
// hand-written shard with shards: 1 and a high publication replaced every
// follower's table; a deposed leader's shards were adopted over the new
// leader's).
func TestShardSetRules(t *testing.T) {
	tab := smallTable()
	set := func() []*v1alpha1.TableShard { return termed(shardObjects(t, tab, nil, 16, 7), 3, "replica-a") }
	forged := termed(shardObjects(t, &table.Table{Assignments: tab.Assignments[:2]}, nil, 1, 1<<40), 3, "replica-a")[0]
	rules := shardRules{shards: 16, leaseTerm: 3, leaseHolder: "replica-a", adoptedTerm: 2}
	cases := []struct {
		name  string
		objs  []*v1alpha1.TableShard
		rules shardRules
		want  string // empty: adopted
	}{
		{name: "one term, every shard", objs: set(), rules: rules},
		{name: "no Lease (the tests' hand-made sets): any term", objs: set(), rules: shardRules{shards: 16}},
		{name: "a hand-written shards: 1 over table-00", objs: append(set()[1:], forged), rules: rules, want: "shard 0 of 1, not 0 of 16"},
		{name: "a hand-written shards: 1 beside the set", objs: append(set(), forged), rules: rules, want: "shard 0 of 1, not 0 of 16"},
		{name: "a shard missing", objs: slices.Delete(set(), 5, 6), rules: rules, want: "table-05 is missing"},
		{name: "mixed terms", objs: append(set()[:15], termed(set()[15:], 2, "replica-b")...), rules: rules, want: "a set is of one term"},
		{name: "mixed writers", objs: append(set()[:15], termed(set()[15:], 2, "replica-a")...), rules: shardRules{shards: 16}, want: "a set is of one term"},
		{name: "older than the term adopted", objs: termed(set(), 1, "replica-b"), rules: rules, want: "older than the term 2 adopted"},
		{name: "a term the Lease never had", objs: termed(set(), 9, "replica-a"), rules: rules, want: "later than the Lease's 3"},
		{name: "the Lease's term by another", objs: termed(set(), 3, "intruder"), rules: rules, want: `but "replica-a" holds the Lease`},
		{name: "an older term, Lease moved on", objs: termed(set(), 2, "replica-b"), rules: rules},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := assembleShards(c.objs, c.rules, decodeObject)
			switch {
			case c.want == "" && (got.refused != "" || got.state == nil || len(got.state.Table.Assignments) != len(tab.Assignments)):
				t.Errorf("refused %q, state %v: want the whole table adopted", got.refused, got.state != nil)
			case c.want != "" && (!strings.Contains(got.refused, c.want) || got.state != nil):
				t.Errorf("refused %q, state %v: want refused for %q", got.refused, got.state != nil, c.want)
			}
		})
	}
}

// TestFitShard: rows past a shard's bounds are left out, the longest job
// names first, and named; a shard within them is untouched.
func TestFitShard(t *testing.T) {
	tab := smallTable()
	for i := range 10 { // 200 KB job names, as in issue 18: they hardly compress
		r := rand.New(rand.NewPCG(uint64(i), 5))
		var b strings.Builder
		for range 200 << 10 {
			b.WriteByte("0123456789abcdef"[r.IntN(16)])
		}
		tab.Assignments = append(tab.Assignments, table.Assignment{Job: "rehearse-" + b.String(), Cluster: "build01"})
	}
	tab.Sort()
	c := cutShards(tab, nil, 1)[0]
	if e, err := encodeShard(0, c); err == nil {
		if _, err := e.compress(); err == nil {
			t.Fatal("the shard fits: the test makes no overflow")
		}
	}
	e, err := fitShard(0, c)
	if err != nil {
		t.Fatal(err)
	}
	data, err := e.compress()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows in %d bytes compressed; %d rows left out", e.rows, len(data), len(e.dropped))
	if e.rows+len(e.dropped) != len(tab.Assignments) || len(e.dropped) == 0 || len(e.dropped) > 10 {
		t.Errorf("%d rows kept, %d left out, of %d", e.rows, len(e.dropped), len(tab.Assignments))
	}
	for _, job := range e.dropped {
		if len(job) < 200<<10 {
			t.Errorf("a short row was left out: %s", job)
		}
	}
	small, err := fitShard(0, cutShards(smallTable(), nil, 1)[0])
	if err != nil || len(small.dropped) > 0 || small.rows != 200 {
		t.Errorf("a small shard: %d rows, %d left out, %v", small.rows, len(small.dropped), err)
	}
	many := &table.Table{}
	for i := range maxShardRows + 5 {
		many.Assignments = append(many.Assignments, table.Assignment{Job: fmt.Sprintf("j%06d", i), Cluster: "build01"})
	}
	if e, err := fitShard(0, cutShards(many, nil, 1)[0]); err != nil || e.rows != maxShardRows || len(e.dropped) != 5 {
		t.Errorf("%d rows: %d kept, %d left out, %v", len(many.Assignments), e.rows, len(e.dropped), err)
	}
}
