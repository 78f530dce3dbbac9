package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/internal/dispatchtest"
)

// bigWhatIf moves 150 jobs off build03 and makes 120 unplaceable: more of
// each than a PlanResponse lists.
func bigWhatIf() dispatch.WhatIf {
	w := dispatch.WhatIf{MovedJobs: 150, MovedDemand: 300, UnplaceableJobs: 120,
		To:       map[string]dispatch.Flow{"build01": {Jobs: 75, Demand: 150}, "build02": {Jobs: 75, Demand: 150}},
		From:     map[string]dispatch.Flow{"build03": {Jobs: 150, Demand: 300}},
		Clusters: []engine.ClusterLoad{{Name: "build03", Blocked: true, Capacity: 50}, {Name: "build01", Capacity: 100, Jobs: 75, Demand: 150, Target: 150, Ratio: 1}},
	}
	for i := range 150 {
		w.Moves = append(w.Moves, engine.Move{Job: fmt.Sprintf("job-%03d", i), From: "build03", To: []string{"build01", "build02"}[i%2], Reason: table.ReasonBalanced})
	}
	for i := range 120 {
		w.Unplaceable = append(w.Unplaceable, engine.Unplaceable{Job: fmt.Sprintf("gpu-%03d", i), Problem: "no usable cluster meets capabilities [gpu]"})
	}
	return w
}

// bigJobWhatIf adds 130 jobs and removes 110: more of each than a
// PlanResponse lists.
func bigJobWhatIf() dispatch.WhatIf {
	w := dispatch.WhatIf{AddedJobs: 130, RemovedJobs: 110,
		AddedTo:     map[string]dispatch.Flow{"build01": {Jobs: 130, Demand: 130}},
		RemovedFrom: map[string]dispatch.Flow{"build02": {Jobs: 110, Demand: 220}},
		Clusters:    []engine.ClusterLoad{{Name: "build01", Capacity: 100}},
	}
	for i := range 130 {
		w.Added = append(w.Added, dispatch.JobChange{Job: fmt.Sprintf("new-%03d", i), File: "org/new/new.yaml", Cluster: "build01", Reason: table.ReasonBalanced, Demand: 1})
	}
	for i := range 110 {
		w.Removed = append(w.Removed, dispatch.JobChange{Job: fmt.Sprintf("old-%03d", i), File: "org/old/old.yaml", Cluster: "build02", Reason: table.ReasonPinned, Demand: 2})
	}
	return w
}

