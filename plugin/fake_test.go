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

	// overrides are the drains and caps in force, by cluster, shown by Clusters.
	overrides map[string]api.Drain
	// stranding are the jobs a drain of build01 (the only arm64 cluster) strands.
	stranding []api.UnplaceableJob
	// health is each cluster's health, shown by Clusters.
	health map[string]api.ClusterHealth
	// clustersErr, when set, is the answer of Clusters alone.
	clustersErr error

	// plan answers Plan (nil: an empty plan); plans records the requests.
	plan  *api.PlanResponse
	plans []api.PlanRequest

	calls       int
	dispatches  int
	reschedules []api.RescheduleRequest
	drains      []fakeDrain
	undrains    []string // "cluster by"
	// inFlight and maxInFlight count the calls running at once.
	inFlight, maxInFlight int
}

// fakeDrain is one Drain call that reached the fake.
type fakeDrain struct {
	Cluster string
	Req     api.DrainRequest
}

func newFakeDispatcher() *fakeDispatcher {
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	return &fakeDispatcher{
		clusters:  sets.New("build01", "build02", "build03"),
		overrides: map[string]api.Drain{},
		stranding: []api.UnplaceableJob{
			{Job: "pull-ci-openshift-origin-main-e2e-aws-arm64", Problem: "no usable cluster meets capabilities [arm64]", Cluster: "build01"},
			{Job: "periodic-arm64-nightly", Problem: "no usable cluster meets capabilities [arm64]", Cluster: "build01"},
		},
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

// fakeCreated is when the fake's overrides are made.
func fakeCreated() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC) }

// Clusters lists the fake's clusters, each with its drain or cap.
func (d *fakeDispatcher) Clusters(ctx context.Context) ([]api.ClusterStatus, error) {
	defer d.end()
	if err := d.begin(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.clustersErr != nil {
		return nil, d.clustersErr
	}
	var out []api.ClusterStatus
	for _, name := range sets.List(d.clusters) {
		cs := api.ClusterStatus{Name: name, Capacity: 100}
		if o, ok := d.overrides[name]; ok {
			cs.Override, cs.Capacity = &o, o.Capacity
		}
		if h, ok := d.health[name]; ok {
			cs.Health = &h
		}
		out = append(out, cs)
	}
	return out, nil
}

// Drain records the call, then answers as the dispatcher would: 404 for an
// unknown cluster, 400 for a TTL that does not parse or is over 168h, 409
// for a drain of build01 without force (it strands d.stranding). Moves:
// unit to build02; a drain of build01 keeps d.stranding there; a preview
// changes nothing.
func (d *fakeDispatcher) Drain(ctx context.Context, cluster string, req api.DrainRequest) (*api.DrainPlan, error) {
	defer d.end()
	if err := d.begin(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drains = append(d.drains, fakeDrain{Cluster: cluster, Req: req})
	ttl, err := time.ParseDuration(req.TTL)
	switch {
	case !d.clusters.Has(cluster):
		return nil, notFound("drain: cluster %q is not in the cluster config", cluster)
	case err != nil || ttl <= 0:
		return nil, &api.StatusError{Code: http.StatusBadRequest, Message: fmt.Sprintf("ttl %q: want a positive duration such as \"4h\"", req.TTL)}
	case ttl > 168*time.Hour:
		return nil, &api.StatusError{Code: http.StatusBadRequest, Message: fmt.Sprintf("drain %s: ttl %s is over the maximum 168h0m0s: invalid", cluster, ttl)}
	}
	plan := &api.DrainPlan{DryRun: req.DryRun,
		Override: api.Drain{Cluster: cluster, Capacity: req.Capacity, Reason: req.Reason, By: "plugin for " + req.By, CreatedAt: fakeCreated(), Expires: fakeCreated().Add(ttl)},
		Moved:    1, Moves: []api.Move{{Job: "pull-ci-openshift-origin-main-unit", From: cluster, To: "build02", Reason: "balanced"}},
		Flows: map[string]api.Flow{"build02": {Jobs: 1, Demand: 900}},
	}
	if cluster == "build01" && req.Capacity == 0 {
		if !req.Force && !req.DryRun {
			return nil, &api.StatusError{Code: http.StatusConflict, Message: "drain: drain build01: would strand jobs: ...", Stranded: len(d.stranding), StrandedJobs: d.stranding}
		}
		plan.Stranded, plan.StrandedJobs = len(d.stranding), d.stranding
		plan.Staying = len(d.stranding)
		for _, u := range d.stranding {
			plan.StayingJobs = append(plan.StayingJobs, api.StayingJob{Job: u.Job, Reason: "capability", Detail: "unplaceable: " + u.Problem})
		}
	}
	if !req.DryRun {
		d.overrides[cluster] = plan.Override
	}
	return plan, nil
}

// Undrain records the call and cancels the cluster's drain or cap (404
// without one); the dispatch that followed moves unit back.
func (d *fakeDispatcher) Undrain(ctx context.Context, cluster, by string) (*api.UndrainResponse, error) {
	defer d.end()
	if err := d.begin(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.undrains = append(d.undrains, cluster+" "+by)
	o, ok := d.overrides[cluster]
	if !ok {
		return nil, notFound("undrain: cluster %q has no drain or capacity cap: not found", cluster)
	}
	delete(d.overrides, cluster)
	return &api.UndrainResponse{Cluster: cluster, Cancelled: &o, Dispatch: api.DispatchResponse{Jobs: 120, Moved: 1, MovedTo: map[string]int{cluster: 1}, Imbalance: 1.01}}, nil
}

// Plan records the request and answers d.plan.
func (d *fakeDispatcher) Plan(ctx context.Context, req api.PlanRequest) (*api.PlanResponse, error) {
	defer d.end()
	if err := d.begin(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.plans = append(d.plans, req)
	if d.plan == nil {
		return &api.PlanResponse{}, nil
	}
	out := *d.plan
	return &out, nil
}

// changes returns the drains and undrains that reached the fake so far.
func (d *fakeDispatcher) changes() ([]fakeDrain, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]fakeDrain(nil), d.drains...), append([]string(nil), d.undrains...)
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
