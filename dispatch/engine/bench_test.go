package engine_test

import (
	"fmt"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine/enginetest"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
)

// BenchmarkDispatch is a full run (New and Dispatch) on the 50,000-job workload from scratch.
func BenchmarkDispatch(b *testing.B) {
	in := fullWorkload()
	b.ReportAllocs()
	for b.Loop() {
		e, err := engine.New(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := e.Dispatch(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDispatchFromPrevious is a full run starting from a perturbed previous table, with changed demand.
func BenchmarkDispatchFromPrevious(b *testing.B) {
	in := fullWorkload()
	_, first, rep := dispatch(b, in)
	in.Previous = enginetest.Perturb(first, usableOf(rep), 0.1, 2)
	in.Demand = enginetest.PerturbDemand(in.Demand, 0.2, 3)
	b.ReportAllocs()
	for b.Loop() {
		e, err := engine.New(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := e.Dispatch(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlace places new jobs, one at a time, on an engine holding the 50,000-job table.
func BenchmarkPlace(b *testing.B) {
	in := fullWorkload()
	e, _, _ := dispatch(b, in)
	extra := enginetest.Workload(10000, 1000, 12, 6, 99).Jobs
	for i := range extra {
		extra[i].Name = fmt.Sprintf("new-%s", extra[i].Name)
		extra[i].Agent = jobs.Agent
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := e.Place(extra[i%len(extra)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
