package plugin

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/prow/pkg/github"
	"sigs.k8s.io/prow/pkg/github/fakegithub"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// Both the real client and the fake satisfy the plugin's view of the dispatcher.
var (
	_ dispatcherClient = (*api.Client)(nil)
	_ dispatcherClient = (*fakeDispatcher)(nil)
)

// fakeDispatcher is an in-memory dispatcherClient: it answers from its
// assignments and clusters, the way the dispatcher's API would, and records
// every call that reached it. It is safe for concurrent use.
type fakeDispatcher struct {
	mu          sync.Mutex
	assignments map[string]api.Assignment
	clusters    sets.Set[string]
	// err, when set, is every call's answer (after the call is counted).
	err error
	// delay holds every call this long, or until its context ends.
	delay time.Duration

	calls       int
	dispatches  int
	reschedules []api.RescheduleRequest
	// inFlight and maxInFlight count the calls running at once.
	inFlight, maxInFlight int
}

func newFakeDispatcher() *fakeDispatcher {
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	return &fakeDispatcher{
		clusters: sets.New("build01", "build02", "build03"),
		assignments: map[string]api.Assignment{
			"pull-ci-openshift-origin-main-unit": {
				Job: "pull-ci-openshift-origin-main-unit", Cluster: "build01", Reason: "balanced", Detail: "lowest load | of 3"},
			"pull-ci-openshift-origin-main-e2e-aws": {
				Job: "pull-ci-openshift-origin-main-e2e-aws", Cluster: "build03", Reason: "override",
				Override: &api.Override{Job: "pull-ci-openshift-origin-main-e2e-aws", Cluster: "build03", Reason: "aws quota", By: "alice", Expires: expires},
			},
		},
	}
}

// Errors the real client returns, for injection into the fake.
var (
	// errFakeFailure is the dispatcher answering 500.
	errFakeFailure = &api.StatusError{Code: http.StatusInternalServerError, Message: "fake failure"}
	// errUnreachable is what *api.Client returns when nothing listens at the dispatcher's address.
	errUnreachable = &url.Error{Op: "Post", URL: "http://prowjob-dispatcher:8080" + api.ReschedulePath,
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	// errReadTimeout is a network timeout (a net.Error whose Timeout is true) that is not a context's deadline.
	errReadTimeout = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
)

func notFound(format string, args ...any) error {
	return &api.StatusError{Code: http.StatusNotFound, Message: fmt.Sprintf(format, args...)}
}

// begin counts a call, holds it for delay and returns the injected error, if any.
func (d *fakeDispatcher) begin(ctx context.Context) error {
	d.mu.Lock()
	d.calls++
	d.inFlight++
	d.maxInFlight = max(d.maxInFlight, d.inFlight)
	delay, err := d.delay, d.err
	d.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	return err
}

func (d *fakeDispatcher) end() {
	d.mu.Lock()
	d.inFlight--
	d.mu.Unlock()
}

func (d *fakeDispatcher) Assignment(ctx context.Context, job string) (*api.Assignment, error) {
	defer d.end()
	if err := d.begin(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.assignments[job]
	if !ok {
		return nil, notFound("job %q: not found", job)
	}
	return &a, nil
}

func (d *fakeDispatcher) Dispatch(ctx context.Context) (*api.DispatchResponse, error) {
	defer d.end()
	if err := d.begin(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dispatches++
	return &api.DispatchResponse{Jobs: 120, Moved: 3, MovedTo: map[string]int{"build02": 2, "build01": 1}, Imbalance: 1.05,
		Unplaceable: 12, UnplaceableJobs: []api.UnplaceableJob{
			{Job: "pull-ci-gpu-e2e", Problem: "no usable cluster meets capabilities [gpu]", Cluster: "build04"},
			{Job: "pull-ci-gpu-new", Problem: "no usable cluster meets capabilities [gpu]"},
		}}, nil
}

// Reschedule records the request, then refuses an unknown job (404) or
// cluster (400); without a cluster the job moves to build02.
func (d *fakeDispatcher) Reschedule(ctx context.Context, req api.RescheduleRequest) (*api.RescheduleResponse, error) {
	defer d.end()
	if err := d.begin(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reschedules = append(d.reschedules, req)
	a, ok := d.assignments[req.Job]
	switch {
	case !ok:
		return nil, notFound("job %q: not found", req.Job)
	case req.Cluster != "" && !d.clusters.Has(req.Cluster):
		return nil, &api.StatusError{Code: http.StatusBadRequest, Message: fmt.Sprintf("cluster %q: unknown", req.Cluster)}
	}
	to := req.Cluster
	if to == "" {
		to = "build02"
	}
	ttl, _ := time.ParseDuration(req.TTL)
	created := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	return &api.RescheduleResponse{Job: req.Job, From: a.Cluster, To: to,
		Override: api.Override{Job: req.Job, Cluster: to, Reason: req.Reason, By: req.By, CreatedAt: created, Expires: created.Add(ttl)}}, nil
}

// snapshot returns what reached the fake so far.
func (d *fakeDispatcher) snapshot() (calls, dispatches int, reschedules []api.RescheduleRequest) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls, d.dispatches, append([]api.RescheduleRequest(nil), d.reschedules...)
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

// newTestPlugin wires a plugin to fake GitHub, a dispatcher (usually a
// *fakeDispatcher) and the testdata job config.
func newTestPlugin(t *testing.T, ghc githubClient, d dispatcherClient) *Plugin {
	t.Helper()
	p, err := New(Options{
		GitHub:     ghc,
		Dispatcher: d,
		Presubmits: JobConfigPresubmits("testdata/jobs"),
		Config:     testConfig(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
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
