package engine_test

import (
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine/enginetest"
)

// The full workload: 50,000 jobs in 5,000 files on 12 clusters with 6 capabilities.
func fullWorkload() engine.Input { return enginetest.Workload(50000, 5000, 12, 6, 1) }

func TestBalanceQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("50,000 jobs")
	}
	in := fullWorkload()
	_, first, rep := dispatch(t, in)
	checkBalance(t, "from scratch", rep, 1.05)
	if len(rep.Unplaceable) != 0 {
		t.Errorf("unplaceable: %v", rep.Unplaceable[:min(5, len(rep.Unplaceable))])
	}

	in.Previous = enginetest.Perturb(first, usableOf(rep), 0.1, 2)
	in.Demand = enginetest.PerturbDemand(in.Demand, 0.2, 3)
	in.Now = in.Now.Add(7 * 24 * time.Hour)
	_, _, rep = dispatch(t, in)
	checkBalance(t, "from a perturbed previous table", rep, 1.05)
	if limit := int(engine.DefaultMaxMoveFraction*float64(rep.Jobs)) + int(0.1*float64(rep.Jobs))*2; len(rep.Moves) > limit {
		t.Errorf("%d moves, more than the perturbation and the balance bound allow (%d)", len(rep.Moves), limit)
	}
}

func checkBalance(t *testing.T, what string, rep *engine.Report, limit float64) {
	t.Helper()
	for _, c := range rep.Clusters {
		if c.Capacity == 0 || c.Blocked || c.Manual {
			continue
		}
		if c.Ratio > limit {
			t.Errorf("%s: %s at %.4f of its target (%.0f of %.0f)", what, c.Name, c.Ratio, c.BalancedDemand, c.Target)
		}
	}
	if rep.Imbalance > limit {
		t.Errorf("%s: imbalance %.4f", what, rep.Imbalance)
	}
	t.Logf("%s: imbalance %.4f, %d moves", what, rep.Imbalance, len(rep.Moves))
}
