package plugin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/prow/pkg/github"
	"sigs.k8s.io/prow/pkg/github/fakegithub"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// stubToken is the bearer token the stub dispatcher wants on mutating calls.
const stubToken = "stub-token"

// stubDispatcher implements the few dispatcher API endpoints the plugin calls,
// with the webhook/api types, and records what reached it.
type stubDispatcher struct {
	mu          sync.Mutex
	assignments map[string]api.Assignment
	clusters    sets.Set[string]
	// failWith, when set, is the status of every answer.
	failWith    int
	requests    int
	reschedules []api.RescheduleRequest
	dispatches  int
}

func newStubDispatcher() *stubDispatcher {
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	return &stubDispatcher{
		clusters: sets.New("build01", "build02", "build03"),
		assignments: map[string]api.Assignment{
			"pull-ci-openshift-origin-main-unit": {Assignment: table.Assignment{
				Job: "pull-ci-openshift-origin-main-unit", Cluster: "build01", Reason: table.ReasonBalanced, Detail: "lowest load | of 3"}},
			"pull-ci-openshift-origin-main-e2e-aws": {
				Assignment: table.Assignment{Job: "pull-ci-openshift-origin-main-e2e-aws", Cluster: "build03", Reason: table.ReasonOverride},
				Override:   &table.Override{Job: "pull-ci-openshift-origin-main-e2e-aws", Cluster: "build03", Reason: "aws quota", By: "alice", Expires: expires},
			},
		},
	}
}

func (d *stubDispatcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests++
	if d.failWith != 0 {
		writeJSON(w, d.failWith, api.Error{Error: "stub failure"})
		return
	}
	mutating := r.Method != http.MethodGet
	if mutating && r.Header.Get("Authorization") != "Bearer "+stubToken {
		writeJSON(w, http.StatusUnauthorized, api.Error{Error: "bad token"})
		return
	}
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, api.AssignmentsPath):
		job := strings.TrimPrefix(r.URL.Path, api.AssignmentsPath)
		a, ok := d.assignments[job]
		if !ok {
			writeJSON(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("job %q: not found", job)})
			return
		}
		writeJSON(w, http.StatusOK, a)
	case r.Method == http.MethodPost && r.URL.Path == api.DispatchPath:
		d.dispatches++
		writeJSON(w, http.StatusOK, api.DispatchResponse{Jobs: 120, Moved: 3, MovedTo: map[string]int{"build02": 2, "build01": 1}, Imbalance: 1.05})
	case r.Method == http.MethodPost && r.URL.Path == api.ReschedulePath:
		var req api.RescheduleRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: err.Error()})
			return
		}
		d.reschedules = append(d.reschedules, req)
		a, ok := d.assignments[req.Job]
		switch {
		case !ok:
			writeJSON(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("job %q: not found", req.Job)})
			return
		case req.Cluster != "" && !d.clusters.Has(req.Cluster):
			writeJSON(w, http.StatusBadRequest, api.Error{Error: fmt.Sprintf("cluster %q: unknown", req.Cluster)})
			return
		}
		to := req.Cluster
		if to == "" {
			to = "build02"
		}
		ttl, _ := time.ParseDuration(req.TTL)
		created := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		writeJSON(w, http.StatusOK, api.RescheduleResponse{Job: req.Job, From: a.Cluster, To: to,
			Override: table.Override{Job: req.Job, Cluster: to, Reason: req.Reason, By: req.By, CreatedAt: created, Expires: created.Add(ttl)}})
	default:
		writeJSON(w, http.StatusNotFound, api.Error{Error: "no such endpoint"})
	}
}

func (d *stubDispatcher) snapshot() (requests, dispatches int, reschedules []api.RescheduleRequest) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests, d.dispatches, append([]api.RescheduleRequest(nil), d.reschedules...)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Test fixtures: the PR, its repo and the people.
const (
	testOrg     = "openshift"
	testRepo    = "origin"
	testPR      = 1234
	testPRURL   = "https://github.com/openshift/origin/pull/1234"
	orgMember   = "org-member"
	teamMember  = "team-member"
	listedUser  = "listed-user"
	stranger    = "stranger"
	testBotName = "k8s-ci-robot" // fakegithub's bot login
)

func newFakeGitHub() *fakegithub.FakeClient {
	ghc := fakegithub.NewFakeClient()
	ghc.PullRequests[testPR] = &github.PullRequest{Number: testPR, Base: github.PullRequestBranch{Ref: "main"}}
	ghc.OrgMembers[testOrg] = []string{orgMember}
	ghc.Teams = map[string]map[string]fakegithub.TeamWithMembers{
		"openshift-priv": {"test-platform": {Team: github.Team{Slug: "test-platform"}, Members: sets.New(teamMember)}},
	}
	return ghc
}

func testConfig(t *testing.T) *Config {
	t.Helper()
	cfg, err := LoadConfig("testdata/plugin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newTestPlugin wires a plugin to fake GitHub, a stub dispatcher over real
// HTTP and the testdata job config.
func newTestPlugin(t *testing.T, ghc githubClient, dispatcherURL string) *Plugin {
	t.Helper()
	p, err := New(Options{
		GitHub:     ghc,
		Dispatcher: &api.Client{BaseURL: dispatcherURL, Token: stubToken, HTTP: &http.Client{Timeout: 10 * time.Second}},
		Presubmits: JobConfigPresubmits("testdata/jobs"),
		Config:     testConfig(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func startStub(t *testing.T, d *stubDispatcher) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	return srv
}

func commentEvent(login, body string) github.IssueCommentEvent {
	return github.IssueCommentEvent{
		Action: github.IssueCommentActionCreated,
		Issue:  github.Issue{Number: testPR, HTMLURL: testPRURL, PullRequest: &struct{}{}},
		Comment: github.IssueComment{Body: body, User: github.User{Login: login},
			HTMLURL: testPRURL + "#issuecomment-1"},
		Repo: github.Repo{Owner: github.User{Login: testOrg}, Name: testRepo, FullName: testOrg + "/" + testRepo},
	}
}

func testLog() *logrus.Entry { return logrus.NewEntry(logrus.StandardLogger()) }
