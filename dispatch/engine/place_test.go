package engine_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// background is a fixture with some balanced load already dispatched.
func background(t *testing.T) engine.Input {
	in := fixture(t)
	for i := range 40 {
		j := job(fmt.Sprintf("bg%02d", i))
		in.Jobs = append(in.Jobs, j)
		in.Demand[j.Name] = float64(1 + i%4)
	}
	return in
}

func TestPlaceFollowsEveryRule(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := background(t)
			if tc.previous != nil {
				in.Previous = &table.Table{Assignments: []table.Assignment{*tc.previous}}
			}
			if tc.override != nil {
				in.Overrides[tc.job.Name] = *tc.override
			}
			e, err := engine.New(in)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.Dispatch(); err != nil {
				t.Fatal(err)
			}
			before := loadsByName(e.Loads())
			a, err := e.Place(tc.job)
			if tc.skipped {
				if !errors.Is(err, engine.ErrNotDispatched) {
					t.Fatalf("Place: %v, want ErrNotDispatched", err)
				}
				return
			}
			if tc.stranded {
				if !errors.Is(err, engine.ErrUnplaceable) {
					t.Fatalf("Place: %+v, %v, want ErrUnplaceable", a, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Place: %v", err)
			}
			want, reason, detail := tc.want, tc.reason, tc.detail
			if tc.placeWant != nil {
				want, reason, detail = tc.placeWant, tc.placeReason, ""
			}
			if !contains(want, a.Cluster) || a.Reason != reason || !strings.Contains(a.Detail, detail) {
				t.Errorf("got %s (%s) %q, want one of %v (%s) with %q", a.Cluster, a.Reason, a.Detail, want, reason, detail)
			}
			after := loadsByName(e.Loads())
			if got := after[a.Cluster].Jobs - before[a.Cluster].Jobs; got != 1 {
				t.Errorf("%s jobs +%d, want +1", a.Cluster, got)
			}
			if got := after[a.Cluster].Demand - before[a.Cluster].Demand; got != a.Demand {
				t.Errorf("%s demand +%v, want +%v", a.Cluster, got, a.Demand)
			}
		})
	}
}

