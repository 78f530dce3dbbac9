package dispatch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// engineRuns is the number of engine runs counted so far, by operation
// ("" sums them all).
func engineRuns(e *env, operation string) float64 {
	var v float64
	if operation == "" {
		v = e.metricValue("prowjob_dispatcher_engine_runs_total")
	} else {
		v = e.metricValue("prowjob_dispatcher_engine_runs_total", "operation", operation)
	}
	return max(v, 0)
}

// Each operation computes one engine run and commits that run: a drain, a
// cap, a refused drain (its refusal carries the run's stranded jobs), a
// reschedule and an automatic health drain.
func TestOneEngineRunPerOperation(t *testing.T) {
	ctx := context.Background()
	balancedJob := func(t *testing.T, d *Dispatcher) string {
		for _, a := range d.cache.Snapshot().Assignments {
			if a.Reason == table.ReasonBalanced {
				return a.Job
			}
		}
		t.Fatal("no balanced job in the table")
		return ""
	}
	cases := []struct {
		name      string
		operation string
		do        func(t *testing.T, e *env, d *Dispatcher)
	}{
		{"drain", "drain", func(t *testing.T, _ *env, d *Dispatcher) {
			plan, err := d.Drain(ctx, DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "upgrade", By: "alice"})
			if err != nil || len(plan.Moves) == 0 {
				t.Fatalf("drain: %v, %+v: want jobs moved", err, plan)
			}
		}},
		{"cap", "cap", func(t *testing.T, _ *env, d *Dispatcher) {
			if _, err := d.Drain(ctx, DrainRequest{Cluster: "build03", Capacity: 10, TTL: time.Hour, Reason: "half the nodes", By: "bob"}); err != nil {
				t.Fatal(err)
			}
		}},
		{"refused drain", "drain", func(t *testing.T, _ *env, d *Dispatcher) {
			plan, err := d.Drain(ctx, DrainRequest{Cluster: "build01", TTL: time.Hour, Reason: "upgrade", By: "alice"}) // the only arm64 cluster
			if !errors.Is(err, ErrStranded) {
				t.Fatalf("drain of the last arm64 cluster: %v, want ErrStranded", err)
			}
			if plan == nil || len(plan.Stranded) == 0 {
				t.Fatalf("the refusal carries no plan with the stranded jobs: %+v", plan)
			}
		}},
		{"reschedule", "reschedule", func(t *testing.T, _ *env, d *Dispatcher) {
			if _, err := d.Reschedule(ctx, RescheduleRequest{Job: balancedJob(t, d), Reason: "flaky", By: "carol"}); err != nil {
				t.Fatal(err)
			}
		}},
		{"health drain", "health-drain", func(t *testing.T, e *env, d *Dispatcher) {
			d.opts.Health.Source.(*fakeHealth).set(with(allHealthy, "build03", 0.6))
			// Two evaluations reach the dwell; the third drains.
			evaluate(t, e, d, 2)
			if len(d.Drains()) != 0 {
				t.Fatal("drained before the dwell")
			}
			before := engineRuns(e, "")
			evaluate(t, e, d, 1)
			if os := d.Drains(); len(os) != 1 || os[0].By != HealthDrainBy {
				t.Fatalf("overrides %+v, want the automatic drain", os)
			}
			if n := engineRuns(e, "") - before; n != 1 {
				t.Errorf("the evaluation that drained ran the engine %v times, want 1", n)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeHealth{}
			src.set(allHealthy)
			e, d := healthEnv(t, health.ModeAct, src)
			before, beforeOp := engineRuns(e, ""), engineRuns(e, tc.operation)
			tc.do(t, e, d)
			if n := engineRuns(e, "") - before; n != 1 {
				t.Errorf("%s ran the engine %v times, want 1", tc.name, n)
			}
			if n := engineRuns(e, tc.operation) - beforeOp; n != 1 {
				t.Errorf("engine_runs_total{operation=%q} grew by %v, want 1", tc.operation, n)
			}
		})
	}
}
