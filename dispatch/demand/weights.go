package demand

import (
	"fmt"
	"math"
)

// Weights weigh demand as OpenShift CI's previous dispatcher did (ci-tools
// pkg/dispatcher/prometheus.go, GetWeightedJobDemandFromPrometheus), so a
// job's weighted demand is the same number here and there:
//
//	demand = runs·Run + durationSeconds/3600·DurationHour
//	       + cpuSeconds/3600·CPUHour + byteSeconds/(3600·2^30)·MemoryGiBHour
//
// floored at Minimum. runs comes from the demand query; each of the three
// optional queries gives, by job_name over the demand window, the summed
// run time in seconds, CPU seconds and memory byte-seconds. A query that is
// empty, or whose weight is 0, is not run. A job that only an optional
// query returns counts from 0 runs.
type Weights struct {
	// DurationQuery, CPUQuery and MemoryQuery are the optional queries;
	// text/templates with {{.Window}}.
	DurationQuery, CPUQuery, MemoryQuery string
	// Run, DurationHour, CPUHour and MemoryGiBHour weigh a run, a job hour,
	// a CPU-hour and a GiB-hour of memory; all >= 0 and finite.
	Run, DurationHour, CPUHour, MemoryGiBHour float64
	// Minimum floors each job's weighted demand; 0: no floor.
	Minimum float64
}

// DefaultWeights are the previous dispatcher's defaults (its flags
// --job-run-weight 1, --job-duration-hour-weight 1, --job-cpu-hour-weight 1,
// --job-memory-gb-hour-weight 0.25, --minimum-job-demand 1).
func DefaultWeights() Weights {
	return Weights{Run: 1, DurationHour: 1, CPUHour: 1, MemoryGiBHour: 0.25, Minimum: 1}
}

// The divisors that turn the optional queries' units into hours.
const (
	secondsPerHour     = 3600
	byteSecondsPerGiBH = 3600 * 1024 * 1024 * 1024
)

// Validate checks that every weight is finite and >= 0.
func (w Weights) Validate() error {
	for _, v := range []struct {
		name  string
		value float64
	}{{"run", w.Run}, {"duration hour", w.DurationHour}, {"CPU hour", w.CPUHour}, {"memory GiB hour", w.MemoryGiBHour}, {"minimum", w.Minimum}} {
		if math.IsNaN(v.value) || math.IsInf(v.value, 0) || v.value < 0 {
			return fmt.Errorf("demand weight %s %v: want a finite number >= 0", v.name, v.value)
		}
	}
	return nil
}

// resourceQuery is one of the optional queries with its weight and unit.
type resourceQuery struct {
	name, query     string
	weight, perUnit float64
}

// resourceQueries are w's optional queries that run (a query and a weight).
func (w Weights) resourceQueries() []resourceQuery {
	var out []resourceQuery
	for _, q := range []resourceQuery{
		{"duration", w.DurationQuery, w.DurationHour, secondsPerHour},
		{"CPU", w.CPUQuery, w.CPUHour, secondsPerHour},
		{"memory", w.MemoryQuery, w.MemoryGiBHour, byteSecondsPerGiBH},
	} {
		if q.query != "" && q.weight != 0 {
			out = append(out, q)
		}
	}
	return out
}

// Weigh combines runs by job with the optional queries' values by job
// (keyed by resourceQuery name: "duration", "CPU", "memory"), as Weights
// says. It is pure, so it can be checked against numbers worked by hand.
func (w Weights) Weigh(runs map[string]float64, resources map[string]map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(runs))
	for job, n := range runs {
		out[job] = n * w.Run
	}
	for _, q := range w.resourceQueries() {
		for job, v := range resources[q.name] {
			out[job] += v / q.perUnit * q.weight
		}
	}
	for job, d := range out {
		if d < w.Minimum {
			out[job] = w.Minimum
		}
	}
	return out
}