func TestPlaceGoesToTheLeastLoadedAndUpdatesLoads(t *testing.T) {
	e, _, _ := dispatch(t, background(t))
	seen := map[string]bool{}
	for i := range 8 {
		before := loadsByName(e.Loads())
		a, err := e.Place(job(fmt.Sprintf("new%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		seen[a.Cluster] = true
		score := func(c string) float64 { return (before[c].BalancedDemand + a.Demand) / float64(before[c].Capacity) }
		for _, c := range usableFixture {
			if score(c) < score(a.Cluster) {
				t.Errorf("new%d on %s (%v), but %s is less loaded (%v)", i, a.Cluster, score(a.Cluster), c, score(c))
			}
		}
	}
	if len(seen) < 2 {
		t.Errorf("8 new jobs all went to %v: loads are not updated", seen)
	}
}

func TestPlaceJoinsItsFile(t *testing.T) {
	in := background(t)
	in.Jobs = append(in.Jobs, fileJob("sibling", "openshift/shared-presubmits.yaml"))
	in.Demand["sibling"] = 1000 // its cluster becomes the most loaded
	e, tb, _ := dispatch(t, in)
	want := tb.ByJob()["sibling"].Cluster
	a, err := e.Place(fileJob("newcomer", "openshift/shared-presubmits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Cluster != want {
		t.Errorf("newcomer on %s, want its file's cluster %s", a.Cluster, want)
	}
}

// TestPlaceBeforeDispatchUsesPreviousLoads: Place counts every row of the
// previous table on a cluster, pinned ones too, as the targets do.
func TestPlaceBeforeDispatchUsesPreviousLoads(t *testing.T) {
	in := fixture(t)
	in.Previous = &table.Table{Assignments: []table.Assignment{
		{Job: "heavy1", Cluster: "build01", Reason: table.ReasonBalanced, Demand: 100},
		{Job: "heavy2", Cluster: "build02", Reason: table.ReasonBalanced, Demand: 60},
		{Job: "heavy5", Cluster: "build05", Reason: table.ReasonBalanced, Demand: 100},
		{Job: "pinned", Cluster: "build03", Reason: table.ReasonPinned, Demand: 1000},
	}}
	e, err := engine.New(in)
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.Place(job("new"))
	if err != nil || a.Cluster != "build02" {
		t.Errorf("Place = %+v, %v; want build02, the least loaded once build03's pinned load counts", a, err)
	}
}

func TestPlaceKeepsAJobWhereItIs(t *testing.T) {
	e, tb, _ := dispatch(t, background(t))
	a0 := tb.ByJob()["bg07"]
	a, err := e.Place(job("bg07"))
	if err != nil || a.Cluster != a0.Cluster || !a.AssignedAt.Equal(a0.AssignedAt) {
		t.Errorf("Place(bg07) = %+v, %v; want it kept on %s", a, err, a0.Cluster)
	}
	total := 0
	for _, l := range e.Loads() {
		total += l.Jobs
	}
	if total != 40 {
		t.Errorf("%d jobs in the loads after placing a known job again, want 40", total)
	}
}

func TestBest(t *testing.T) {
	e, _, _ := dispatch(t, background(t))
	arm := job("arm")
	arm.Requirements.Capabilities = []string{"arm64"}
	gpu := job("gpu")
	gpu.Requirements.Capabilities = []string{"gpu"}
	for _, tc := range []struct {
		name    string
		job     jobs.Job
		exclude []string
		want    []string
		err     error
	}{
		{name: "any usable", job: job("x"), want: usableFixture},
		{name: "capability", job: arm, want: []string{"build01", "build05"}},
		{name: "capability, excluding one", job: arm, exclude: []string{"build05"}, want: []string{"build01"}},
		{name: "capability, excluding both", job: arm, exclude: []string{"build05", "build01"}, err: engine.ErrNoCluster},
		{name: "capability only a blocked cluster has", job: gpu, err: engine.ErrNoCluster},
		{name: "excluding all", job: job("x"), exclude: usableFixture, err: engine.ErrNoCluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Best(tc.job, tc.exclude...)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.job.Name) {
					t.Errorf("Best = %q, %v; want %v naming the job", got, err, tc.err)
				}
				return
			}
			if err != nil || !contains(tc.want, got) {
				t.Errorf("Best = %q, %v; want one of %v", got, err, tc.want)
			}
		})
	}
	loads := loadsByName(e.Loads())
	got, _ := e.Best(job("x"))
	for _, c := range usableFixture {
		if loads[c].BalancedDemand/float64(loads[c].Capacity) < loads[got].BalancedDemand/float64(loads[got].Capacity) {
			t.Errorf("Best chose %s, but %s is less loaded", got, c)
		}
	}
}

func TestCanRun(t *testing.T) {
	e, err := engine.New(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	arm := job("arm")
	arm.Requirements.Capabilities = []string{"arm64", "rce"}
	for _, tc := range []struct {
		job     jobs.Job
		cluster string
		err     error
	}{
		{job("x"), "build02", nil},
		{job("x"), "vsphere02", nil},
		{arm, "build05", nil},
		{job("x"), "build99", engine.ErrUnknownCluster},
		{job("x"), "build04", engine.ErrBlockedCluster},
		{arm, "build01", engine.ErrMissingCapability},
		{arm, "vsphere02", engine.ErrMissingCapability},
	} {
		err := e.CanRun(tc.job, tc.cluster)
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("CanRun(%s, %s) = %v, want %v", tc.job.Name, tc.cluster, err, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), tc.cluster) {
			t.Errorf("CanRun error %q does not name the cluster", err)
		}
	}
	if err := e.CanRun(arm, "build01"); err == nil || !strings.Contains(err.Error(), "rce") || strings.Contains(err.Error(), "arm64") {
		t.Errorf("CanRun(arm, build01) = %v, want it to name the missing rce only", err)
	}
}

func loadsByName(loads []engine.ClusterLoad) map[string]engine.ClusterLoad {
	m := map[string]engine.ClusterLoad{}
	for _, l := range loads {
		m[l.Name] = l
	}
	return m
}

func TestPreviewPlacesWithoutRecording(t *testing.T) {
	e, _, _ := dispatch(t, background(t))
	before := mustJSON(t, e.Loads())
	j := job("previewed")
	j.Requirements.Capabilities = []string{"arm64"}
	a, err := e.Preview(j)
	if err != nil || a.Reason != table.ReasonCapability || (a.Cluster != "build01" && a.Cluster != "build05") {
		t.Fatalf("Preview: %+v, %v; want capability on build01 or build05", a, err)
	}
	if mustJSON(t, e.Loads()) != before {
		t.Error("Preview changed the loads")
	}
	if placed, err := e.Place(j); err != nil || placed != a {
		t.Errorf("Place after Preview: %+v, %v; want what Preview said, %+v", placed, err, a)
	}
}

func TestPlaceProvisionalWeighsItsAdmissions(t *testing.T) {
	in := background(t)
	in.Options.DefaultDemand = 500
	e, _, _ := dispatch(t, in)
	a, err := e.PlaceProvisional(job("made-up"), 3)
	if err != nil || a.Demand != 3 {
		t.Errorf("PlaceProvisional: %+v, %v; want demand 3, not the default 500", a, err)
	}
	if b, _ := e.Place(job("configured-but-new")); b.Demand != 500 {
		t.Errorf("a job without demand data got %v, want the default 500", b.Demand)
	}
}
