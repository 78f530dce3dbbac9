package dispatch

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDrainRefusesWhatItCannotMean(t *testing.T) {
	e := newEnv(t)
	writeFile(t, e.dispatcherConfig, "default: build01\nsshBastion: app.ci\nmanualClusters: [vsphere02]\n")
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	ok := DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "upgrade"}
	with := func(f func(*DrainRequest)) DrainRequest { r := ok; f(&r); return r }
	for name, tc := range map[string]struct {
		req  DrainRequest
		want error
		msg  string
	}{
		"service cluster":   {with(func(r *DrainRequest) { r.Cluster = "app.ci" }), ErrInvalid, "service cluster"},
		"manual cluster":    {with(func(r *DrainRequest) { r.Cluster = "vsphere02" }), ErrInvalid, "manual cluster"},
		"unknown cluster":   {with(func(r *DrainRequest) { r.Cluster = "build99" }), ErrNotFound, "not in the cluster config"},
		"no reason":         {with(func(r *DrainRequest) { r.Reason = " " }), ErrInvalid, "reason is required"},
		"no ttl":            {with(func(r *DrainRequest) { r.TTL = 0 }), ErrInvalid, "drains always expire"},
		"ttl over the max":  {with(func(r *DrainRequest) { r.TTL = 8 * 24 * time.Hour }), ErrInvalid, "over the maximum 168h0m0s"},
		"capacity over 100": {with(func(r *DrainRequest) { r.Capacity = 101 }), ErrInvalid, "capacity 101"},
	} {
		t.Run(name, func(t *testing.T) {
			before := d.cache.Snapshot()
			for _, f := range []func(context.Context, DrainRequest) (*DrainPlan, error){d.PreviewDrain, d.Drain} {
				if _, err := f(context.Background(), tc.req); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("error %v, want %v with %q", err, tc.want, tc.msg)
				}
			}
			if len(d.Drains()) != 0 || !reflect.DeepEqual(d.cache.Snapshot(), before) {
				t.Error("a refused drain changed something")
			}
		})
	}
}

// TestDrainPreviewApplyExpire: a preview says what a drain moves, where
// to and what stays, and changes nothing; the drain then moves exactly
// that, survives a restart, and its expiry lets jobs flow back.
func TestDrainPreviewApplyExpire(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	onBuild03 := func(d *Dispatcher) []string {
		var out []string
		for _, a := range d.cache.Snapshot().Assignments {
			if a.Cluster == "build03" {
				out = append(out, a.Job)
			}
		}
		return out
	}
	before := onBuild03(d)
	if len(before) < 2 {
		t.Fatalf("build03 runs %v before the drain, want at least 2 jobs", before)
	}
	req := DrainRequest{Cluster: "build03", TTL: 2 * time.Hour, Reason: "node upgrade", By: "alice"}
	plan, err := d.PreviewDrain(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Moves) != len(before) || len(plan.Staying) != 0 || len(plan.Stranded) != 0 {
		t.Errorf("preview: %d moves, staying %v, stranded %v; want the %d jobs of build03 to move", len(plan.Moves), plan.Staying, plan.Stranded, len(before))
	}
	total := 0
	for to, f := range plan.To {
		if to == "build03" || f.Jobs == 0 {
			t.Errorf("preview moves %+v to %s", f, to)
		}
		total += f.Jobs
	}
	if total != len(plan.Moves) {
		t.Errorf("flows sum to %d jobs, moves %d", total, len(plan.Moves))
	}
	if got := onBuild03(d); len(got) != len(before) {
		t.Fatalf("the preview changed the table: build03 runs %v", got)
	}

	applied, err := d.Drain(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied.Moves) != len(plan.Moves) {
		t.Errorf("drain moved %d, the preview said %d", len(applied.Moves), len(plan.Moves))
	}
	if got := onBuild03(d); len(got) != 0 {
		t.Errorf("build03 still runs %v after the drain", got)
	}
	var shown bool
	for _, c := range d.Clusters() {
		if c.Name == "build03" {
			shown = c.Override != nil && c.Override.Reason == "node upgrade" && c.Capacity == 0 && !c.Blocked
		}
	}
	if !shown {
		t.Error("Clusters does not show build03's drain")
	}
	// A new job is not balanced onto the drained cluster.
	for i := range 20 {
		if dec := admit(t, d, "pull-ci-new-"+string(rune('a'+i))); dec.Cluster == "build03" {
			t.Errorf("new job %d placed on drained build03", i)
		}
	}

	// A restart keeps the drain.
	d.flush()
	d2 := e.newDispatcher(e.options())
	if got := d2.Drains(); len(got) != 1 || got[0].Cluster != "build03" || got[0].By != "alice" {
		t.Fatalf("after a restart, cluster overrides %+v", got)
	}
	if got := onBuild03(d2); len(got) != 0 {
		t.Errorf("after a restart build03 runs %v", got)
	}

	// Expiry: jobs flow back.
	e.clock.SetTime(e.clock.Now().Add(3 * time.Hour))
	if n, err := d2.expireDrains(); n != 1 || err != nil {
		t.Fatalf("expireDrains = %d, %v", n, err)
	}
	if got := onBuild03(d2); len(got) == 0 {
		t.Error("no job came back to build03 after the drain expired")
	}
	if len(d2.Drains()) != 0 {
		t.Error("the expired drain is still listed")
	}
}

// TestDrainingTheLastCapableClusterNeedsForce: build01 is the only arm64
// cluster; draining it would strand the arm64 job, so it is refused, naming
// the job, unless forced, and then the job stays on build01.
func TestDrainingTheLastCapableClusterNeedsForce(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	const arm = "pull-ci-org-repo-main-e2e-arm64"
	req := DrainRequest{Cluster: "build01", TTL: time.Hour, Reason: "maintenance"}
	_, err := d.Drain(context.Background(), req)
	if !errors.Is(err, ErrStranded) || !strings.Contains(err.Error(), arm) {
		t.Fatalf("Drain: %v, want ErrStranded naming %s", err, arm)
	}
	if len(d.Drains()) != 0 {
		t.Fatal("the refused drain is in force")
	}
	req.Force = true
	plan, err := d.Drain(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Stranded) != 1 || plan.Stranded[0].Job != arm {
		t.Errorf("stranded %+v, want %s", plan.Stranded, arm)
	}
	if a := mustLookup(t, d, arm); a.Cluster != "build01" {
		t.Errorf("%s moved to %s, which has no arm64", arm, a.Cluster)
	}
	var staying bool
	for _, s := range plan.Staying {
		staying = staying || s.Job == arm
	}
	if !staying {
		t.Errorf("staying %+v, want %s listed", plan.Staying, arm)
	}

	if _, err := d.Undrain(context.Background(), "build01", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Undrain(context.Background(), "build01", "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Undrain: %v, want ErrNotFound", err)
	}
}

// TestCapacityCapShiftsLoad: capping a cluster's capacity lowers its target.
func TestCapacityCapShiftsLoad(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	target := func() (float64, int) {
		for _, c := range d.Clusters() {
			if c.Name == "build02" {
				return c.Target, c.Capacity
			}
		}
		return 0, 0
	}
	t0, _ := target()
	if _, err := d.Drain(context.Background(), DrainRequest{Cluster: "build02", Capacity: 10, TTL: time.Hour, Reason: "half the nodes are down"}); err != nil {
		t.Fatal(err)
	}
	t1, c1 := target()
	if c1 != 10 || t1 >= t0 {
		t.Errorf("build02 after a cap to 10: capacity %d, target %.2f (before %.2f)", c1, t1, t0)
	}
}
