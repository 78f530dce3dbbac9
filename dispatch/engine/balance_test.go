package engine_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine/enginetest"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// twoClusters is an input of n one-job files with demand 1 on clusters big (capacity 100) and small (capacity 50).
func twoClusters(t *testing.T, n int) engine.Input {
	in := fixture(t)
	in.Config = &config.DispatcherConfig{Default: "big"}
	in.Clusters = &config.Clusters{Providers: map[string][]config.Cluster{
		"aws": {{Name: "big", Provider: "aws", Capacity: 100}, {Name: "small", Provider: "aws", Capacity: 50}},
	}}
	for i := range n {
		j := job(fmt.Sprintf("job%04d", i))
		in.Jobs = append(in.Jobs, j)
		in.Demand[j.Name] = 1
	}
	return in
}

func TestCapacityWeighting(t *testing.T) {
	_, _, rep := dispatch(t, twoClusters(t, 300))
	loads := map[string]engine.ClusterLoad{}
	for _, c := range rep.Clusters {
		loads[c.Name] = c
	}
	big, small := loads["big"], loads["small"]
	if got := small.Demand / big.Demand; math.Abs(got-0.5) > 0.02 {
		t.Errorf("small/big demand = %v (%v/%v), want about 0.5", got, small.Demand, big.Demand)
	}
	if math.Abs(big.Target-200) > 1e-9 || math.Abs(small.Target-100) > 1e-9 {
		t.Errorf("targets big %v small %v, want 200 and 100", big.Target, small.Target)
	}
	if rep.Imbalance > 1.05 {
		t.Errorf("imbalance %v", rep.Imbalance)
	}
}

func TestBlockedNeverChosenByBalancing(t *testing.T) {
	in := enginetest.Workload(5000, 500, 12, 6, 7)
	_, tb, rep := dispatch(t, in)
	blocked := map[string]bool{}
	for _, c := range rep.Clusters {
		if c.Blocked {
			blocked[c.Name] = true
		}
	}
	if len(blocked) == 0 {
		t.Fatal("the workload has no blocked cluster")
	}
	for _, a := range tb.Assignments {
		if blocked[a.Cluster] && a.Reason != table.ReasonPinned && a.Reason != table.ReasonOverride {
			t.Errorf("%s on blocked %s by %s", a.Job, a.Cluster, a.Reason)
		}
	}
}

func TestJobsOfAFileStayTogether(t *testing.T) {
	in := fixture(t)
	for i := range 40 {
		for k := range 5 {
			j := job(fmt.Sprintf("f%02d-job%d", i, k))
			j.File = fmt.Sprintf("openshift/f%02d-presubmits.yaml", i)
			if k == 4 {
				j.Requirements.Capabilities = []string{"arm64"} // a second unit of the same file
			}
			in.Jobs = append(in.Jobs, j)
			in.Demand[j.Name] = float64(1 + (i*7+k)%5)
		}
	}
	_, tb, _ := dispatch(t, in)
	clusterOf := map[string]string{} // file + reason -> cluster
	for _, a := range tb.Assignments {
		key := a.File + "|" + string(a.Reason)
		if c, ok := clusterOf[key]; ok && c != a.Cluster {
			t.Errorf("%s on %s, another job of its unit on %s", a.Job, a.Cluster, c)
		}
		clusterOf[key] = a.Cluster
	}
}

func TestConstrainedJobsCountTowardLoad(t *testing.T) {
	in := twoClusters(t, 100)
	in.Clusters.Providers["aws"][0].Capabilities = []string{"arm64"}
	for i := range 100 { // as much demand again, that only big can take
		j := job(fmt.Sprintf("arm%04d", i))
		j.Requirements.Capabilities = []string{"arm64"}
		in.Jobs = append(in.Jobs, j)
		in.Demand[j.Name] = 1
	}
	_, _, rep := dispatch(t, in)
	for _, c := range rep.Clusters {
		switch c.Name {
		case "big": // its share is 2/3 of 200: the 100 arm64 jobs and about 33 others
			if c.BalancedDemand < 130 || c.BalancedDemand > 136 {
				t.Errorf("big balanced demand %v, want about 133", c.BalancedDemand)
			}
		case "small":
			if c.BalancedDemand < 64 || c.BalancedDemand > 70 {
				t.Errorf("small balanced demand %v, want about 67", c.BalancedDemand)
			}
		}
	}
}

