package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/internal/dispatchtest"
)

// bigDrainPlan moves 150 jobs off build03 (to build01 and build02), keeps
// 120 there and strands 110: more of each than a DrainPlan lists.
func bigDrainPlan() dispatch.DrainPlan {
	var p dispatch.DrainPlan
	p.To = map[string]dispatch.Flow{}
	for i := range 150 {
		to := []string{"build01", "build02"}[i%2]
		p.Moves = append(p.Moves, engine.Move{Job: fmt.Sprintf("job-%03d", i), From: "build03", To: to, Reason: table.ReasonBalanced})
		f := p.To[to]
		f.Jobs++
		f.Demand += 2
		p.To[to] = f
	}
	for i := range 120 {
		p.Staying = append(p.Staying, dispatch.StayingJob{Job: fmt.Sprintf("stay-%03d", i), Reason: table.ReasonClusterJob, Detail: "upgrade job of build03"})
	}
	for i := range 110 {
		p.Stranded = append(p.Stranded, engine.Unplaceable{Job: fmt.Sprintf("gpu-%03d", i), Problem: "no usable cluster meets capabilities [gpu]", Cluster: "build03"})
	}
	return p
}

// TestDrainAPI drives the drain, undrain and cluster-overrides endpoints
// over the fake backend: what reaches it, what is refused before it, and
// how its errors are answered.
func TestDrainAPI(t *testing.T) {
	drainPath := api.DrainPath("build03")
	strandedErr := fmt.Errorf("drain build03: %w: 110 job(s) need what no other usable cluster has: gpu-000 (no usable cluster meets capabilities [gpu]); force to drain anyway", dispatch.ErrStranded)
	noneReached := func(t *testing.T, f *fakeBackend, _ string) {
		t.Helper()
		if len(f.drains)+len(f.previews)+len(f.undrains) != 0 || len(f.inForce) != 0 {
			t.Errorf("a refused request reached the backend: drains %+v previews %+v undrains %v", f.drains, f.previews, f.undrains)
		}
	}
	tests := []apiCase{
		{name: "drain", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"4h","reason":"node upgrade"}`, wantCode: 200,
			fake: func(f *fakeBackend) { f.drainPlan = bigDrainPlan() },
			check: func(t *testing.T, f *fakeBackend, body string) {
				want := []dispatch.DrainRequest{{Cluster: "build03", TTL: 4 * time.Hour, Reason: "node upgrade", By: "api"}}
				if diff := cmp.Diff(want, f.drains); diff != "" || len(f.previews) != 0 {
					t.Errorf("drains (-want +got):\n%s; previews %+v", diff, f.previews)
				}
				var got api.DrainPlan
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatal(err)
				}
				if got.DryRun || got.Moved != 150 || len(got.Moves) != maxMoves || got.Staying != 120 || len(got.StayingJobs) != maxMoves ||
					got.Stranded != 110 || len(got.StrandedJobs) != maxMoves {
					t.Errorf("dryRun %v, moved %d (%d listed), staying %d (%d listed), stranded %d (%d listed); want 150, 120, 110 with %d of each listed",
						got.DryRun, got.Moved, len(got.Moves), got.Staying, len(got.StayingJobs), got.Stranded, len(got.StrandedJobs), maxMoves)
				}
				if diff := cmp.Diff(map[string]api.Flow{"build01": {Jobs: 75, Demand: 150}, "build02": {Jobs: 75, Demand: 150}}, got.Flows); diff != "" {
					t.Errorf("flows (-want +got):\n%s", diff)
				}
				wantOverride := api.Drain{Cluster: "build03", Reason: "node upgrade", By: "api", CreatedAt: fakeNow(), Expires: fakeNow().Add(4 * time.Hour)}
				if got.Override != wantOverride {
					t.Errorf("override %+v, want %+v", got.Override, wantOverride)
				}
				if s := got.StayingJobs[0]; s != (api.StayingJob{Job: "stay-000", Reason: "cluster-job", Detail: "upgrade job of build03"}) {
					t.Errorf("staying[0] = %+v", s)
				}
			}},
		{name: "cap", method: "POST", path: api.DrainPath("build02"), token: testToken, body: `{"capacity":40,"ttl":"90m","reason":"half the nodes are down"}`, wantCode: 200,
			want: `"override":{"cluster":"build02","capacity":40,"reason":"half the nodes are down"`,
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if len(f.drains) != 1 || f.drains[0].Capacity != 40 || f.drains[0].TTL != 90*time.Minute {
					t.Errorf("drains %+v, want a cap to 40 for 90m", f.drains)
				}
			}},
		{name: "drain by the plugin for a commenter", method: "POST", path: drainPath, token: pluginToken, body: `{"ttl":"1h","reason":"r","by":"octocat","force":true}`, wantCode: 200,
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if len(f.drains) != 1 || f.drains[0].By != "plugin for octocat" || !f.drains[0].Force {
					t.Errorf("drains %+v, want a forced drain by \"plugin for octocat\"", f.drains)
				}
			}},
		{name: "preview changes nothing", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"4h","reason":"r","dryRun":true,"force":true}`, wantCode: 200,
			fake: func(f *fakeBackend) { f.drainPlan = bigDrainPlan() }, want: `"dryRun":true`,
			check: func(t *testing.T, f *fakeBackend, body string) {
				if len(f.previews) != 1 || len(f.drains) != 0 || len(f.inForce) != 0 {
					t.Errorf("previews %+v, drains %+v, overrides %+v: want one preview and nothing else", f.previews, f.drains, f.inForce)
				}
				if !strings.Contains(body, `"stranded":110`) {
					t.Errorf("the preview does not list the stranded jobs: %.300s", body)
				}
			}},
		{name: "preview refused", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"400h","reason":"r","dryRun":true}`,
			fake: func(f *fakeBackend) {
				f.previewErr = fmt.Errorf("drain build03: ttl 400h0m0s is over the maximum 168h0m0s: %w", dispatch.ErrInvalid)
			},
			wantCode: 400, want: "over the maximum 168h0m0s"},
		{name: "ttl over the maximum", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"400h","reason":"r"}`,
			fake: func(f *fakeBackend) {
				f.drainErr = fmt.Errorf("drain build03: ttl 400h0m0s is over the maximum 168h0m0s: %w", dispatch.ErrInvalid)
			},
			wantCode: 400, want: "over the maximum 168h0m0s"},
		{name: "unknown cluster", method: "POST", path: api.DrainPath("build99"), token: testToken, body: `{"ttl":"1h","reason":"r"}`,
			fake: func(f *fakeBackend) {
				f.drainErr = fmt.Errorf("drain: cluster \"build99\" is not in the cluster config: %w", dispatch.ErrNotFound)
			},
			wantCode: 404, want: `cluster \"build99\" is not in the cluster config`},
		{name: "service cluster", method: "POST", path: api.DrainPath("app.ci"), token: testToken, body: `{"ttl":"1h","reason":"r"}`,
			fake: func(f *fakeBackend) {
				f.drainErr = fmt.Errorf("drain app.ci: a service cluster ...: %w", dispatch.ErrInvalid)
			},
			wantCode: 400, want: "a service cluster"},
		{name: "stranding without force names the jobs", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"1h","reason":"r"}`,
			fake:     func(f *fakeBackend) { f.drainErr, f.drainPlan = strandedErr, bigDrainPlan() },
			wantCode: 409, want: `"stranded":110,"strandedJobs":[{"job":"gpu-000","problem":"no usable cluster meets capabilities [gpu]","cluster":"build03"}`,
			check: func(t *testing.T, f *fakeBackend, body string) {
				var e api.Error
				if err := json.Unmarshal([]byte(body), &e); err != nil {
					t.Fatal(err)
				}
				if len(e.StrandedJobs) != maxMoves || !strings.Contains(e.Error, "would strand jobs") || !strings.Contains(e.Error, "force to drain anyway") {
					t.Errorf("error %q with %d stranded jobs listed", e.Error, len(e.StrandedJobs))
				}
				if len(f.inForce) != 0 {
					t.Errorf("the refused drain is in force: %+v", f.inForce)
				}
			}},
		{name: "stranding without force, the preview failing too", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"1h","reason":"r"}`,
			fake:     func(f *fakeBackend) { f.drainErr, f.previewErr = strandedErr, errors.New("boom") },
			wantCode: 409, want: "gpu-000 (no usable cluster meets capabilities [gpu])",
			check: func(t *testing.T, _ *fakeBackend, body string) {
				if strings.Contains(body, "strandedJobs") {
					t.Errorf("a job list without a preview: %s", body)
				}
			}},
		{name: "drain not saved", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"1h","reason":"r"}`,
			fake: func(f *fakeBackend) {
				f.drainErr = fmt.Errorf("drain build03: in force, but %w: state dir /x: read-only", dispatch.ErrNotSaved)
			},
			wantCode: 507, want: "read-only"},
		{name: "drain before the first table", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"1h","reason":"r"}`,
			fake: func(f *fakeBackend) {
				f.drainErr = fmt.Errorf("drain build03: no assignment table yet: %w", dispatch.ErrNotReady)
			},
			wantCode: 503, want: "no assignment table yet"},
		{name: "drain without ttl", method: "POST", path: drainPath, token: testToken, body: `{"reason":"r"}`, wantCode: 400, want: "ttl is required", check: noneReached},
		{name: "drain with a garbage ttl", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"3 days","reason":"r"}`, wantCode: 400, want: `ttl \"3 days\"`, check: noneReached},
		{name: "drain with a negative ttl", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"-1h","reason":"r"}`, wantCode: 400, want: "positive duration", check: noneReached},
		{name: "drain without reason", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"1h","reason":"  "}`, wantCode: 400, want: "reason is required", check: noneReached},
		{name: "drain with a ttl that is a number", method: "POST", path: drainPath, token: testToken, body: `{"ttl":3600,"reason":"r"}`, wantCode: 400, want: "cannot unmarshal number", check: noneReached},
		{name: "drain with an unknown field", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"1h","reason":"r","cluster":"build01"}`, wantCode: 400, want: `unknown field \"cluster\"`, check: noneReached},
		{name: "drain with an empty body", method: "POST", path: drainPath, token: testToken, wantCode: 400, want: "empty", check: noneReached},
		{name: "drain with bad JSON", method: "POST", path: drainPath, token: testToken, body: `{"ttl":`, wantCode: 400, check: noneReached},
		{name: "drain with two values", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"1h","reason":"r"} {}`, wantCode: 400, want: "single JSON value", check: noneReached},
		{name: "drain with a body too large", method: "POST", path: drainPath, token: testToken, body: `{"ttl":"1h","reason":"` + strings.Repeat("a", MaxRequestBytes) + `"}`,
			wantCode: 413, check: noneReached},
		{name: "drain without token", method: "POST", path: drainPath, body: `{"ttl":"1h","reason":"r"}`, wantCode: 401, want: "missing bearer token", check: noneReached},
		{name: "preview without token", method: "POST", path: drainPath, body: `{"ttl":"1h","reason":"r","dryRun":true}`, wantCode: 401, check: noneReached},
		{name: "drain with a wrong token", method: "POST", path: drainPath, token: "wrong", body: `{"ttl":"1h","reason":"r"}`, wantCode: 401, want: "invalid bearer token", check: noneReached},
		{name: "drain by GET", method: "GET", path: drainPath, wantCode: 405},

		{name: "undrain", method: "DELETE", path: drainPath, token: testToken, wantCode: 200,
			fake: func(f *fakeBackend) {
				f.inForce = []table.Drain{{Cluster: "build03", Reason: "node upgrade", By: "alice", CreatedAt: fakeNow(), Expires: fakeNow().Add(time.Hour)}}
				f.report = &engine.Report{Jobs: 40, Moves: []engine.Move{{Job: "j", From: "build01", To: "build03", Reason: table.ReasonBalanced}}}
			},
			check: func(t *testing.T, f *fakeBackend, body string) {
				var got api.UndrainResponse
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatal(err)
				}
				want := api.UndrainResponse{Cluster: "build03",
					Cancelled: &api.Drain{Cluster: "build03", Reason: "node upgrade", By: "alice", CreatedAt: fakeNow(), Expires: fakeNow().Add(time.Hour)},
					Dispatch: api.DispatchResponse{Jobs: 40, Moved: 1, MovedTo: map[string]int{"build03": 1},
						Moves: []api.Move{{Job: "j", From: "build01", To: "build03", Reason: "balanced"}}}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("undrain (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"build03 api"}, f.undrains); diff != "" || len(f.inForce) != 0 {
					t.Errorf("undrains (-want +got):\n%s; overrides left %+v", diff, f.inForce)
				}
			}},
		{name: "undrain by the plugin for a commenter", method: "DELETE", path: drainPath + "?by=octocat", token: pluginToken, wantCode: 200,
			fake: func(f *fakeBackend) { f.inForce = []table.Drain{{Cluster: "build03"}} },
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if diff := cmp.Diff([]string{"build03 plugin for octocat"}, f.undrains); diff != "" {
					t.Errorf("undrains (-want +got):\n%s", diff)
				}
			}},
		{name: "undrain of a cluster without a drain", method: "DELETE", path: drainPath, token: testToken, wantCode: 404, want: "has no drain or capacity cap"},
		{name: "undrain not saved", method: "DELETE", path: drainPath, token: testToken, wantCode: 507, want: "read-only",
			fake: func(f *fakeBackend) {
				f.inForce = []table.Drain{{Cluster: "build03"}}
				f.undrainErr = fmt.Errorf("undrain build03: in force, but %w: read-only", dispatch.ErrNotSaved)
			}},
		{name: "undrain without token", method: "DELETE", path: drainPath, wantCode: 401,
			fake: func(f *fakeBackend) { f.inForce = []table.Drain{{Cluster: "build03"}} },
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if len(f.undrains) != 0 || len(f.inForce) != 1 {
					t.Errorf("undrained without a token: %v", f.undrains)
				}
			}},

		{name: "cluster overrides none", method: "GET", path: api.DrainsPath, wantCode: 200, want: "[]"},
		{name: "cluster overrides", method: "GET", path: api.DrainsPath, wantCode: 200,
			fake: func(f *fakeBackend) {
				f.inForce = []table.Drain{{Cluster: "build02", Capacity: 40, Reason: "r", By: "api", CreatedAt: fakeNow(), Expires: fakeNow().Add(time.Hour)}}
			},
			want: `[{"cluster":"build02","capacity":40,"reason":"r","by":"api","createdAt":"2026-11-22T10:00:00Z","expires":"2026-11-22T11:00:00Z"}]`},
	}
	runAPICases(t, tests)
}

// TestDrainWithoutTokenFile: without --token-file, drains and undrains are
// refused (403), as every other write.
func TestDrainWithoutTokenFile(t *testing.T) {
	f := newFakeBackend()
	f.inForce = []table.Drain{{Cluster: "build03"}}
	srv := httptest.NewServer((&API{Backend: f, Log: logr.Discard()}).Handler())
	defer srv.Close()
	for _, method := range []string{"POST", "DELETE"} {
		if code, body := call(t, method, srv.URL+api.DrainPath("build03"), testToken, `{"ttl":"1h","reason":"r"}`); code != 403 {
			t.Errorf("%s drain: HTTP %d %s, want 403", method, code, body)
		}
	}
	if len(f.drains)+len(f.undrains) != 0 {
		t.Errorf("reached the backend: drains %+v undrains %v", f.drains, f.undrains)
	}
}

// TestDrainAPIClient drives the drain endpoints through api.Client, the
// plugin's client: the 409's stranded jobs survive the wire.
func TestDrainAPIClient(t *testing.T) {
	f := newFakeBackend()
	f.drainPlan = bigDrainPlan()
	srv := startAPI(t, f)
	c := &api.Client{BaseURL: srv.URL, Token: testToken}
	ctx := context.Background()

	plan, err := c.Drain(ctx, "build03", api.DrainRequest{TTL: "1h", Reason: "r", DryRun: true})
	if err != nil || !plan.DryRun || plan.Moved != 150 || len(f.drains) != 0 {
		t.Fatalf("preview: %+v, %v; drains %+v", plan, err, f.drains)
	}
	f.drainErr = fmt.Errorf("drain build03: %w: ...", dispatch.ErrStranded)
	_, err = c.Drain(ctx, "build03", api.DrainRequest{TTL: "1h", Reason: "r"})
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != 409 || se.Stranded != 110 || len(se.StrandedJobs) != maxMoves || se.StrandedJobs[0].Job != "gpu-000" {
		t.Fatalf("stranding drain: %v, want a 409 StatusError with the stranded jobs", err)
	}
	f.drainErr = nil
	if plan, err = c.Drain(ctx, "build03", api.DrainRequest{TTL: "1h", Reason: "r", Force: true}); err != nil || plan.DryRun || plan.Override.Cluster != "build03" {
		t.Fatalf("forced drain: %+v, %v", plan, err)
	}
	list, err := c.Drains(ctx)
	if err != nil || len(list) != 1 || list[0].Cluster != "build03" {
		t.Errorf("Drains: %+v, %v", list, err)
	}
	res, err := c.Undrain(ctx, "build03", "octocat")
	if err != nil || res.Cluster != "build03" || res.Cancelled == nil || res.Cancelled.Cluster != "build03" {
		t.Errorf("Undrain: %+v, %v", res, err)
	}
	if diff := cmp.Diff([]string{"build03 api for octocat"}, f.undrains); diff != "" {
		t.Errorf("undrains (-want +got):\n%s", diff)
	}
	if _, err := c.Undrain(ctx, "build03", ""); !isStatus(err, 404) {
		t.Errorf("second Undrain: %v, want 404", err)
	}
	// A cluster name that needs escaping stays one path segment.
	if _, err := c.Drain(ctx, "build 03/x", api.DrainRequest{TTL: "1h", Reason: "r"}); err != nil {
		t.Errorf("Drain of an odd name: %v", err)
	}
	if last := f.drains[len(f.drains)-1]; last.Cluster != "build 03/x" {
		t.Errorf("the odd name reached the backend as %q", last.Cluster)
	}
}

// TestRealDispatcherDrain drives drains through the API to the real
// dispatcher over the docs' example configs, with app.ci as a service
// cluster (the sshBastion) and a 24h maximum TTL. Every build cluster of
// the examples is the last with something (build01 arm64, build02 kvm,
// build03 rce), so every drain strands a job unless forced.
func TestRealDispatcherDrain(t *testing.T) {
	ex := dispatchtest.ExamplesDir(t)
	data, err := os.ReadFile(filepath.Join(ex, "dispatcher.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "dispatcher.yaml")
	withService := strings.Replace(string(data), "sshBastion: build01", "sshBastion: app.ci", 1)
	if withService == string(data) {
		t.Fatal("the example dispatcher config has no sshBastion: build01 to replace")
	}
	if err := os.WriteFile(config, []byte(withService), 0o644); err != nil {
		t.Fatal(err)
	}
	d := dispatchtest.New(t, func(o *dispatch.Options) { o.DispatcherConfigPath, o.MaxDrainTTL = config, 24*time.Hour })
	ctx := context.Background()
	tok, err := NewTokenFile(writeToken(t, testToken))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&API{Backend: d, Auth: Authorizer{Token: tok}, Log: logr.Discard()}).Handler())
	defer srv.Close()
	c := &api.Client{BaseURL: srv.URL, Token: testToken}

	// Before the first table there is nothing to plan against.
	if _, err := c.Drain(ctx, "build03", api.DrainRequest{TTL: "1h", Reason: "r", DryRun: true}); !isStatus(err, 503) {
		t.Errorf("preview before the first dispatch: %v, want 503", err)
	}
	if _, err := d.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	const rceJob = "periodic-ci-openshift-ci-tools-master-e2e-rce"
	unchanged := func(what string) {
		t.Helper()
		if got, err := c.Drains(ctx); err != nil || len(got) != 0 {
			t.Errorf("%s: cluster overrides %+v, %v; want none", what, got, err)
		}
		if a, _ := d.Lookup(rceJob); a.Cluster != "build03" {
			t.Errorf("%s: %s moved to %s", what, rceJob, a.Cluster)
		}
	}

	for _, tc := range []struct {
		name    string
		cluster string
		req     api.DrainRequest
		code    int
		msg     string
	}{
		{"ttl over the maximum", "build03", api.DrainRequest{TTL: "25h", Reason: "r", Force: true}, 400, "over the maximum 24h0m0s"},
		{"preview with a ttl over the maximum", "build03", api.DrainRequest{TTL: "25h", Reason: "r", DryRun: true}, 400, "over the maximum 24h0m0s"},
		{"unknown cluster", "build99", api.DrainRequest{TTL: "1h", Reason: "r"}, 404, "not in the cluster config"},
		{"service cluster", "app.ci", api.DrainRequest{TTL: "1h", Reason: "r", Force: true}, 400, "a service cluster"},
		{"manual cluster", "vsphere02", api.DrainRequest{TTL: "1h", Reason: "r"}, 400, "a manual cluster"},
		{"capacity over 100", "build03", api.DrainRequest{Capacity: 101, TTL: "1h", Reason: "r"}, 400, "capacity 101"},
		{"negative capacity", "build03", api.DrainRequest{Capacity: -1, TTL: "1h", Reason: "r"}, 400, "capacity -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Drain(ctx, tc.cluster, tc.req)
			var se *api.StatusError
			if !errors.As(err, &se) || se.Code != tc.code || !strings.Contains(se.Message, tc.msg) {
				t.Errorf("drain: %v, want HTTP %d with %q", err, tc.code, tc.msg)
			}
			unchanged(tc.name)
		})
	}

	// Stranding without force: 409 naming the rce job, nothing changed.
	_, err = c.Drain(ctx, "build03", api.DrainRequest{TTL: "1h", Reason: "upgrade"})
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != 409 || se.Stranded != 1 || len(se.StrandedJobs) != 1 || se.StrandedJobs[0].Job != rceJob ||
		!strings.Contains(se.Message, rceJob) {
		t.Fatalf("drain stranding %s: %v, want 409 naming it", rceJob, err)
	}
	unchanged("refused drain")

	// The preview lists the same, and changes nothing.
	preview, err := c.Drain(ctx, "build03", api.DrainRequest{TTL: "1h", Reason: "upgrade", DryRun: true})
	if err != nil || !preview.DryRun || preview.Moved == 0 || preview.Stranded != 1 || preview.Staying != 1 || preview.StayingJobs[0].Job != rceJob {
		t.Fatalf("preview: %+v, %v", preview, err)
	}
	unchanged("preview")
	for _, m := range preview.Moves {
		if a, _ := d.Lookup(m.Job); a.Cluster != "build03" || m.From != "build03" || m.To == "build03" {
			t.Errorf("preview move %+v: the table has %s, want the job still on build03", m, a.Cluster)
		}
	}

	// Forced: the moves happen, the rce job stays, the drain is listed.
	plan, err := c.Drain(ctx, "build03", api.DrainRequest{TTL: "1h", Reason: "upgrade", Force: true})
	if err != nil || plan.DryRun || plan.Moved != preview.Moved || plan.Stranded != 1 || !cmp.Equal(plan.Flows, preview.Flows) {
		t.Fatalf("forced drain: %+v, %v; the preview said %+v", plan, err, preview)
	}
	for _, m := range plan.Moves {
		if a, _ := d.Lookup(m.Job); a.Cluster != m.To || m.From != "build03" {
			t.Errorf("move %+v: the table has %s", m, a.Cluster)
		}
	}
	if a, _ := d.Lookup(rceJob); a.Cluster != "build03" {
		t.Errorf("forced drain: %s moved to %s, which has no rce", rceJob, a.Cluster)
	}
	clusters, err := c.Clusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range clusters {
		if (cl.Name == "build03") != (cl.Override != nil) {
			t.Errorf("cluster %s: override %+v", cl.Name, cl.Override)
		}
	}
	if list, err := c.Drains(ctx); err != nil || len(list) != 1 || list[0].Reason != "upgrade" || list[0].By != "api" {
		t.Errorf("cluster overrides %+v, %v", list, err)
	}

	// A cap of build02 strands nothing.
	if plan, err := c.Drain(ctx, "build02", api.DrainRequest{Capacity: 30, TTL: "2h", Reason: "half down"}); err != nil || plan.Override.Capacity != 30 || plan.Stranded != 0 {
		t.Errorf("cap: %+v, %v", plan, err)
	}

	// Undrain: jobs may flow back, and the drain is gone.
	res, err := c.Undrain(ctx, "build03", "")
	if err != nil || res.Cancelled == nil || res.Cancelled.Reason != "upgrade" || res.Dispatch.Jobs == 0 {
		t.Fatalf("undrain: %+v, %v", res, err)
	}
	if list, _ := c.Drains(ctx); len(list) != 1 || list[0].Cluster != "build02" {
		t.Errorf("after undrain, cluster overrides %+v; want build02's cap only", list)
	}
	if _, err := c.Undrain(ctx, "build03", ""); !isStatus(err, 404) {
		t.Errorf("second undrain: %v, want 404", err)
	}
}
