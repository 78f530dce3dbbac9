package e2e

import (
	"math"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// demandQuery is OpenShift CI's demand query over the 14 days the suite generates.
const demandQuery = `sum(increase(prowjob_state_transitions{state="pending"}[14d])) by (job_name)`

// TestPrometheusServesHistory checks the harness: the suite's Prometheus
// answers the demand query with each job's generated demand, so the
// dispatcher's demand comes from a real query on real TSDB blocks.
func TestPrometheusServesHistory(t *testing.T) {
	s := require(t)
	c, err := promapi.NewClient(promapi.Config{Address: s.prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	res, warnings, _, err := promv1.NewAPI(c).Query(testContext(t), demandQuery, time.Now())
	if err != nil {
		t.Fatalf("query %s: %v", demandQuery, err)
	}
	if len(warnings) > 0 {
		t.Logf("warnings: %v", warnings)
	}
	got := map[string]float64{}
	for _, sample := range res.(model.Vector) {
		got[string(sample.Metric["job_name"])] = float64(sample.Value)
	}
	for job, want := range demand {
		if !within(got[job], want, 0.05) {
			t.Errorf("demand of %s: Prometheus answers %.1f, generated %.1f (history %s..%s)", job, got[job], want, s.history.Start, s.history.End)
		}
	}
	if len(got) != len(demand) {
		t.Errorf("Prometheus answered %d jobs, generated %d: %v", len(got), len(demand), got)
	}
}

// within reports whether got is within frac of want.
func within(got, want, frac float64) bool {
	return math.Abs(got-want) <= frac*want
}
