package e2e

import (
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// TestRescheduleMovesNextProwJob reschedules a job through the API and checks
// that the next ProwJob of that job lands on the new cluster, until the
// override is deleted.
func TestRescheduleMovesNextProwJob(t *testing.T) {
	sc := newScenario(t, "reschedule", scenarioOptions{})
	ctx := testContext(t)
	job := jobInstallerUnit
	from := sc.admit(job)
	to := "build01"
	if from == to {
		to = "build02"
	}

	// Without the token the API refuses.
	anon := *sc.d.API
	anon.Token = ""
	if _, err := anon.Reschedule(ctx, api.RescheduleRequest{Job: job, Cluster: to, Reason: "e2e"}); err == nil {
		t.Errorf("reschedule without a bearer token was accepted")
	}

	resp, err := sc.d.API.Reschedule(ctx, api.RescheduleRequest{Job: job, Cluster: to, TTL: "1h", Reason: "e2e: degraded", By: "e2e"})
	if err != nil {
		t.Fatalf("POST reschedule %s -> %s: %v", job, to, err)
	}
	if resp.From != from || resp.To != to {
		t.Errorf("reschedule answered %s -> %s, want %s -> %s", resp.From, resp.To, from, to)
	}
	if got := sc.admit(job); got != to {
		t.Errorf("after rescheduling %s to %s, its next ProwJob landed on %q", job, to, got)
	}
	a := sc.assignment(job)
	if a.Override == nil || a.Override.Cluster != to || a.Reason != "override" {
		t.Errorf("assignment after reschedule: cluster %q reason %q override %+v, want override to %s", a.Cluster, a.Reason, a.Override, to)
	}

	// A dispatch keeps the override.
	if _, err := sc.d.API.Dispatch(ctx); err != nil {
		t.Fatalf("POST dispatch: %v", err)
	}
	if got := sc.admit(job); got != to {
		t.Errorf("after a dispatch, the rescheduled %s landed on %q, want %s (overrides survive dispatches)", job, got, to)
	}

	// A cluster the job cannot run on is refused, and nothing changes.
	if _, err := sc.d.API.Reschedule(ctx, api.RescheduleRequest{Job: job, Cluster: clusterBlocked, Reason: "e2e"}); err == nil {
		t.Errorf("reschedule of %s to the blocked %s was accepted", job, clusterBlocked)
	}
	if got := sc.admit(job); got != to {
		t.Errorf("after a refused reschedule, %s landed on %q, want %s", job, got, to)
	}

	if err := sc.d.API.DeleteOverride(ctx, job); err != nil {
		t.Fatalf("DELETE reschedule/%s: %v", job, err)
	}
	if a := sc.assignment(job); a.Override != nil {
		t.Errorf("override still listed after DELETE: %+v", a.Override)
	}
}
