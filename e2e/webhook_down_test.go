package e2e

import (
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
)

// TestWebhookDownProwJobsStillCreated kills the dispatcher behind a
// registered webhook: with failurePolicy Ignore, ProwJobs are still created,
// with the spec.cluster Prow gave them.
func TestWebhookDownProwJobsStillCreated(t *testing.T) {
	sc := newScenario(t, "webhook-down", scenarioOptions{})
	if got := sc.admit(jobConsolePinned); got != clusterPinned {
		t.Fatalf("with the dispatcher up, %s landed on %q, want %s", jobConsolePinned, got, clusterPinned)
	}
	sc.d.Kill()
	for _, pj := range []framework.ProwJob{
		{Job: jobConsolePinned, Labels: jobLabels[jobConsolePinned]},
		{Job: jobOriginUnit},
		{Job: jobOriginUnit, Cluster: "build02"},
	} {
		created, err := sc.createProwJob(pj)
		if err != nil {
			t.Errorf("with the webhook down, creating a ProwJob of %s failed: %v (failurePolicy Ignore must let it through)", pj.Job, err)
			continue
		}
		want := pj.Cluster
		if want == "" {
			want = defaultCluster
		}
		if created.Spec.Cluster != want {
			t.Errorf("with the webhook down, the ProwJob of %s has cluster %q, want it unchanged (%q)", pj.Job, created.Spec.Cluster, want)
		}
	}
}