// TestPlanAPI: the plan endpoint is token-guarded, passes the proposed files
// and their repository paths to the backend, bounds its lists but not its
// totals, and answers invalid configs 400 with every problem.
func TestPlanAPI(t *testing.T) {
	configErr := &dispatch.ConfigError{Problems: []string{
		`cluster config core-services/sanitize-prow-jobs/_clusters.yaml: aws[0].capacity: cluster "build01": capacity 0 not in 1..100`,
		`cluster config core-services/sanitize-prow-jobs/_clusters.yaml: aws[1].name: empty cluster name`,
	}}
	for _, tc := range []struct {
		name     string
		fake     func(*fakeBackend)
		token    string
		body     string
		wantCode int
		check    func(t *testing.T, f *fakeBackend, body string)
	}{
		{name: "no token", body: `{}`, wantCode: 401, check: func(t *testing.T, f *fakeBackend, _ string) {
			if len(f.whatIfs) != 0 {
				t.Errorf("an unauthenticated plan reached the backend: %+v", f.whatIfs)
			}
		}},
		{name: "both files, bounded", token: testToken, wantCode: 200,
			body: `{"clusterConfig":"aws: []\n","clusterConfigPath":"c/_clusters.yaml","dispatcherConfig":"","dispatcherConfigPath":"c/_config.yaml"}`,
			fake: func(f *fakeBackend) { f.whatIf = bigWhatIf() },
			check: func(t *testing.T, f *fakeBackend, body string) {
				want := []dispatch.WhatIfRequest{{ClusterConfig: []byte("aws: []\n"), ClusterConfigPath: "c/_clusters.yaml",
					DispatcherConfig: []byte{}, DispatcherConfigPath: "c/_config.yaml", MaxMoves: maxMoves}}
				if diff := cmp.Diff(want, f.whatIfs); diff != "" {
					t.Errorf("requests (-want +got):\n%s", diff)
				}
				for _, s := range []string{`"moved":150`, `"movedDemand":300`, `"unplaceable":120`, `"from":{"build03":{"jobs":150,"demand":300}}`, `"blocked":true`} {
					if !strings.Contains(body, s) {
						t.Errorf("body lacks %s: %.300s", s, body)
					}
				}
				if n := strings.Count(body, `"job":"job-`); n != maxMoves {
					t.Errorf("%d moves listed, want %d", n, maxMoves)
				}
				if n := strings.Count(body, `"job":"gpu-`); n != maxMoves {
					t.Errorf("%d unplaceable jobs listed, want %d", n, maxMoves)
				}
			}},
		{name: "an empty body proposes nothing", token: testToken, wantCode: 200, check: func(t *testing.T, f *fakeBackend, _ string) {
			if len(f.whatIfs) != 1 || f.whatIfs[0].ClusterConfig != nil || f.whatIfs[0].DispatcherConfig != nil {
				t.Errorf("requests %+v, want one with no file", f.whatIfs)
			}
		}},
		{name: "invalid config: 400 with every problem", token: testToken, body: `{"clusterConfig":"x"}`, wantCode: 400,
			fake: func(f *fakeBackend) { f.whatIfErr = configErr },
			check: func(t *testing.T, _ *fakeBackend, body string) {
				if !strings.Contains(body, `"problems":["cluster config core-services/sanitize-prow-jobs/_clusters.yaml: aws[0].capacity`) ||
					!strings.Contains(body, `aws[1].name: empty cluster name"]`) {
					t.Errorf("body %s lacks the problems", body)
				}
			}},
		{name: "job config files: content, empty, deleted; the dir", token: testToken, wantCode: 200,
			body: `{"jobConfigFiles":{"org/a/a.yaml":"periodics: []\n","org/a/empty.yaml":"","org/a/gone.yaml":null},"jobConfigDir":"ci-operator/jobs"}`,
			fake: func(f *fakeBackend) { f.whatIf = bigJobWhatIf() },
			check: func(t *testing.T, f *fakeBackend, body string) {
				want := []dispatch.WhatIfRequest{{JobConfigFiles: map[string][]byte{
					"org/a/a.yaml": []byte("periodics: []\n"), "org/a/empty.yaml": {}, "org/a/gone.yaml": nil,
				}, JobConfigDirPath: "ci-operator/jobs", MaxMoves: maxMoves}}
				if diff := cmp.Diff(want, f.whatIfs); diff != "" {
					t.Errorf("requests (-want +got):\n%s", diff)
				}
				for _, s := range []string{`"added":130`, `"removed":110`, `"addedTo":{"build01":{"jobs":130,"demand":130}}`,
					`"removedFrom":{"build02":{"jobs":110,"demand":220}}`,
					`{"job":"new-000","file":"org/new/new.yaml","cluster":"build01","reason":"balanced","demand":1}`,
					`{"job":"old-000","file":"org/old/old.yaml","cluster":"build02","reason":"pinned","demand":2}`} {
					if !strings.Contains(body, s) {
						t.Errorf("body lacks %s: %.300s", s, body)
					}
				}
				if n := strings.Count(body, `"job":"new-`); n != maxMoves {
					t.Errorf("%d added jobs listed, want %d", n, maxMoves)
				}
				if n := strings.Count(body, `"job":"old-`); n != maxMoves {
					t.Errorf("%d removed jobs listed, want %d", n, maxMoves)
				}
			}},
		{name: "over the size limit: 413 saying so", token: testToken, wantCode: 413,
			body: `{"jobConfigFiles":{"a.yaml":"` + strings.Repeat("x", MaxPlanRequestBytes) + `"}}`,
			check: func(t *testing.T, f *fakeBackend, body string) {
				if len(f.whatIfs) != 0 || !strings.Contains(body, "larger than 8388608 bytes (8 MiB): propose fewer or smaller job config files") {
					t.Errorf("body %s, requests %d; want the limit named and no request", body, len(f.whatIfs))
				}
			}},
		{name: "a refused job file path: 400", token: testToken, body: `{"jobConfigFiles":{"../x.yaml":""}}`, wantCode: 400,
			fake: func(f *fakeBackend) {
				f.whatIfErr = fmt.Errorf("what-if: job config file %q: escapes the job config dir: %w", "../x.yaml", dispatch.ErrInvalid)
			}},
		{name: "not ready", token: testToken, body: `{}`, wantCode: 503,
			fake: func(f *fakeBackend) { f.whatIfErr = fmt.Errorf("what-if: %w", dispatch.ErrNotReady) }},
		{name: "past the preview timeout: 503 saying what to do", token: testToken, body: `{}`, wantCode: 503,
			fake: func(f *fakeBackend) {
				f.whatIfErr = fmt.Errorf("what-if: gave up after the preview timeout of 30s: retry later, or propose fewer group path regexes: %w", dispatch.ErrTimedOut)
			},
			check: func(t *testing.T, _ *fakeBackend, body string) {
				if !strings.Contains(body, "propose fewer group path regexes") {
					t.Errorf("body %s: want what to do", body)
				}
			}},
		{name: "unknown field", token: testToken, body: `{"jobConfig":"x"}`, wantCode: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeBackend()
			if tc.fake != nil {
				tc.fake(f)
			}
			srv := startAPI(t, f)
			code, body := call(t, "POST", srv.URL+api.PlanPath, tc.token, tc.body)
			if code != tc.wantCode {
				t.Fatalf("status %d (%s), want %d", code, body, tc.wantCode)
			}
			if tc.check != nil {
				tc.check(t, f, body)
			}
		})
	}
}

