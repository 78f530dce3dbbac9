package webhook

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/utils/ptr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// newRealDispatcher is a *dispatch.Dispatcher over the docs' example configs.
func newRealDispatcher(t *testing.T) *dispatch.Dispatcher {
	t.Helper()
	return newRealDispatcherWith(t, nil)
}

// newRealDispatcherWith is newRealDispatcher with the options edit changes.
func newRealDispatcherWith(t *testing.T, edit func(*dispatch.Options)) *dispatch.Dispatcher {
	t.Helper()
	ex := filepath.Join("..", "docs", "examples")
	opts := dispatch.Options{
		DispatcherConfigPath: filepath.Join(ex, "dispatcher.yaml"),
		ClusterConfigPath:    filepath.Join(ex, "clusters.yaml"),
		JobConfigDir:         filepath.Join(ex, "jobs"),
		StateDir:             t.TempDir(),
		Demand:               demand.File{Path: filepath.Join(ex, "demand.yaml")},
		Logger:               logr.Discard(),
	}
	if edit != nil {
		edit(&opts)
	}
	d, err := dispatch.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRealDispatcher wires admission and the API to the real dispatcher.
func TestRealDispatcher(t *testing.T) {
	d := newRealDispatcher(t)
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

	// The API over the same dispatcher.
	srv := httptest.NewServer((&API{Backend: d, Auth: Authorizer{AllowUnauthenticated: true}, Log: logr.Discard()}).Handler())
	defer srv.Close()
	c := &api.Client{BaseURL: srv.URL}
	if as, err := c.Assignment(ctx, unitJob); err != nil || as.Cluster == "" {
		t.Fatalf("assignment: %+v, %v", as, err)
	}
	if _, err := c.Assignment(ctx, "no-such-job"); !isStatus(err, 404) {
		t.Errorf("unknown job: %v, want 404", err)
	}
	if _, err := c.Explain(ctx, armJob); err != nil {
		t.Errorf("explain: %v", err)
	}
	if cl, err := c.Clusters(ctx); err != nil || len(cl) == 0 {
		t.Errorf("clusters: %+v, %v", cl, err)
	}
	if _, err := c.Reschedule(ctx, api.RescheduleRequest{Job: armJob, Cluster: "build02", Reason: "test"}); !isStatus(err, 400) {
		t.Errorf("rescheduling the arm64 job to a cluster without arm64: %v, want 400", err)
	}
	if _, err := c.Reschedule(ctx, api.RescheduleRequest{Job: "no-such-job", Cluster: "build02", Reason: "test"}); !isStatus(err, 404) {
		t.Errorf("rescheduling an unknown job: %v, want 404", err)
	}
	res, err := c.Reschedule(ctx, api.RescheduleRequest{Job: unitJob, Cluster: "build03", Reason: "test", TTL: "1h"})
	if err != nil || res.To != "build03" {
		t.Fatalf("reschedule: %+v, %v", res, err)
	}
	if as, err := c.Assignment(ctx, unitJob); err != nil || as.Cluster != "build03" || as.Override == nil {
		t.Errorf("after reschedule: %+v, %v", as, err)
	}
	if err := c.DeleteOverride(ctx, unitJob); err != nil {
		t.Errorf("delete override: %v", err)
	}
	if err := c.DeleteOverride(ctx, unitJob); !isStatus(err, 404) {
		t.Errorf("deleting a missing override: %v, want 404", err)
	}
	if _, err := c.Dispatch(ctx); err != nil {
		t.Errorf("dispatch: %v", err)
	}
}
