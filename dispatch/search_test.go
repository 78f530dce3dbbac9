package dispatch

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSearchJobs: jobs containing the query in any case, those starting
// with it first, bounded, with the total.
func TestSearchJobs(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	var all []string
	for _, a := range d.cache.Snapshot().Assignments {
		all = append(all, a.Job)
	}
	for _, tc := range []struct {
		query string
		limit int
	}{{"unit", 100}, {"PULL-CI", 100}, {"ci-org", 2}, {"nothing-like-this", 10}, {"", 10}} {
		got, total := d.SearchJobs(tc.query, tc.limit)
		var want, prefixed, others []string
		q := strings.ToLower(tc.query)
		for _, j := range all {
			switch l := strings.ToLower(j); {
			case q == "":
			case strings.HasPrefix(l, q):
				prefixed = append(prefixed, j)
			case strings.Contains(l, q):
				others = append(others, j)
			}
		}
		slices.Sort(prefixed)
		slices.Sort(others)
		want = append(prefixed, others...)
		if total != len(want) || !slices.Equal(got, want[:min(len(want), tc.limit)]) {
			t.Errorf("SearchJobs(%q, %d) = %q, %d; want %q, %d", tc.query, tc.limit, got, total, want[:min(len(want), tc.limit)], len(want))
		}
	}
	if got, total := d.SearchJobs("pull", 100); total == 0 || !strings.HasPrefix(got[0], "pull") {
		t.Errorf("SearchJobs(pull) = %q, %d: want the jobs starting with pull first", got, total)
	}
}

// TestStatusListsTheLastMovesAndClustersTheirConfiguredCapacity: a
// dispatch that moves jobs lists them (bounded) in Status; a drained or
// capped cluster keeps its configured capacity beside the capacity in force.
func TestStatusListsTheLastMovesAndClustersTheirConfiguredCapacity(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	if st := d.Status(); st.LastDispatchMoves == nil || *st.LastDispatchMoves != 0 || len(st.LastMoves) != 0 {
		t.Fatalf("first dispatch: %v moves listed %v, want none", st.LastDispatchMoves, st.LastMoves)
	}
	writeFile(t, e.clusterConfig, `
aws:
- name: build01
  capabilities: [arm64]
- name: build03
  capacity: 50
  blocked: true
gcp:
- name: build02
  capabilities: [kvm]
- name: build04
  blocked: true
`)
	e.dispatch(d)
	st := d.Status()
	if st.LastDispatchMoves == nil || *st.LastDispatchMoves == 0 || len(st.LastMoves) != min(*st.LastDispatchMoves, maxStatusMoves) {
		t.Fatalf("blocking build03: %v moves, %d listed", st.LastDispatchMoves, len(st.LastMoves))
	}
	for _, m := range st.LastMoves {
		if m.From != "build03" || m.To == "build03" || m.Job == "" {
			t.Errorf("move %+v, want one off build03", m)
		}
	}
	if _, err := d.Drain(context.Background(), DrainRequest{Cluster: "build02", TTL: time.Hour, Reason: "r", Force: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Clusters() {
		switch c.Name {
		case "build02":
			if c.Capacity != 0 || c.ConfiguredCapacity == 0 {
				t.Errorf("drained build02: capacity %d, configured %d; want 0 and its config's", c.Capacity, c.ConfiguredCapacity)
			}
		case "build03":
			if c.ConfiguredCapacity != 50 {
				t.Errorf("build03: configured capacity %d, want 50", c.ConfiguredCapacity)
			}
		}
	}
}
