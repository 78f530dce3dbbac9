package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
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
)

// testToken is the token of caller "api" (alone in a file, a bare token), pluginToken the one named "plugin".
const (
	testToken   = "s3cret-token"
	pluginToken = "plugin-token"
)

// writeToken writes a token file and returns its path.
func writeToken(t testing.TB, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startAPI serves the API over the fake on an httptest server, with testToken.
func startAPI(t testing.TB, f *fakeBackend) *httptest.Server {
	t.Helper()
	tok, err := NewTokenFile(writeToken(t, DefaultTokenName+" "+testToken+"\nplugin "+pluginToken))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&API{Backend: f, Auth: Authorizer{Token: tok}, Log: logr.Discard()}).Handler())
	t.Cleanup(srv.Close)
	return srv
}

// call sends one request and returns the status and body.
func call(t testing.TB, method, url, token, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

func TestAPI(t *testing.T) {
	moves := make([]engine.Move, 150)
	for i := range moves {
		moves[i] = engine.Move{Job: fmt.Sprintf("job-%03d", i), From: "build01", To: []string{"build02", "build03"}[i%2], Reason: table.ReasonBalanced}
	}
	tests := []apiCase{
		{name: "schedule known job", method: "POST", path: api.SchedulePath, body: `{"job":"` + unitJob + `"}`, wantCode: 200, want: `{"cluster":"build01"}`},
		{name: "schedule unknown job", method: "POST", path: api.SchedulePath, body: `{"job":"nope"}`, wantCode: 404, want: `"error":"job \"nope\" is not in the assignment table"`,
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if _, ok := f.Lookup("nope"); ok || len(f.rows) != 2 {
					t.Errorf("schedule added a row: %+v", f.rows)
				}
			}},
		{name: "schedule without job", method: "POST", path: api.SchedulePath, body: `{}`, wantCode: 400, want: "job is required"},
		{name: "schedule unknown field", method: "POST", path: api.SchedulePath, body: `{"job":"x","labels":{}}`, wantCode: 400, want: `unknown field \"labels\"`},
		{name: "schedule two values", method: "POST", path: api.SchedulePath, body: `{"job":"x"} {"job":"y"}`, wantCode: 400, want: "single JSON value"},
		{name: "schedule empty body", method: "POST", path: api.SchedulePath, wantCode: 400, want: "empty"},
		{name: "schedule bad JSON", method: "POST", path: api.SchedulePath, body: `{"job":`, wantCode: 400},
		{name: "schedule too large", method: "POST", path: api.SchedulePath, body: `{"job":"` + strings.Repeat("a", MaxRequestBytes) + `"}`, wantCode: 413, want: "larger than 65536 bytes"},
		{name: "schedule by GET", method: "GET", path: api.SchedulePath, wantCode: 405},

		{name: "assignment", method: "GET", path: api.AssignmentsPath + unitJob, wantCode: 200, want: `"cluster":"build01","reason":"balanced"`,
			check: func(t *testing.T, _ *fakeBackend, body string) {
				if strings.Contains(body, "override") {
					t.Errorf("an override in %s", body)
				}
			}},
		{name: "assignment with override", method: "GET", path: api.AssignmentsPath + unitJob,
			fake: func(f *fakeBackend) {
				f.overrides = []table.Override{{Job: unitJob, Cluster: "build01", Reason: "degraded"}}
			},
			wantCode: 200, want: `"override":{"job":"` + unitJob + `","cluster":"build01","reason":"degraded"`},
		{name: "assignment unknown", method: "GET", path: api.AssignmentsPath + "nope", wantCode: 404, want: `"error":`},
		{name: "explain", method: "GET", path: api.AssignmentsPath + unitJob + "/explain", wantCode: 200, want: `"steps":[{"rule":"balanced","matched":true`},
		{name: "explain unknown", method: "GET", path: api.AssignmentsPath + "nope/explain", wantCode: 404, want: "not found"},
		{name: "explain failing", method: "GET", path: api.AssignmentsPath + unitJob + "/explain",
			fake: func(f *fakeBackend) { f.explainErr = errors.New("boom") }, wantCode: 500, want: "boom"},
		{name: "clusters", method: "GET", path: api.ClustersPath,
			fake: func(f *fakeBackend) {
				f.clusters = []dispatch.ClusterStatus{{ClusterLoad: engine.ClusterLoad{Name: "build01", Capacity: 100, Jobs: 2}}}
			},
			wantCode: 200, want: `[{"name":"build01","capacity":100,"jobs":2,`},
		{name: "clusters none", method: "GET", path: api.ClustersPath, wantCode: 200, want: "[]"},
		{name: "overrides none", method: "GET", path: api.OverridesPath, wantCode: 200, want: "[]"},
		{name: "buildfarm", method: "GET", path: api.BuildFarmPath,
			fake: func(f *fakeBackend) {
				f.buildFarm = []byte("buildFarm:\n  aws:\n    build01:\n      filenames:\n      - a.yaml\ndefault: build01\n")
			},
			wantCode: 200, want: "buildFarm:\n  aws:\n    build01:"},
		{name: "buildfarm failing", method: "GET", path: api.BuildFarmPath,
			fake: func(f *fakeBackend) { f.buildFarmErr = errors.New("cannot render") }, wantCode: 500, want: "cannot render"},

		{name: "dispatch", method: "POST", path: api.DispatchPath, token: testToken, body: `{}`,
			fake:     func(f *fakeBackend) { f.report = &engine.Report{Jobs: 1000, Moves: moves, Imbalance: 1.02} },
			wantCode: 200,
			check: func(t *testing.T, _ *fakeBackend, body string) {
				var got api.DispatchResponse
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatal(err)
				}
				if got.Jobs != 1000 || got.Moved != 150 || len(got.Moves) != maxMoves || got.Imbalance != 1.02 {
					t.Errorf("jobs %d moved %d moves listed %d imbalance %v", got.Jobs, got.Moved, len(got.Moves), got.Imbalance)
				}
				if diff := cmp.Diff(map[string]int{"build02": 75, "build03": 75}, got.MovedTo); diff != "" {
					t.Errorf("movedTo (-want +got):\n%s", diff)
				}
			}},
		{name: "dispatch without body", method: "POST", path: api.DispatchPath, token: testToken,
			fake: func(f *fakeBackend) { f.report = &engine.Report{Jobs: 3} }, wantCode: 200, want: `"jobs":3`},
		{name: "dispatch unknown field", method: "POST", path: api.DispatchPath, token: testToken, body: `{"force":true}`, wantCode: 400,
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if f.dispatches != 0 {
					t.Error("dispatched on a refused request")
				}
			}},
		{name: "dispatch failing", method: "POST", path: api.DispatchPath, token: testToken,
			fake: func(f *fakeBackend) { f.dispatchErr = errors.New("cluster config: bad") }, wantCode: 500, want: "cluster config: bad"},

		{name: "reschedule", method: "POST", path: api.ReschedulePath, token: testToken,
			body: `{"job":"` + unitJob + `","cluster":"build02","ttl":"72h","reason":"build01 degraded"}`, wantCode: 200,
			want: `"from":"build01","to":"build02"`,
			check: func(t *testing.T, f *fakeBackend, _ string) {
				want := []dispatch.RescheduleRequest{{Job: unitJob, Cluster: "build02", TTL: 72 * time.Hour, Reason: "build01 degraded", By: "api"}}
				if diff := cmp.Diff(want, f.reschedules); diff != "" {
					t.Errorf("reschedules (-want +got):\n%s", diff)
				}
			}},
		{name: "reschedule by the plugin for a commenter", method: "POST", path: api.ReschedulePath, token: pluginToken,
			body: `{"job":"` + unitJob + `","reason":"flaky","by":"octocat"}`, wantCode: 200,
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if len(f.reschedules) != 1 || f.reschedules[0].By != "plugin for octocat" || f.reschedules[0].TTL != 0 {
					t.Errorf("reschedules %+v, want by \"plugin for octocat\"", f.reschedules)
				}
			}},
		{name: "reschedule claiming to be someone: the credential says who", method: "POST", path: api.ReschedulePath, token: testToken,
			body: `{"job":"` + unitJob + `","reason":"r","by":"plugin"}`, wantCode: 200,
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if len(f.reschedules) != 1 || f.reschedules[0].By != "api for plugin" {
					t.Errorf("reschedules %+v, want by \"api for plugin\"", f.reschedules)
				}
			}},
		{name: "reschedule not saved", method: "POST", path: api.ReschedulePath, token: testToken, body: `{"job":"j","reason":"r"}`,
			fake: func(f *fakeBackend) {
				f.rescheduleErr = fmt.Errorf("reschedule: in force, but %w: state dir /x: read-only", dispatch.ErrNotSaved)
			},
			wantCode: 507, want: "read-only"},
		{name: "clusters with a value JSON cannot hold", method: "GET", path: api.ClustersPath,
			fake: func(f *fakeBackend) {
				f.clusters = []dispatch.ClusterStatus{{ClusterLoad: engine.ClusterLoad{Name: "build01", Demand: math.Inf(1)}}}
			},
			wantCode: 500, want: "encoding the answer"},
		{name: "reschedule bad ttl", method: "POST", path: api.ReschedulePath, token: testToken, body: `{"job":"j","reason":"r","ttl":"3 days"}`, wantCode: 400, want: "ttl"},
		{name: "reschedule negative ttl", method: "POST", path: api.ReschedulePath, token: testToken, body: `{"job":"j","reason":"r","ttl":"-1h"}`, wantCode: 400, want: "ttl"},
		{name: "reschedule without reason", method: "POST", path: api.ReschedulePath, token: testToken, body: `{"job":"j"}`, wantCode: 400, want: "reason is required"},
		{name: "reschedule unknown job", method: "POST", path: api.ReschedulePath, token: testToken, body: `{"job":"nope","reason":"r"}`, wantCode: 404, want: "not found"},
		{name: "reschedule refused", method: "POST", path: api.ReschedulePath, token: testToken, body: `{"job":"j","reason":"r","cluster":"build04"}`,
			fake: func(f *fakeBackend) {
				f.rescheduleErr = fmt.Errorf("cluster build04 is blocked: %w", dispatch.ErrInvalid)
			},
			wantCode: 400, want: "cluster build04 is blocked"},
		{name: "delete override", method: "DELETE", path: api.ReschedulePath + "/" + unitJob, token: testToken,
			fake:     func(f *fakeBackend) { f.overrides = []table.Override{{Job: unitJob, Cluster: "build02"}} },
			wantCode: 204,
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if diff := cmp.Diff([]string{unitJob}, f.deleted); diff != "" {
					t.Errorf("deleted (-want +got):\n%s", diff)
				}
			}},
		{name: "delete missing override", method: "DELETE", path: api.ReschedulePath + "/" + unitJob, token: testToken, wantCode: 404, want: "no override"},

		{name: "dispatch without token", method: "POST", path: api.DispatchPath, wantCode: 401, want: "missing bearer token",
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if f.dispatches != 0 {
					t.Error("dispatched without a token")
				}
			}},
		{name: "dispatch wrong token", method: "POST", path: api.DispatchPath, token: "wrong", wantCode: 401, want: "invalid bearer token"},
		{name: "reschedule wrong token", method: "POST", path: api.ReschedulePath, token: testToken + "x", body: `{"job":"j","reason":"r"}`, wantCode: 401,
			check: func(t *testing.T, f *fakeBackend, _ string) {
				if len(f.reschedules) != 0 {
					t.Error("rescheduled with a wrong token")
				}
			}},
		{name: "delete without token", method: "DELETE", path: api.ReschedulePath + "/" + unitJob, wantCode: 401},
	}
	runAPICases(t, tests)
}

