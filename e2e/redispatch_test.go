package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestBlockedClusterRedispatch blocks a cluster that holds balanced jobs in
// the cluster config and checks that the dispatcher's file watch moves all
// its jobs to usable clusters, that ProwJobs of those jobs land there, and
// that a dispatch asked for afterwards moves nothing. Jobs on other
// clusters may move too, for balance (the remaining clusters' targets grew);
// those moves are logged.
func TestBlockedClusterRedispatch(t *testing.T) {
	sc := newScenario(t, "redispatch", scenarioOptions{})

	before := map[string]string{}
	for _, jobs := range balancedJobs {
		for _, job := range jobs {
			before[job] = sc.assignment(job).Cluster
		}
	}
	// Block build02 or build03, whichever holds balanced jobs (build01 holds the
	// arm64 jobs, which nothing else can run).
	victim := ""
	for _, c := range []string{"build02", "build03"} {
		for _, got := range before {
			if got == c && victim == "" {
				victim = c
			}
		}
	}
	if victim == "" {
		t.Fatalf("no balanced job on build02 or build03 to move: %v", before)
	}
	// The dispatcher watches its config files: the edit alone re-dispatches.
	sc.setClusterBlocked(victim)
	eventually(t, 30*time.Second, "the file watch to move every job off "+victim, func() error {
		for job, was := range before {
			if was == victim {
				if a := sc.assignment(job); a.Cluster == victim {
					return fmt.Errorf("%s still on %s", job, victim)
				}
			}
		}
		return nil
	})
	// A dispatch on the same inputs moves nothing: the table is stable.
	resp, err := sc.d.API.Dispatch(testContext(t))
	if err != nil {
		t.Fatalf("POST dispatch after blocking %s: %v", victim, err)
	}
	if resp.Moved != 0 {
		t.Errorf("a dispatch on unchanged inputs moved %d jobs: %+v", resp.Moved, resp)
	}
	for job, was := range before {
		a := sc.assignment(job)
		switch {
		case was == victim && (a.Cluster == victim || !usableClusters[a.Cluster]):
			t.Errorf("%s: still on %q after %s was blocked and re-dispatched, want another usable cluster", job, a.Cluster, victim)
		case was != victim && a.Cluster != was:
			t.Logf("%s: moved %s -> %s for balance (reason %s) after %s was blocked", job, was, a.Cluster, a.Reason, victim)
		}
		if got := sc.admit(job); got != a.Cluster || got == victim {
			t.Errorf("%s: a new ProwJob landed on %q, the table says %q (blocked: %s)", job, got, a.Cluster, victim)
		}
	}
}
