package engine_test

import (
	"math/rand/v2"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine/enginetest"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func TestDeterministic(t *testing.T) {
	base := enginetest.Workload(5000, 500, 12, 6, 21)
	_, first, _ := dispatch(t, base)
	perturbed := base
	perturbed.Previous = enginetest.Perturb(first, []string{"build01", "build02", "build05", "build09"}, 0.2, 5)
	perturbed.Demand = enginetest.PerturbDemand(base.Demand, 0.3, 6)
	for name, in := range map[string]engine.Input{"from scratch": base, "from a previous table": perturbed} {
		t.Run(name, func(t *testing.T) {
			_, tb, rep := dispatch(t, in)
			want, wantReport := mustJSON(t, tb), mustJSON(t, rep)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range 3 {
				_, got, gotReport := dispatch(t, shuffled(in, r))
				if mustJSON(t, got) != want {
					t.Fatalf("shuffle %d: a different table", i)
				}
				if mustJSON(t, gotReport) != wantReport {
					t.Fatalf("shuffle %d: a different report", i)
				}
			}
		})
	}
}

// shuffled returns the input with its slices in another order and its maps rebuilt.
func shuffled(in engine.Input, r *rand.Rand) engine.Input {
	out := in
	out.Jobs = append([]jobs.Job(nil), in.Jobs...)
	r.Shuffle(len(out.Jobs), func(i, j int) { out.Jobs[i], out.Jobs[j] = out.Jobs[j], out.Jobs[i] })
	out.Demand = make(map[string]float64, len(in.Demand))
	for _, j := range out.Jobs {
		if d, ok := in.Demand[j.Name]; ok {
			out.Demand[j.Name] = d
		}
	}
	out.Overrides = map[string]table.Override{}
	for k, v := range in.Overrides {
		out.Overrides[k] = v
	}
	if in.Previous != nil {
		p := &table.Table{GeneratedAt: in.Previous.GeneratedAt, Assignments: append([]table.Assignment(nil), in.Previous.Assignments...)}
		r.Shuffle(len(p.Assignments), func(i, j int) { p.Assignments[i], p.Assignments[j] = p.Assignments[j], p.Assignments[i] })
		out.Previous = p
	}
	cc := &config.Clusters{Providers: map[string][]config.Cluster{}}
	for p, list := range in.Clusters.Providers {
		list = append([]config.Cluster(nil), list...)
		r.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
		cc.Providers[p] = list
	}
	out.Clusters = cc
	return out
}
