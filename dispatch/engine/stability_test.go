package engine_test

import (
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine/enginetest"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func TestRerunMovesNothing(t *testing.T) {
	in := enginetest.Workload(5000, 500, 12, 6, 11)
	_, first, _ := dispatch(t, in)
	in.Previous = first
	in.Now = in.Now.Add(24 * time.Hour)
	_, second, rep := dispatch(t, in)
	if len(rep.Moves) != 0 || len(rep.MovedByReason) != 0 {
		t.Fatalf("rerun moved %d jobs: %v", len(rep.Moves), rep.MovedByReason)
	}
	second.GeneratedAt = first.GeneratedAt
	if mustJSON(t, first) != mustJSON(t, second) {
		t.Error("rerun changed the table (AssignedAt must stay when the cluster does)")
	}
}

func TestRerunKeepsUnplaceableRows(t *testing.T) {
	gpu, prevGPU := job("gpu"), job("gpu-prev")
	gpu.Requirements.Capabilities = []string{"gpu"}
	prevGPU.Requirements.Capabilities = []string{"gpu"}
	in := fixture(t, gpu, prevGPU, job("plain"))
	in.Previous = &table.Table{Assignments: []table.Assignment{{Job: "gpu-prev", Cluster: "build03", Reason: table.ReasonCapability, Demand: 1}}}
	_, first, _ := dispatch(t, in)
	in.Previous = first
	_, second, rep := dispatch(t, in)
	if mustJSON(t, first) != mustJSON(t, second) || len(rep.Unplaceable) != 2 {
		t.Errorf("rerun changed the table:\n%s\n%s\nunplaceable %q", mustJSON(t, first), mustJSON(t, second), rep.Unplaceable)
	}
}

func TestBlockingAClusterMovesOnlyItsJobs(t *testing.T) {
	in := enginetest.Workload(5000, 500, 12, 6, 12)
	_, first, rep := dispatch(t, in)
	victim := "build07"
	onVictim := 0
	for _, a := range first.Assignments {
		if a.Cluster == victim {
			onVictim++
		}
	}
	if onVictim == 0 {
		t.Fatalf("nothing on %s to move", victim)
	}
	in.Previous = first
	in.Now = in.Now.Add(time.Hour)
	in.Clusters = blockCluster(in.Clusters, victim)
	_, second, rep := dispatch(t, in)
	rows := second.ByJob()
	for _, m := range rep.Moves {
		if m.From != victim {
			t.Errorf("%s moved from %s to %s (%s), not from the blocked cluster", m.Job, m.From, m.To, m.Reason)
		}
		if rows[m.Job].AssignedAt != in.Now {
			t.Errorf("%s moved but AssignedAt %v, want %v", m.Job, rows[m.Job].AssignedAt, in.Now)
		}
	}
	stayed := 0
	for _, a := range second.Assignments {
		if a.Cluster == victim {
			if a.Reason != table.ReasonPinned && a.Reason != table.ReasonOverride {
				t.Errorf("%s still on blocked %s by %s", a.Job, victim, a.Reason)
			}
			stayed++
		}
	}
	if len(rep.Moves)+stayed != onVictim {
		t.Errorf("%d moved + %d pinned stayed, want the %d jobs that were on %s", len(rep.Moves), stayed, onVictim, victim)
	}
}

func blockCluster(cc *config.Clusters, name string) *config.Clusters {
	out := &config.Clusters{Providers: map[string][]config.Cluster{}}
	for p, list := range cc.Providers {
		list = append([]config.Cluster(nil), list...)
		for i := range list {
			if list[i].Name == name {
				list[i].Blocked = true
			}
		}
		out.Providers[p] = list
	}
	return out
}

func TestAssignedAt(t *testing.T) {
	in := fixture(t, job("stays"), job("moves"), job("new"))
	in.Previous = &table.Table{Assignments: []table.Assignment{
		{Job: "stays", Cluster: "build02", Reason: table.ReasonBalanced, Demand: 1, AssignedAt: now.Add(-48 * time.Hour)},
		{Job: "moves", Cluster: "build04", Reason: table.ReasonBalanced, Demand: 1, AssignedAt: now.Add(-48 * time.Hour)}, // blocked
		{Job: "deleted", Cluster: "build01", Reason: table.ReasonBalanced, Demand: 1},
	}}
	_, tb, rep := dispatch(t, in)
	rows := tb.ByJob()
	if got := rows["stays"]; got.Cluster != "build02" || !got.AssignedAt.Equal(now.Add(-48*time.Hour)) {
		t.Errorf("stays: %+v, want build02 assigned 48h ago", got)
	}
	if got := rows["moves"]; got.Cluster == "build04" || !got.AssignedAt.Equal(now) {
		t.Errorf("moves: %+v, want off build04, assigned now", got)
	}
	if got := rows["new"]; !got.AssignedAt.Equal(now) {
		t.Errorf("new: %+v, want assigned now", got)
	}
	if _, ok := rows["deleted"]; ok {
		t.Error("a job gone from the job config is still in the table")
	}
	if len(rep.Moves) != 1 || rep.Moves[0].Job != "moves" || rep.Moves[0].From != "build04" || rep.MovedByReason[table.ReasonBalanced] != 1 {
		t.Errorf("moves %+v by reason %v, want only \"moves\" from build04", rep.Moves, rep.MovedByReason)
	}
}

func TestBuildFarmIsThePreviousAssignment(t *testing.T) {
	a, b := job("a"), job("b")
	a.File = "openshift/origin/openshift-origin-main-presubmits.yaml"
	b.File = "openshift/installer/openshift-installer-main-presubmits.yaml"
	in := fixture(t, a, b)
	in.Config.BuildFarm = map[string]map[string]*config.BuildFarmCluster{
		"gcp": {"build02": {Filenames: []string{"openshift-origin-main-presubmits.yaml"}}},
		"aws": {"build03": {Filenames: []string{"openshift-installer-main-presubmits.yaml"}, Disabled: true}},
	}
	in.Demand = map[string]float64{"a": 1000, "b": 1}
	// Without the buildFarm, a would go to the first least-loaded cluster, build01.
	_, tb, rep := dispatch(t, in)
	if got := tb.ByJob()["a"]; got.Cluster != "build02" {
		t.Errorf("a on %s, want build02 from the buildFarm", got.Cluster)
	}
	for _, m := range rep.Moves {
		if m.Job == "b" {
			t.Errorf("b moved %+v, but its buildFarm cluster is disabled: no previous assignment", m)
		}
	}
}
