package table

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
)

// Cache is the in-memory table that admission reads. A refresh builds a new
// go-cache off to the side and swaps it in with one atomic store, so readers
// always see either the old table or the new one, never a half-built mix.
// Single rows (delta assignments, overrides) are set in place.
type Cache struct {
	current atomic.Pointer[generation]
	version atomic.Uint64 // counts the changes: Replace, Set and Delete
	mu      sync.Mutex    // serializes writers; readers never take it
	changes changeLog     // guarded by mu
}

// changeLog records the jobs set or deleted since the version base, which
// is that of the last Replace, or of the last change when the log was full.
type changeLog struct {
	base    uint64
	entries []change
}

type change struct {
	version uint64
	job     string
}

// maxChanges bounds the change log: past it, ChangedSince reports that it
// cannot tell for the versions before.
const maxChanges = 4096

func (l *changeLog) add(version uint64, job string) {
	if len(l.entries) >= maxChanges {
		l.entries, l.base = l.entries[:0], version-1
	}
	l.entries = append(l.entries, change{version: version, job: job})
}

type generation struct {
	rows        *gocache.Cache
	generatedAt time.Time
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	c := &Cache{}
	c.current.Store(&generation{rows: gocache.New(gocache.NoExpiration, 0)})
	return c
}

// Lookup returns the job's assignment. It is safe for concurrent use with
// Replace and Set and does not allocate.
func (c *Cache) Lookup(job string) (Assignment, bool) {
	v, ok := c.current.Load().rows.Get(job)
	if !ok {
		return Assignment{}, false
	}
	return *v.(*Assignment), true
}

// Replace swaps in a whole new table.
func (c *Cache) Replace(t *Table) {
	items := make(map[string]gocache.Item, len(t.Assignments))
	for i := range t.Assignments {
		a := t.Assignments[i]
		items[a.Job] = gocache.Item{Object: &a}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current.Store(&generation{rows: gocache.NewFrom(gocache.NoExpiration, 0, items), generatedAt: t.GeneratedAt})
	c.changes = changeLog{base: c.version.Add(1)}
}

// Set adds or replaces one row in the current table.
func (c *Cache) Set(a Assignment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current.Load().rows.SetDefault(a.Job, &a)
	c.changes.add(c.version.Add(1), a.Job)
}

// Delete removes one row from the current table.
func (c *Cache) Delete(job string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current.Load().rows.Delete(job)
	c.changes.add(c.version.Add(1), job)
}

// Version changes with every Replace, Set and Delete: a reader that saw the
// same version twice saw the same table.
func (c *Cache) Version() uint64 { return c.version.Load() }

// ChangedSince returns the jobs whose rows were set or deleted after the
// table's version v, sorted, each once. It reports false when it cannot
// tell: the whole table was replaced after v, or v is older than the
// changes it keeps (the last 4096).
func (c *Cache) ChangedSince(v uint64) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v < c.changes.base {
		return nil, false
	}
	seen := map[string]bool{}
	var jobs []string
	for _, ch := range c.changes.entries {
		if ch.version > v && !seen[ch.job] {
			seen[ch.job] = true
			jobs = append(jobs, ch.job)
		}
	}
	slices.Sort(jobs)
	return jobs, true
}

// Len returns the number of rows.
func (c *Cache) Len() int { return c.current.Load().rows.ItemCount() }

// Jobs returns the names of the rows for which match is true, unsorted.
func (c *Cache) Jobs(match func(job string) bool) []string {
	var out []string
	for job := range c.current.Load().rows.Items() {
		if match(job) {
			out = append(out, job)
		}
	}
	return out
}

// Snapshot returns a copy of the current table, rows sorted by job.
func (c *Cache) Snapshot() *Table {
	g := c.current.Load()
	items := g.rows.Items()
	t := &Table{GeneratedAt: g.generatedAt, Assignments: make([]Assignment, 0, len(items))}
	for _, it := range items {
		t.Assignments = append(t.Assignments, *it.Object.(*Assignment))
	}
	t.Sort()
	return t
}
