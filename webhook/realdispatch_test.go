package webhook

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/utils/ptr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
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
		Demand:               demand.File{Path: filepath.Join(ex, "demand.yaml")},
		Logger:               logr.Discard(),
	}
	if edit != nil {
		edit(&opts)
	}
	d, err := dispatch.New(context.Background(), opts, stateDir(t))
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

// TestAPITTLBounds: the API answers 400 naming the field and value for a
// drain, cap or reschedule TTL out of the dispatcher's bounds, and 200 within.
func TestAPITTLBounds(t *testing.T) {
	d := newRealDispatcher(t)
	if _, err := d.Dispatch(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok, err := NewTokenFile(writeToken(t, testToken))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&API{Backend: d, Auth: Authorizer{Token: tok}, Log: logr.Discard()}).Handler())
	defer srv.Close()
	const job = "pull-ci-openshift-cluster-monitoring-operator-master-unit"
	tests := []struct {
		name, path, body string
		wantCode         int
		wantBody         string
	}{
		{"drain of 1ns", api.ClustersPath + "/build03/drain", `{"ttl": "1ns", "reason": "r"}`, 400, "ttl 1ns is under the minimum 1m0s"},
		{"cap of 1ns", api.ClustersPath + "/build03/drain", `{"ttl": "1ns", "capacity": 40, "reason": "r"}`, 400, "ttl 1ns is under the minimum 1m0s"},
		{"drain preview of 8 days", api.ClustersPath + "/build03/drain", `{"ttl": "192h", "reason": "r", "dryRun": true}`, 400, "ttl 192h0m0s is over the maximum 168h0m0s"},
		{"reschedule of 2562047h", api.ReschedulePath, `{"job": "` + job + `", "ttl": "2562047h", "reason": "r"}`, 400, "ttl 2562047h0m0s is over the maximum 168h0m0s"},
		{"reschedule of 1ns", api.ReschedulePath, `{"job": "` + job + `", "ttl": "1ns", "reason": "r"}`, 400, "ttl 1ns is under the minimum 1m0s"},
		{"reschedule without a ttl", api.ReschedulePath, `{"job": "` + job + `", "reason": "r"}`, 200, `"expires"`},
		{"drain of an hour", api.ClustersPath + "/build03/drain", `{"ttl": "1h", "reason": "r", "force": true}`, 200, `"expires"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, "POST", srv.URL+tc.path, testToken, tc.body)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Errorf("HTTP %d %s, want %d with %q", code, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// stateDir is a file store in a temp dir.
func stateDir(t *testing.T) *store.Backend {
	t.Helper()
	b, err := store.NewBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
