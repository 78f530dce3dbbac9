package table

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sizedTable returns a table of n rows, job0000000 to job(n-1), on cluster.
func sizedTable(n int, cluster string) *Table {
	t := &Table{GeneratedAt: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), Assignments: make([]Assignment, n)}
	for i := range t.Assignments {
		t.Assignments[i] = Assignment{Job: fmt.Sprintf("job%07d", i), Cluster: cluster, Reason: ReasonBalanced, Demand: 1}
	}
	return t
}

// BenchmarkLookup reads one row of a 50,000-row table, as admission does.
func BenchmarkLookup(b *testing.B) {
	c := NewCache()
	c.Replace(sizedTable(50000, "build01"))
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("job%07d", i*48)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := c.Lookup(names[i&1023]); !ok {
			b.Fatal("row missing")
		}
		i++
	}
}

// BenchmarkLookupParallel is BenchmarkLookup from every core at once.
func BenchmarkLookupParallel(b *testing.B) {
	c := NewCache()
	c.Replace(sizedTable(50000, "build01"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Lookup("job0012345"); !ok {
				b.Fatal("row missing")
			}
			i++
		}
	})
}

// TestLookupDuringReplace reads rows while whole tables are swapped in and
// single rows set: every read sees a complete row of one table or the other.
// Run with -race.
func TestLookupDuringReplace(t *testing.T) {
	const n = 2000
	tables := []*Table{sizedTable(n, "build01"), sizedTable(n, "build02")}
	c := NewCache()
	c.Replace(tables[0])
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; !stop.Load(); i += 7 {
				job := fmt.Sprintf("job%07d", i%n)
				a, ok := c.Lookup(job)
				if !ok {
					t.Errorf("%s missing during Replace", job)
					return
				}
				if a.Job != job || (a.Cluster != "build01" && a.Cluster != "build02" && a.Cluster != "build03") || a.Reason != ReasonBalanced {
					t.Errorf("torn row %+v", a)
					return
				}
				reads.Add(1)
			}
		}()
	}
	for i := range 50 {
		c.Replace(tables[i%2])
		c.Set(Assignment{Job: "job0000001", Cluster: "build03", Reason: ReasonBalanced})
	}
	for reads.Load() < 1000 { // let the readers overlap the writes at least this much
		c.Replace(tables[0])
	}
	stop.Store(true)
	wg.Wait()
	c.Replace(tables[0])
	if c.Len() != n {
		t.Errorf("Len %d, want %d", c.Len(), n)
	}
	if a, _ := c.Lookup("job0000005"); a.Cluster != "build01" {
		t.Errorf("after the last Replace: %+v, want build01", a)
	}
}
