package table

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCache(t *testing.T) {
	c := NewCache()
	if _, ok := c.Lookup("a"); ok || c.Len() != 0 {
		t.Fatalf("a new cache is not empty")
	}
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	c.Replace(&Table{GeneratedAt: at, Assignments: []Assignment{
		{Job: "c", Cluster: "build03", Reason: ReasonPinned},
		{Job: "a", Cluster: "build01", Reason: ReasonBalanced},
	}})
	c.Set(Assignment{Job: "b", Cluster: "build02", Reason: ReasonBalanced}) // a delta row
	c.Set(Assignment{Job: "a", Cluster: "build02", Reason: ReasonOverride}) // a row replaced in place

	for _, tc := range []struct {
		job     string
		cluster string
		ok      bool
	}{{"a", "build02", true}, {"b", "build02", true}, {"c", "build03", true}, {"d", "", false}} {
		got, ok := c.Lookup(tc.job)
		if ok != tc.ok || got.Cluster != tc.cluster {
			t.Errorf("Lookup(%q) = %+v, %v; want cluster %q, %v", tc.job, got, ok, tc.cluster, tc.ok)
		}
	}
	snap := c.Snapshot()
	want := &Table{GeneratedAt: at, Assignments: []Assignment{
		{Job: "a", Cluster: "build02", Reason: ReasonOverride},
		{Job: "b", Cluster: "build02", Reason: ReasonBalanced},
		{Job: "c", Cluster: "build03", Reason: ReasonPinned},
	}}
	if diff := cmp.Diff(want, snap); diff != "" {
		t.Errorf("Snapshot (-want +got):\n%s", diff)
	}
	// The snapshot is a copy: changing it leaves the cache alone, and the
	// assignment Lookup returned is a copy too.
	snap.Assignments[0].Cluster = "mutated"
	if got, _ := c.Lookup("a"); got.Cluster != "build02" {
		t.Errorf("changing a snapshot changed the cache: %+v", got)
	}
	// Replace drops the rows the new table lacks.
	c.Replace(&Table{Assignments: []Assignment{{Job: "z", Cluster: "build01"}}})
	if _, ok := c.Lookup("a"); ok || c.Len() != 1 {
		t.Errorf("after Replace: a still present or Len %d", c.Len())
	}
}

// TestCacheReadersSeeWholeTables has readers look up every job while a
// writer replaces the table over and over; in each generation every row
// names that generation's cluster, so a reader that saw two clusters in one
// pass over the rows would have seen a half-built table. Run with -race.
func TestCacheReadersSeeWholeTables(t *testing.T) {
	const rows, generations = 200, 50
	tableOf := func(gen int) *Table {
		tbl := &Table{}
		for i := range rows {
			tbl.Assignments = append(tbl.Assignments, Assignment{Job: fmt.Sprintf("job-%03d", i), Cluster: fmt.Sprintf("gen-%02d", gen)})
		}
		return tbl
	}
	c := NewCache()
	c.Replace(tableOf(0))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// One pass reads a snapshot, as a reader of the whole table would.
				snap := c.Snapshot()
				if len(snap.Assignments) != rows {
					errs <- fmt.Sprintf("snapshot of %d rows, want %d", len(snap.Assignments), rows)
					return
				}
				for _, a := range snap.Assignments {
					if a.Cluster != snap.Assignments[0].Cluster {
						errs <- fmt.Sprintf("one snapshot mixes %s and %s", snap.Assignments[0].Cluster, a.Cluster)
						return
					}
				}
				if _, ok := c.Lookup("job-123"); !ok {
					errs <- "job-123 missing during a refresh"
					return
				}
			}
		}()
	}
	for gen := 1; gen <= generations; gen++ {
		c.Replace(tableOf(gen))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got, _ := c.Lookup("job-000"); got.Cluster != fmt.Sprintf("gen-%02d", generations) {
		t.Errorf("last generation not in force: %+v", got)
	}
}

func TestOverrideActive(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		expires time.Time
		want    bool
	}{
		{"never expires", time.Time{}, true},
		{"expires later", now.Add(time.Minute), true},
		{"expires now", now, false},
		{"expired", now.Add(-time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Override{Expires: tc.expires}).Active(now); got != tc.want {
				t.Errorf("Active = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTableSortAndByJob(t *testing.T) {
	tbl := &Table{Assignments: []Assignment{{Job: "b", Cluster: "x"}, {Job: "c"}, {Job: "a", Cluster: "y"}}}
	tbl.Sort()
	if got := []string{tbl.Assignments[0].Job, tbl.Assignments[1].Job, tbl.Assignments[2].Job}; !cmp.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("sorted order %v", got)
	}
	by := tbl.ByJob()
	if len(by) != 3 || by["a"].Cluster != "y" || by["b"].Cluster != "x" {
		t.Errorf("ByJob = %+v", by)
	}
}

// TestCacheChangedSince: the rows set or deleted after a version, and no
// answer across a Replace or past the kept changes.
func TestCacheChangedSince(t *testing.T) {
	c := NewCache()
	c.Replace(&Table{Assignments: []Assignment{{Job: "a", Cluster: "build01"}, {Job: "b", Cluster: "build01"}}})
	v0 := c.Version()
	if jobs, ok := c.ChangedSince(v0); !ok || len(jobs) != 0 {
		t.Errorf("ChangedSince(the current version) = %v, %v; want none, true", jobs, ok)
	}
	c.Set(Assignment{Job: "c", Cluster: "build02"})
	v1 := c.Version()
	c.Set(Assignment{Job: "a", Cluster: "build02"})
	c.Delete("b")
	c.Set(Assignment{Job: "c", Cluster: "build03"})
	for _, tc := range []struct {
		since uint64
		want  []string
		ok    bool
	}{
		{v0, []string{"a", "b", "c"}, true},
		{v1, []string{"a", "b", "c"}, true},
		{c.Version(), nil, true},
		{v0 - 1, nil, false}, // before the Replace
	} {
		jobs, ok := c.ChangedSince(tc.since)
		if ok != tc.ok || !cmp.Equal(jobs, tc.want) {
			t.Errorf("ChangedSince(%d) = %v, %v; want %v, %v", tc.since, jobs, ok, tc.want, tc.ok)
		}
	}
	c.Replace(&Table{})
	if _, ok := c.ChangedSince(v1); ok {
		t.Error("ChangedSince a version before a Replace answered")
	}
	v2 := c.Version()
	for i := range maxChanges + 1 {
		c.Set(Assignment{Job: fmt.Sprintf("j%05d", i), Cluster: "build01"})
	}
	if _, ok := c.ChangedSince(v2); ok {
		t.Errorf("ChangedSince answered past the %d changes it keeps", maxChanges)
	}
	if jobs, ok := c.ChangedSince(c.Version() - 1); !ok || !cmp.Equal(jobs, []string{fmt.Sprintf("j%05d", maxChanges)}) {
		t.Errorf("ChangedSince(the version before the last) = %v, %v; want the last job", jobs, ok)
	}
}
