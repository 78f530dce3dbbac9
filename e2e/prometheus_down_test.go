package e2e

import (
	"io"
	"net/http"
	"testing"
)

// TestPrometheusDownKeepsAdmissions kills the dispatcher's Prometheus and
// checks that admission and dispatches go on with the last table, and that
// the dispatcher stays ready.
func TestPrometheusDownKeepsAdmissions(t *testing.T) {
	s := require(t)
	prom, err := s.startPrometheus(testContext(t), "down")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prom.Kill)
	sc := newScenario(t, "prometheus-down", scenarioOptions{prometheusURL: prom.URL})

	jobs := []string{jobOriginUnit, jobInstallerUnit, jobConsoleUnit, jobAPIVerify, jobOriginARM64}
	before := map[string]string{}
	for _, job := range jobs {
		before[job] = sc.admit(job)
	}

	prom.Kill()
	// A dispatch now cannot read demand; it must not drop the table.
	if _, err := sc.d.API.Dispatch(testContext(t)); err != nil {
		t.Logf("dispatch with Prometheus down answered: %v", err)
	}
	for _, job := range jobs {
		if got := sc.admit(job); got != before[job] {
			t.Errorf("%s: admitted to %q with Prometheus down, %q before", job, got, before[job])
		}
	}
	if got := sc.admit("pull-ci-openshift-brand-new-main-unit"); !usableClusters[got] {
		t.Errorf("a job not in the config was admitted to %q with Prometheus down, want a usable cluster", got)
	}
	resp, err := http.Get(sc.d.HealthURL + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz answered %s with Prometheus down (the last table is still good): %s", resp.Status, body)
	}
	if sc.d.Exited() {
		t.Errorf("the dispatcher exited when Prometheus went away; log:\n%s", sc.d.LogTail(3000))
	}
}
