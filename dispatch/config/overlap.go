package config

import (
	"context"
	"fmt"
	"regexp"
	"sort"
)

// CheckPathOverlaps reports every pair of path regexes of two different
// groups that both match a job file: that file's jobs would go to whichever
// group is tried first, so the config is ambiguous. Overlap is decided on
// the files that exist, not in the abstract. files are paths relative to the
// job config dir; d must come from LoadDispatcher or ParseDispatcher (regexes
// compiled). Regexes of one group may overlap: they name one cluster.
func (d *DispatcherConfig) CheckPathOverlaps(files []string) error {
	return d.CheckPathOverlapsContext(context.Background(), files)
}

// CheckPathOverlapsContext is CheckPathOverlaps, given up with ctx's error
// once ctx is done.
func (d *DispatcherConfig) CheckPathOverlapsContext(ctx context.Context, files []string) error {
	type pathRegex struct {
		cluster, field, pattern string
		re                      *regexp.Regexp
	}
	var regexes []pathRegex
	for _, cluster := range sortedKeys(d.Groups) {
		g := d.Groups[cluster]
		for i, re := range g.PathREs {
			if re != nil && i < len(g.Paths) {
				regexes = append(regexes, pathRegex{cluster, index(key("groups", cluster)+".paths", i), g.Paths[i], re})
			}
		}
	}
	if len(regexes) < 2 {
		return nil
	}
	type overlap struct {
		a, b    int // indexes into regexes, a < b
		files   int
		example string
	}
	found := map[[2]int]*overlap{}
	var order []*overlap
	sorted := append([]string(nil), files...)
	sort.Strings(sorted)
	res := make([]*regexp.Regexp, len(regexes))
	for k, r := range regexes {
		res[k] = r.re
	}
	pm := NewPathMatcher(res)
	var matched []int
	for n, f := range sorted {
		if n%64 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%s: checking the group path regexes for overlaps: given up after %d of %d job files: %w", dispatcherPrefix(d.File), n, len(sorted), err)
			}
		}
		matched = pm.Matches(matched[:0], f)
		for i, a := range matched {
			for _, b := range matched[i+1:] {
				if regexes[a].cluster == regexes[b].cluster {
					continue
				}
				o := found[[2]int{a, b}]
				if o == nil {
					o = &overlap{a: a, b: b, example: f}
					found[[2]int{a, b}] = o
					order = append(order, o)
				}
				o.files++
			}
		}
	}
	errs := &fieldErrors{prefix: dispatcherPrefix(d.File)}
	for _, o := range order {
		a, b := regexes[o.a], regexes[o.b]
		errs.add(b.field, "path regex %q overlaps %s %q: both match %d job file(s), e.g. %q, so its jobs could go to %q or %q",
			b.pattern, a.field, a.pattern, o.files, o.example, a.cluster, b.cluster)
	}
	return errs.err()
}
