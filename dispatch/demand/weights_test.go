package demand

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// vector renders samples by job_name as a Prometheus query answer.
func vector(samples map[string]float64) string {
	var b strings.Builder
	for job, v := range samples {
		if b.Len() > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"metric":{"job_name":%q},"value":[1762000000,"%g"]}`, job, v)
	}
	return `{"status":"success","data":{"resultType":"vector","result":[` + b.String() + `]}}`
}

const gibHour = 3600 * 1024 * 1024 * 1024 // byte-seconds

// TestWeightedDemand checks the previous dispatcher's weighting against
// numbers worked by hand, through the queries Prometheus answers.
func TestWeightedDemand(t *testing.T) {
	const (
		durationQ = `sum by (job_name) (increase(prowjob_duration_seconds_sum[{{.Window}}]))`
		cpuQ      = `sum by (job_name) (increase(job_cpu_seconds[{{.Window}}]))`
		memoryQ   = `sum by (job_name) (sum_over_time(job_memory_bytes[{{.Window}}:1s]))`
	)
	render := func(q string) string { return strings.ReplaceAll(q, "{{.Window}}", "7d") }
	answers := map[string]promAnswer{
		demandQuery7d:     {200, vector(map[string]float64{"a": 10, "b": 0.5, "d": 3}), false},
		render(durationQ): {200, vector(map[string]float64{"a": 36000, "d": 5400}), false},
		render(cpuQ):      {200, vector(map[string]float64{"a": 72000, "c": 7200}), false},
		render(memoryQ):   {200, vector(map[string]float64{"a": 8 * gibHour, "d": 2 * gibHour}), false},
	}
	queries := Weights{DurationQuery: durationQ, CPUQuery: cpuQ, MemoryQuery: memoryQ}
	withQueries := func(w Weights) Weights {
		w.DurationQuery, w.CPUQuery, w.MemoryQuery = queries.DurationQuery, queries.CPUQuery, queries.MemoryQuery
		return w
	}
	for _, tc := range []struct {
		name        string
		weights     Weights
		want        map[string]float64
		notQueried  []string
		wantQueries int
	}{
		{
			// a: 10 runs + 10 h + 20 CPU-h + 8 GiB-h·0.25 = 42
			// b: 0.5 runs, floored at 1
			// c: no runs, 2 CPU-h = 2
			// d: 3 runs + 1.5 h + 2 GiB-h·0.25 = 5
			name:        "the previous dispatcher's defaults",
			weights:     withQueries(DefaultWeights()),
			want:        map[string]float64{"a": 42, "b": 1, "c": 2, "d": 5},
			wantQueries: 4,
		},
		{
			// a: 10·2 + 20·0.5 + 8·1 = 38; b: 1; c: 2·0.5 = 1; d: 3·2 + 2·1 = 8
			name:        "other weights; a weight of 0 skips its query",
			weights:     withQueries(Weights{Run: 2, CPUHour: 0.5, MemoryGiBHour: 1}),
			want:        map[string]float64{"a": 38, "b": 1, "c": 1, "d": 8},
			notQueried:  []string{render(durationQ)},
			wantQueries: 3,
		},
		{
			name:        "no optional query: runs floored at the minimum",
			weights:     DefaultWeights(),
			want:        map[string]float64{"a": 10, "b": 1, "d": 3},
			wantQueries: 1,
		},
		{
			name:        "zero weights: runs as they are",
			want:        map[string]float64{"a": 10, "b": 0.5, "d": 3},
			wantQueries: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &promServer{answers: answers}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			p, err := NewPrometheus(PrometheusOptions{
				URL: ts.URL, Window: 7 * 24 * time.Hour, Weights: tc.weights,
				Clock: clocktesting.NewFakePassiveClock(time.Unix(1762000000, 0)),
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Demand(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("demand %v, want %v", got, tc.want)
			}
			if len(srv.queries) != tc.wantQueries {
				t.Errorf("ran %d queries, want %d: %q", len(srv.queries), tc.wantQueries, srv.queries)
			}
			for _, q := range tc.notQueried {
				if slices.Contains(srv.queries, q) {
					t.Errorf("ran %q, whose weight is 0", q)
				}
			}
		})
	}
}

func TestWeightsValidate(t *testing.T) {
	for _, w := range []Weights{{Run: -1}, {CPUHour: math.NaN()}, {MemoryGiBHour: math.Inf(1)}, {Minimum: -0.5}} {
		if err := w.Validate(); err == nil {
			t.Errorf("%+v: no error", w)
		}
		if _, err := NewPrometheus(PrometheusOptions{URL: "http://prometheus", Weights: w}); err == nil {
			t.Errorf("NewPrometheus with %+v: no error", w)
		}
	}
	if err := DefaultWeights().Validate(); err != nil {
		t.Error(err)
	}
}
