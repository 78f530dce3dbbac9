package engine_test

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// forcedInput is n balanced one-job files of demand 1..10 on four usable
// clusters a (100), b (100, gpu), c (50) and d (80, gpu), one blocked
// cluster x and a manual cluster m; every 10th job needs gpu. The jobs of
// forced, appended by each case, are placed by a rule.
func forcedInput(t *testing.T, n int) engine.Input {
	in := fixture(t)
	in.Config = &config.DispatcherConfig{Default: "a", ManualClusters: []string{"m"}}
	in.Clusters = &config.Clusters{Providers: map[string][]config.Cluster{
		"aws": {
			{Name: "a", Provider: "aws", Capacity: 100},
			{Name: "b", Provider: "aws", Capacity: 100, Capabilities: []string{"gpu"}},
			{Name: "c", Provider: "aws", Capacity: 50},
			{Name: "d", Provider: "aws", Capacity: 80, Capabilities: []string{"gpu"}},
			{Name: "x", Provider: "aws", Capacity: 100, Blocked: true},
		},
	}}
	for i := range n {
		j := job(fmt.Sprintf("job%05d", i))
		if i%10 == 0 {
			j.Requirements.Capabilities = []string{"gpu"}
		}
		in.Jobs = append(in.Jobs, j)
		in.Demand[j.Name] = float64(1 + (i*37)%10)
	}
	return in
}

// addForced adds count jobs named prefix00..., of demand each, that the
// rule set up by how places; it returns their names.
func addForced(in *engine.Input, prefix string, count int, demand float64, how func(in *engine.Input, j string)) {
	for i := range count {
		j := job(fmt.Sprintf("%s%03d", prefix, i))
		in.Jobs = append(in.Jobs, j)
		in.Demand[j.Name] = demand
		how(in, j.Name)
	}
}

func pinTo(cluster string) func(*engine.Input, string) {
	return func(in *engine.Input, name string) {
		for i := range in.Jobs {
			if in.Jobs[i].Name == name {
				in.Jobs[i].Requirements.Pin = cluster
			}
		}
	}
}

func groupOn(cluster string) func(*engine.Input, string) {
	return func(in *engine.Input, name string) {
		if in.Config.Groups == nil {
			in.Config.Groups = map[string]config.Group{}
		}
		g := in.Config.Groups[cluster]
		g.Jobs = append(g.Jobs, name)
		in.Config.Groups[cluster] = g
	}
}

func overrideTo(cluster string) func(*engine.Input, string) {
	return func(in *engine.Input, name string) {
		in.Overrides[name] = table.Override{Job: name, Cluster: cluster, Reason: "test", By: "test", CreatedAt: now.Add(-time.Hour)}
	}
}