// apiCase is one request to the API over a fake backend and what it must answer.
type apiCase struct {
	name     string
	fake     func(*fakeBackend)
	method   string
	path     string
	token    string
	body     string
	wantCode int
	want     string // a substring of the body
	check    func(t *testing.T, f *fakeBackend, body string)
}

// runAPICases sends each case to its own API server over a fresh fake backend.
func runAPICases(t *testing.T, tests []apiCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeBackend()
			if tc.fake != nil {
				tc.fake(f)
			}
			srv := startAPI(t, f)
			code, body := call(t, tc.method, srv.URL+tc.path, tc.token, tc.body)
			if code != tc.wantCode {
				t.Errorf("HTTP %d, want %d: %s", code, tc.wantCode, body)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("body %s does not contain %s", body, tc.want)
			}
			if code >= 400 && code != 405 && !json.Valid([]byte(body)) {
				t.Errorf("error body is not JSON: %s", body)
			}
			if tc.check != nil {
				tc.check(t, f, body)
			}
		})
	}
}

// TestAPIClient drives the API through api.Client, the plugin's client.
func TestAPIClient(t *testing.T) {
	f := newFakeBackend()
	f.report = &engine.Report{Jobs: 2}
	srv := startAPI(t, f)
	c := &api.Client{BaseURL: srv.URL, Token: testToken}
	ctx := context.Background()

	as, err := c.Assignment(ctx, unitJob)
	if err != nil || as.Cluster != "build01" {
		t.Fatalf("Assignment: %+v, %v", as, err)
	}
	if _, err := c.Assignment(ctx, "nope"); !isStatus(err, 404) {
		t.Errorf("Assignment of an unknown job: %v, want a 404 StatusError", err)
	}
	if _, err := c.Dispatch(ctx); err != nil {
		t.Errorf("Dispatch: %v", err)
	}
	res, err := c.Reschedule(ctx, api.RescheduleRequest{Job: unitJob, Cluster: "build02", Reason: "test"})
	if err != nil || res.From != "build01" || res.To != "build02" || res.Job != unitJob {
		t.Errorf("Reschedule: %+v, %v", res, err)
	}
	if err := c.DeleteOverride(ctx, unitJob); err != nil {
		t.Errorf("DeleteOverride: %v", err)
	}
	bad := &api.Client{BaseURL: srv.URL, Token: "wrong"}
	if _, err := bad.Dispatch(ctx); !isStatus(err, 401) {
		t.Errorf("Dispatch with a wrong token: %v, want a 401 StatusError", err)
	}
}

func isStatus(err error, code int) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Code == code
}
