package admission

import (
	"context"
	"testing"

	"k8s.io/utils/ptr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/internal/dispatchtest"
)

// TestRealDispatcher wires admission to the real dispatcher.
func TestRealDispatcher(t *testing.T) {
	d := dispatchtest.New(t, nil)
	a, _ := newTestAdmission(t, d)
	ctx := context.Background()

	// Before the first dispatch there is no table: allowed unchanged.
	_, dec := a.decide(ctx, request(t))
	if dec.outcome != OutcomeNotReady {
		t.Fatalf("before dispatch: outcome %s (%s), want %s", dec.outcome, dec.reason, OutcomeNotReady)
	}
	if _, err := d.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}

	// A configured arm64 job goes to build01, the only arm64 cluster.
	resp, dec := a.decide(ctx, request(t))
	if dec.outcome != OutcomePatched || dec.newCluster != "build01" || len(resp.Patches) != 1 {
		t.Fatalf("arm64 job: %+v, patches %+v", dec, resp.Patches)
	}

	// A job the table lacks is delta-assigned from its labels and kept.
	newArm := withSpec(map[string]any{"job": newJob})
	if _, dec = a.decide(ctx, request(t, newArm)); dec.outcome != OutcomePatched || dec.newCluster != "build01" {
		t.Fatalf("new arm64 job: %+v", dec)
	}
	if as, ok := d.Lookup(newJob); !ok || as.Cluster != "build01" {
		t.Errorf("the delta-assigned job is not in the table: %+v %v", as, ok)
	}

	// A dry run answers but keeps nothing.
	dry := request(t, withSpec(map[string]any{"job": newJob + "-dry"}))
	dry.DryRun = ptr.To(true)
	if _, dec = a.decide(ctx, dry); dec.outcome != OutcomeDryRun || dec.newCluster != "build01" {
		t.Fatalf("dry run: %+v", dec)
	}
	if _, ok := d.Lookup(newJob + "-dry"); ok {
		t.Error("a dry run added the job to the table")
	}

	// A ProwJob on the manual cluster stays there.
	if _, dec = a.decide(ctx, request(t, withSpec(map[string]any{"cluster": "vsphere02"}))); dec.outcome != OutcomeManual {
		t.Errorf("manual cluster: %+v", dec)
	}

	// A ProwJob of another agent is left alone.
	if _, dec = a.decide(ctx, request(t, withSpec(map[string]any{"agent": "jenkins"}))); dec.outcome != OutcomeNotKubernetes {
		t.Errorf("jenkins agent: %+v", dec)
	}
}