// TestFixedJobsCountTowardTargets: 50 pins on small, 30 balanced jobs. All 80
// count: small's target is 80*50/150, which its pins alone exceed, so
// every balanced job goes to big.
func TestFixedJobsCountTowardTargets(t *testing.T) {
	in := twoClusters(t, 30)
	for i := range 50 {
		j := job(fmt.Sprintf("pinned%02d", i))
		j.Requirements.Pin = "small"
		in.Jobs = append(in.Jobs, j)
		in.Demand[j.Name] = 1
	}
	_, _, rep := dispatch(t, in)
	for _, c := range rep.Clusters {
		switch c.Name {
		case "small":
			if c.ForcedJobs != 50 || c.BalancedJobs != 0 || math.Abs(c.Target-80.0/3) > 1e-9 || math.Abs(c.Ratio-50/(80.0/3)) > 1e-9 {
				t.Errorf("small: %+v, want its 50 pins alone, target 80/3", c)
			}
		case "big":
			if c.BalancedJobs != 30 || math.Abs(c.Target-160.0/3) > 1e-9 {
				t.Errorf("big: %+v, want the 30 balanced jobs, target 160/3", c)
			}
		}
	}
}

func TestDefaultDemandIsMedian(t *testing.T) {
	in := fixture(t, job("a"), job("b"), job("c"), job("unknown"))
	in.Demand = map[string]float64{"a": 1, "b": 5, "c": 100, "gone": 1000}
	_, tb, _ := dispatch(t, in)
	if got := tb.ByJob()["unknown"].Demand; got != 5 {
		t.Errorf("demand of a job without data %v, want the median 5", got)
	}
	in.Options.DefaultDemand = 3
	_, tb, _ = dispatch(t, in)
	if got := tb.ByJob()["unknown"].Demand; got != 3 {
		t.Errorf("demand with Options.DefaultDemand 3: %v", got)
	}
}

func TestRebalanceIsBoundedByMaxMoveFraction(t *testing.T) {
	in := twoClusters(t, 400)
	prev := &table.Table{}
	for _, j := range in.Jobs { // everything on big: small is empty
		prev.Assignments = append(prev.Assignments, table.Assignment{Job: j.Name, Cluster: "big", Reason: table.ReasonBalanced, Demand: 1})
	}
	in.Previous = prev
	in.Options.MaxMoveFraction = 0.1
	_, _, rep := dispatch(t, in)
	if len(rep.Moves) != 40 {
		t.Errorf("%d moves, want the bound 40 (10%% of 400)", len(rep.Moves))
	}
	// Unbounded, moves stop as soon as big is within the tolerance: its target
	// is 400*2/3, so it keeps 1.05 of that, 280 jobs, and 120 move.
	in.Options.MaxMoveFraction = 1
	_, _, rep = dispatch(t, in)
	if n := len(rep.Moves); n != 120 || rep.Imbalance > 1.05 {
		t.Errorf("%d moves, imbalance %v: want 120 moves and balance", n, rep.Imbalance)
	}
}

// job demand helper for the Place tests: a job with a file of its own.
func fileJob(name, file string) jobs.Job {
	j := job(name)
	j.File = file
	return j
}

// TestRebalanceMovesOffAnOverloadedClusterBehindAStuckOne: the most
// overloaded cluster runs a job no other cluster can; balancing still moves
// jobs off the next overloaded cluster (as when a drain expires and its
// jobs should flow back), rather than stopping at the stuck one.
func TestRebalanceMovesOffAnOverloadedClusterBehindAStuckOne(t *testing.T) {
	in := fixture(t)
	in.Config = &config.DispatcherConfig{Default: "big"}
	in.Clusters = &config.Clusters{Providers: map[string][]config.Cluster{
		"aws": {
			{Name: "big", Provider: "aws", Capacity: 100},
			{Name: "small", Provider: "aws", Capacity: 100},
			{Name: "gpu", Provider: "aws", Capacity: 100, Capabilities: []string{"gpu"}},
		},
	}}
	prev := &table.Table{}
	g := job("gpu-job")
	g.Requirements.Capabilities = []string{"gpu"}
	in.Jobs = append(in.Jobs, g)
	in.Demand[g.Name] = 330
	prev.Assignments = append(prev.Assignments, table.Assignment{Job: g.Name, Cluster: "gpu", Reason: table.ReasonCapability, Demand: 330})
	for i := range 300 { // every plain job on big, as a drain of small left them
		j := job(fmt.Sprintf("job%04d", i))
		in.Jobs = append(in.Jobs, j)
		in.Demand[j.Name] = 1
		prev.Assignments = append(prev.Assignments, table.Assignment{Job: j.Name, Cluster: "big", Reason: table.ReasonBalanced, Demand: 1})
	}
	in.Previous = prev
	in.Options.MaxMoveFraction = 1
	_, _, rep := dispatch(t, in)
	loads := map[string]engine.ClusterLoad{}
	for _, c := range rep.Clusters {
		loads[c.Name] = c
	}
	if loads["big"].Ratio > engine.DefaultTolerance+0.01 || loads["small"].Jobs == 0 {
		t.Errorf("big at ratio %.2f with %d jobs, small %d jobs (%d moves): want jobs moved off big to small within the tolerance",
			loads["big"].Ratio, loads["big"].Jobs, loads["small"].Jobs, len(rep.Moves))
	}
	for _, m := range rep.Moves {
		if m.From != "big" || m.To != "small" {
			t.Errorf("move %+v: want only big -> small", m)
		}
	}
}
