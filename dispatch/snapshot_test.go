package dispatch

import (
	"context"
	"testing"
	"time"
)

// TestSnapshotIsImmutable: a snapshot keeps the table and the drains of the
// instant it was taken while the core changes, and a what-if on it
// computes on them, not on the core in force.
func TestSnapshotIsImmutable(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	s := d.Snapshot()
	before := s.Table()
	rows := len(before.Assignments)
	onBuild03 := 0
	for _, a := range before.Assignments {
		if a.Cluster == "build03" {
			onBuild03++
		}
	}
	if onBuild03 == 0 || len(s.Drains()) != 0 {
		t.Fatalf("build03 runs %d jobs, drains %+v: want jobs and no drain before the drain", onBuild03, s.Drains())
	}

	if _, err := d.Drain(ctx, DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "upgrade", By: "alice", Force: true}); err != nil {
		t.Fatal(err)
	}
	admit(t, d, "rehearse-a-new-job")

	if got := s.Table(); got != before || len(got.Assignments) != rows || len(s.Drains()) != 0 {
		t.Errorf("the snapshot changed with the core: %d rows (want %d), drains %+v (want none)", len(got.Assignments), rows, s.Drains())
	}
	jobsOf := func(w *WhatIf, cluster string) int {
		for _, l := range w.Clusters {
			if l.Name == cluster {
				return l.Jobs
			}
		}
		return -1
	}
	old, err := s.WhatIf(ctx, WhatIfRequest{})
	if err != nil {
		t.Fatal(err)
	}
	now, err := d.Snapshot().WhatIf(ctx, WhatIfRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := jobsOf(old, "build03"); n <= 0 {
		t.Errorf("a what-if on the snapshot before the drain has %d jobs on build03, want them there", n)
	}
	if n := jobsOf(now, "build03"); n != 0 {
		t.Errorf("a what-if on a snapshot after the drain has %d jobs on build03, want none", n)
	}
	if os := d.Snapshot().Drains(); len(os) != 1 || os[0].Cluster != "build03" {
		t.Errorf("a new snapshot's drains %+v, want build03's", os)
	}
}
