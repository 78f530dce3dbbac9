package e2e

import (
	"testing"
)

// TestBlockedClusterRedispatch blocks a cluster that holds balanced jobs in
// the cluster config, asks for a dispatch, and checks that all its jobs moved
// to usable clusters and that ProwJobs of those jobs land there. Jobs on other
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
	sc.setClusterBlocked(victim)
	resp, err := sc.d.API.Dispatch(testContext(t))
	if err != nil {
		t.Fatalf("POST dispatch after blocking %s: %v", victim, err)
	}
	onVictim := 0
	for _, c := range before {
		if c == victim {
			onVictim++
		}
	}
	if resp.Moved < onVictim {
		t.Errorf("dispatch after blocking %s moved %d jobs, but %d were on it: %+v", victim, resp.Moved, onVictim, resp)
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