// TestTargetsCountForcedLoad: a usable cluster's target is its capacity
// share of all the demand on usable clusters, what pins, groups, overrides
// and cluster jobs place there included, and balancing fills each cluster
// up to its target around that load. Blocked and manual clusters stay
// outside the totals.
func TestTargetsCountForcedLoad(t *testing.T) {
	const within = 0.01
	cases := []struct {
		name  string
		setup func(in *engine.Input)
		// overForced is the cluster whose forced load alone exceeds its
		// target: it gets no balanced work and sits above its target.
		overForced string
	}{
		{name: "no forced load", setup: func(*engine.Input) {}},
		{name: "heavy pins on one cluster", setup: func(in *engine.Input) {
			addForced(in, "pin", 60, 40, pinTo("a")) // 2,400 of a's target of ~5,700
		}},
		{name: "heavy pins on the small cluster", setup: func(in *engine.Input) {
			addForced(in, "pin", 50, 40, pinTo("c")) // 2,000 of c's ~2,900
		}},
		{name: "a group on a gpu cluster", setup: func(in *engine.Input) {
			addForced(in, "grp", 80, 30, groupOn("d"))
		}},
		{name: "overrides on two clusters", setup: func(in *engine.Input) {
			addForced(in, "ovr", 40, 25, overrideTo("b"))
			addForced(in, "ovs", 20, 25, overrideTo("c"))
		}},
		{name: "cluster jobs", setup: func(in *engine.Input) {
			in.Options.ClusterJobs = []*regexp.Regexp{regexp.MustCompile(`^periodic-(?P<cluster>[a-z])-upgrade$`)}
			for _, c := range []string{"a", "c"} {
				j := job("periodic-" + c + "-upgrade")
				in.Jobs = append(in.Jobs, j)
				in.Demand[j.Name] = 1500
			}
		}},
		{name: "forced load on blocked and manual clusters stays outside", setup: func(in *engine.Input) {
			addForced(in, "blk", 50, 100, overrideTo("x"))
			addForced(in, "man", 50, 100, pinTo("m"))
			addForced(in, "pin", 30, 40, pinTo("a"))
		}},
		{name: "pins alone over the small cluster's target", overForced: "c", setup: func(in *engine.Input) {
			addForced(in, "pin", 120, 40, pinTo("c")) // 4,800 against c's target of ~3,700
		}},
		{name: "a group over a gpu cluster's target", overForced: "d", setup: func(in *engine.Input) {
			addForced(in, "grp", 150, 50, groupOn("d"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := forcedInput(t, 3000)
			tc.setup(&in)
			_, first, rep := dispatch(t, in)

			var usableDemand, capacity float64
			for _, c := range rep.Clusters {
				if c.Role == config.RoleBuild && !c.Blocked {
					usableDemand += c.Demand
					capacity += float64(c.Capacity)
				}
			}
			for _, c := range rep.Clusters {
				if c.Role != config.RoleBuild || c.Blocked {
					if c.Target != 0 || c.Ratio != 0 {
						t.Errorf("%s (%s, blocked %v): target %v ratio %v, want none", c.Name, c.Role, c.Blocked, c.Target, c.Ratio)
					}
					continue
				}
				want := usableDemand * float64(c.Capacity) / capacity
				if d := c.Target - want; d > 1e-6 || d < -1e-6 {
					t.Errorf("%s: target %.1f, want %.1f, its capacity share of all %.1f on usable clusters", c.Name, c.Target, want, usableDemand)
				}
				ratio := c.Demand / want // the whole load against the target, whatever the engine reports
				if d := c.Ratio - ratio; d > 1e-9 || d < -1e-9 {
					t.Errorf("%s: ratio %v, want load %v / target %v = %v", c.Name, c.Ratio, c.Demand, want, ratio)
				}
				if c.Demand != c.BalancedDemand+c.ForcedDemand || c.Jobs != c.BalancedJobs+c.ForcedJobs {
					t.Errorf("%s: demand %v (jobs %d) is not balanced %v (%d) + forced %v (%d)", c.Name, c.Demand, c.Jobs, c.BalancedDemand, c.BalancedJobs, c.ForcedDemand, c.ForcedJobs)
				}
				switch {
				case c.Name == tc.overForced:
					if c.BalancedJobs != 0 || c.ForcedDemand <= c.Target {
						t.Errorf("%s: forced %.0f against target %.0f, %d balanced jobs: want forced over target and no balanced job", c.Name, c.ForcedDemand, c.Target, c.BalancedJobs)
					}
				case tc.overForced == "":
					if ratio < 1-within || ratio > 1+within {
						t.Errorf("%s: load %.0f (forced %.0f) of target %.0f = %.4f, want within %.0f%%", c.Name, c.Demand, c.ForcedDemand, want, ratio, within*100)
					}
				default: // the others share what the over-forced cluster leaves, evenly
					if ratio > 1 {
						t.Errorf("%s: ratio %.4f over its target while %s carries more than its share", c.Name, ratio, tc.overForced)
					}
				}
			}
			if tc.overForced != "" {
				lo, hi := 2.0, 0.0
				for _, c := range rep.Clusters {
					if c.Role == config.RoleBuild && !c.Blocked && c.Name != tc.overForced {
						lo, hi = min(lo, c.Ratio), max(hi, c.Ratio)
					}
				}
				if hi > lo*(1+within) {
					t.Errorf("the other clusters' ratios range over %.4f..%.4f, want them within %.0f%% of each other", lo, hi, within*100)
				}
			}
			if tc.overForced == "" && rep.Imbalance > 1+within {
				t.Errorf("imbalance %.4f", rep.Imbalance)
			}
			t.Logf("imbalance %.4f", rep.Imbalance)

			// A rerun with the same inputs moves nothing.
			in.Previous = first
			_, second, rep2 := dispatch(t, in)
			if len(rep2.Moves) != 0 {
				t.Errorf("rerun moved %d jobs: %v", len(rep2.Moves), rep2.Moves[:min(3, len(rep2.Moves))])
			}
			second.GeneratedAt = first.GeneratedAt
			if mustJSON(t, first) != mustJSON(t, second) {
				t.Error("rerun changed the table")
			}

			// Blocking a cluster moves only the jobs that must leave it.
			in.Clusters = blockCluster(in.Clusters, "b")
			in.Now = in.Now.Add(time.Hour)
			_, _, rep3 := dispatch(t, in)
			for _, m := range rep3.Moves {
				if m.From != "b" {
					t.Errorf("blocking b moved %s from %s to %s (%s)", m.Job, m.From, m.To, m.Reason)
				}
			}
		})
	}
}

// TestForcedLoadFromAnEvenPrevious: a previous table that balanced only the
// balanced demand (pins on a left out) leaves a over its target by the
// pins; the rerun moves balanced work off it until it is within the
// tolerance, and no further.
func TestForcedLoadFromAnEvenPrevious(t *testing.T) {
	in := forcedInput(t, 3000)
	_, even, _ := dispatch(t, in) // without the pins: balanced evenly
	addForced(&in, "pin", 60, 40, pinTo("a"))
	prev := &table.Table{Assignments: even.Assignments}
	for _, j := range in.Jobs[3000:] {
		prev.Assignments = append(prev.Assignments, table.Assignment{Job: j.Name, Cluster: "a", Reason: table.ReasonPinned, Demand: 40})
	}
	in.Previous = prev
	_, _, rep := dispatch(t, in)
	if rep.Imbalance > engine.DefaultTolerance || len(rep.Moves) == 0 {
		t.Errorf("imbalance %.4f after %d moves, want within the tolerance %v", rep.Imbalance, len(rep.Moves), engine.DefaultTolerance)
	}
	for _, m := range rep.Moves {
		if m.From != "a" || !m.Reason.Balanced() {
			t.Errorf("move %+v: want only balanced jobs off a", m)
		}
	}
	t.Logf("imbalance %.4f after %d moves", rep.Imbalance, len(rep.Moves))
}