// TestPlanRealDispatcher: the client's Plan against the real dispatcher on
// the example configs: blocking a cluster moves all its jobs and changes
// nothing; an invalid cluster config comes back as problems naming the
// repository file and the field.
func TestPlanRealDispatcher(t *testing.T) {
	d := dispatchtest.New(t, nil)
	ctx := context.Background()
	if _, err := d.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := NewTokenFile(writeToken(t, testToken))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&API{Backend: d, Auth: Authorizer{Token: tok}, Log: logr.Discard()}).Handler())
	t.Cleanup(srv.Close)
	c := &api.Client{BaseURL: srv.URL, Token: testToken}
	data, err := os.ReadFile(filepath.Join(dispatchtest.ExamplesDir(t), "clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	before := d.Clusters()
	victim := before[0].Name
	for _, l := range before {
		if l.Role == "build" && !l.Blocked && l.Jobs > 0 {
			victim = l.Name
			break
		}
	}
	var onVictim int
	for _, l := range before {
		if l.Name == victim {
			onVictim = l.Jobs
		}
	}
	var se *api.StatusError
	blocked := blockCluster(t, string(data), victim)
	got, err := c.Plan(ctx, api.PlanRequest{ClusterConfig: &blocked, ClusterConfigPath: "core-services/sanitize-prow-jobs/_clusters.yaml"})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if got.From[victim].Jobs == 0 || got.Moved < got.From[victim].Jobs || len(got.Clusters) == 0 {
		t.Errorf("blocking %s (%d jobs): moved %d, from %v", victim, onVictim, got.Moved, got.From)
	}
	if _, ok := got.To[victim]; ok {
		t.Errorf("jobs move to the blocked %s: %v", victim, got.To)
	}
	if diff := cmp.Diff(before, d.Clusters()); diff != "" {
		t.Errorf("Plan changed the loads in force (-before +after):\n%s", diff)
	}

	// A new job file: its jobs are added, each with its cluster; a deleted
	// one: its jobs are removed.
	newFile := "presubmits:\n  openshift/new:\n  - name: pull-ci-openshift-new-main-e2e-arm64\n    labels:\n      capability/arm64: arm64\n" +
		"  - name: pull-ci-openshift-new-main-e2e-kvm\n    labels:\n      devices.kubevirt.io/kvm: \"true\"\n"
	const gone = "openshift/origin/openshift-origin-main-presubmits.yaml"
	got, err = c.Plan(ctx, api.PlanRequest{JobConfigDir: "ci-operator/jobs", JobConfigFiles: map[string]*string{
		"openshift/new/openshift-new-main-presubmits.yaml": &newFile, gone: nil,
	}})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	wantAdded := []api.JobChange{
		{Job: "pull-ci-openshift-new-main-e2e-arm64", File: "openshift/new/openshift-new-main-presubmits.yaml", Cluster: "build01", Reason: "capability"},
		{Job: "pull-ci-openshift-new-main-e2e-kvm", File: "openshift/new/openshift-new-main-presubmits.yaml", Cluster: "build02", Reason: "kvm"},
	}
	if diff := cmp.Diff(wantAdded, got.AddedJobs, cmpopts.IgnoreFields(api.JobChange{}, "Detail", "Demand")); diff != "" || got.Added != 2 {
		t.Errorf("added %d (-want +got):\n%s", got.Added, diff)
	}
	if got.Removed == 0 || got.Removed != len(got.RemovedJobs) {
		t.Fatalf("removed %d %+v, want the jobs of %s", got.Removed, got.RemovedJobs, gone)
	}
	for _, r := range got.RemovedJobs {
		if a, ok := d.Lookup(r.Job); r.File != gone || !ok || a.Cluster != r.Cluster {
			t.Errorf("removed %+v, want a job of %s on its cluster in force (%+v)", r, gone, a)
		}
	}
	broken := "presubmits: ["
	_, err = c.Plan(ctx, api.PlanRequest{JobConfigDir: "ci-operator/jobs", JobConfigFiles: map[string]*string{"openshift/new/x.yaml": &broken}})
	if !errors.As(err, &se) || se.Code != 400 || len(se.Problems) != 1 ||
		!strings.Contains(se.Problems[0], "error unmarshalling ci-operator/jobs/openshift/new/x.yaml: ") {
		t.Errorf("broken job file: error %#v, want a 400 naming the repository path", err)
	}
	_, err = c.Plan(ctx, api.PlanRequest{JobConfigFiles: map[string]*string{"../../etc/x.yaml": &broken}})
	if !errors.As(err, &se) || se.Code != 400 || !strings.Contains(se.Error(), "escapes the job config dir") {
		t.Errorf("escaping path: error %#v, want a 400", err)
	}
	if diff := cmp.Diff(before, d.Clusters()); diff != "" {
		t.Errorf("Plan changed the loads in force (-before +after):\n%s", diff)
	}

	bad := "aws:\n- name: build01\n  capacity: 0\n"
	_, err = c.Plan(ctx, api.PlanRequest{ClusterConfig: &bad, ClusterConfigPath: "core-services/sanitize-prow-jobs/_clusters.yaml"})
	if !errors.As(err, &se) || se.Code != 400 || len(se.Problems) == 0 ||
		!strings.Contains(se.Problems[0], "cluster config core-services/sanitize-prow-jobs/_clusters.yaml: aws[0].capacity") {
		t.Errorf("invalid config: error %#v, want a 400 naming the file and field", err)
	}
}

// blockCluster sets blocked: true on the cluster named name in a cluster config.
func blockCluster(t *testing.T, config, name string) string {
	t.Helper()
	marker := "- name: " + name + "\n"
	if !strings.Contains(config, marker) {
		t.Fatalf("cluster %s not found in the config", name)
	}
	return strings.Replace(config, marker, marker+"  blocked: true\n", 1)
}
