package plugin

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/prow/pkg/github"
	"sigs.k8s.io/prow/pkg/github/fakegithub"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

const (
	planToken = "plan-token"
	headSHA   = "0123456789abcdef0123456789abcdef01234567"
	nextSHA   = "fedcba9876543210fedcba9876543210fedcba98"
)

// realDispatcherAPI is the real dispatcher on the docs' example configs,
// dispatched once, behind the real HTTP API, with a client for it.
func realDispatcherAPI(t *testing.T) (*dispatch.Dispatcher, *api.Client) {
	t.Helper()
	ex := filepath.Join("..", "docs", "examples")
	d, err := dispatch.New(context.Background(), dispatch.Options{
		DispatcherConfigPath: filepath.Join(ex, "dispatcher.yaml"),
		ClusterConfigPath:    filepath.Join(ex, "clusters.yaml"),
		JobConfigDir:         filepath.Join(ex, "jobs"),
		StateDir:             t.TempDir(),
		Demand:               demand.File{Path: filepath.Join(ex, "demand.yaml")},
		Logger:               logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dispatch(context.Background()); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(planToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := webhook.NewTokenFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&webhook.API{Backend: d, Auth: webhook.Authorizer{Token: tok}, Log: logr.Discard()}).Handler())
	t.Cleanup(srv.Close)
	return d, &api.Client{BaseURL: srv.URL, Token: planToken}
}

// exampleClusters is docs/examples/clusters.yaml with edit applied.
func exampleClusters(t *testing.T, edit func(string) string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docs", "examples", "clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := edit(string(data))
	if out == string(data) {
		t.Fatal("the edit changed nothing")
	}
	return out
}

// blockOf sets blocked: true on a cluster of a cluster config.
func blockOf(cluster string) func(string) string {
	return func(s string) string {
		m := "- name: " + cluster + "\n"
		return strings.Replace(s, m, m+"  blocked: true\n", 1)
	}
}

// prEvent is a pull_request event of the test PR at head sha.
func prEvent(action github.PullRequestEventAction, sha string) github.PullRequestEvent {
	return github.PullRequestEvent{
		Action: action, Number: testPR,
		PullRequest: github.PullRequest{Number: testPR, Head: github.PullRequestBranch{SHA: sha}},
		Repo:        github.Repo{Owner: github.User{Login: testOrg}, Name: testRepo},
	}
}

// pushFile makes the test PR change path, with content at sha.
func pushFile(ghc *fakegithub.FakeClient, path, sha, content string) {
	ghc.PullRequestChanges[testPR] = []github.PullRequestChange{{Filename: "README.md"}, {Filename: path, Status: "modified"}}
	if ghc.RemoteFiles[path] == nil {
		ghc.RemoteFiles[path] = map[string]string{}
	}
	ghc.RemoteFiles[path][sha] = content
}

// planComments are the PR's comments with the plan marker.
func planComments(ghc *fakegithub.FakeClient) []github.IssueComment {
	var out []github.IssueComment
	for _, c := range ghc.IssueComments[testPR] {
		if strings.Contains(c.Body, planMarker) {
			out = append(out, c)
		}
	}
	return out
}

// TestPlanCommentOnConfigPR: with the real dispatcher behind the real API,
// a PR that blocks a cluster gets one plan comment listing the moves off it
// and the loads after; a second push edits that comment; /dispatch plan
// (by anyone) re-runs it without another comment; nothing changes in the
// dispatcher.
func TestPlanCommentOnConfigPR(t *testing.T) {
	d, client := realDispatcherAPI(t)
	before := d.Clusters()
	ghc := newFakeGitHub()
	ghc.PullRequests[testPR].Head.SHA = headSHA
	p := newTestPlugin(t, ghc, client)
	pushFile(ghc, DefaultClusterConfigPath, headSHA, exampleClusters(t, blockOf("build03")))

	if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(github.PullRequestActionOpened, headSHA)); err != nil {
		t.Fatal(err)
	}
	comments := planComments(ghc)
	if len(comments) != 1 || len(ghc.IssueComments[testPR]) != 1 {
		t.Fatalf("comments %+v, want one plan comment", ghc.IssueComments[testPR])
	}
	body := comments[0].Body
	for _, want := range []string{
		"**prowjob-dispatcher plan** for `" + DefaultClusterConfigPath + "` at `0123456789ab`",
		"job(s) move** (demand ",
		"| Cluster | Jobs in | Demand in | Jobs out | Demand out |",
		"| `build03` | 0 | 0.0 | ", // nothing flows in, everything but the rce job flows out
		"| `build03` | blocked | 50 | 1 |",
		"| Job | From | To | Reason |",
		"| `build03` | `build01` | balanced |",
		"| `build03` | `build02` | balanced |",
		"Jobs that would become unplaceable (1)",
		"- `periodic-ci-openshift-ci-tools-master-e2e-rce`: no usable cluster meets capabilities [rce]; kept on its last eligible cluster `build03`",
		"Changes to Prow job config files are not planned yet.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("plan comment lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "| `build03` | balanced |") {
		t.Errorf("jobs move onto the blocked build03:\n%s", body)
	}

	// A second push, now also blocking build02: the same comment is edited.
	pushFile(ghc, DefaultClusterConfigPath, nextSHA, exampleClusters(t, func(s string) string { return blockOf("build02")(blockOf("build03")(s)) }))
	ghc.PullRequests[testPR].Head.SHA = nextSHA
	if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(github.PullRequestActionSynchronize, nextSHA)); err != nil {
		t.Fatal(err)
	}
	// The first push's delivery arriving late changes nothing: the head moved past it.
	if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(github.PullRequestActionSynchronize, headSHA)); err != nil {
		t.Fatal(err)
	}
	if len(ghc.IssueComments[testPR]) != 1 || len(ghc.IssueCommentsEdited) != 1 {
		t.Fatalf("after a push: comments %d, edits %d; want the one comment edited", len(ghc.IssueComments[testPR]), len(ghc.IssueCommentsEdited))
	}
	edited := ghc.IssueCommentsEdited[0]
	if want := fmt.Sprintf("%s/%s#%d:", testOrg, testRepo, comments[0].ID); !strings.HasPrefix(edited, want) ||
		!strings.Contains(edited, "at `fedcba987654`") || !strings.Contains(edited, "| `build02` | blocked |") {
		t.Errorf("edit %.400s: want comment %d at the new head with build02 blocked", edited, comments[0].ID)
	}

	// /dispatch plan by a stranger re-runs it: another edit, no new comment.
	if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(stranger, "/dispatch plan")); err != nil {
		t.Fatal(err)
	}
	if len(ghc.IssueComments[testPR]) != 1 || len(ghc.IssueCommentsEdited) != 2 ||
		!strings.Contains(ghc.IssueCommentsEdited[1], "(re-run by @"+stranger+")") {
		t.Errorf("after /dispatch plan: comments %d, edits %q", len(ghc.IssueComments[testPR]), ghc.IssueCommentsEdited)
	}
	if after := d.Clusters(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("planning changed the dispatcher:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestPlanCommentValidationErrors: a PR whose config does not load gets the
// validation errors, each naming the repository file and the field.
func TestPlanCommentValidationErrors(t *testing.T) {
	_, client := realDispatcherAPI(t)
	for name, tc := range map[string]struct {
		path, content string
		want          []string
	}{
		"capacity 0": {
			path:    DefaultClusterConfigPath,
			content: exampleClusters(t, func(s string) string { return strings.Replace(s, "  capacity: 50\n", "  capacity: 0\n", 1) }),
			want: []string{"1 validation error(s)",
				"- `cluster config " + DefaultClusterConfigPath + `: aws[1].capacity: cluster "build03": capacity 0 not in 1..100` + "`"},
		},
		"a job listed twice in groups": {
			path:    DefaultDispatcherConfigPath,
			content: "default: build01\ngroups:\n  build03:\n    jobs: [periodic-a, periodic-a]\n",
			want:    []string{"- `dispatcher config " + DefaultDispatcherConfigPath + `: groups["build03"].jobs[1]: job "periodic-a" listed twice`},
		},
	} {
		t.Run(name, func(t *testing.T) {
			ghc := newFakeGitHub()
			p := newTestPlugin(t, ghc, client)
			pushFile(ghc, tc.path, headSHA, tc.content)
			if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(github.PullRequestActionOpened, headSHA)); err != nil {
				t.Fatal(err)
			}
			comments := planComments(ghc)
			if len(comments) != 1 {
				t.Fatalf("%d plan comments, want 1", len(comments))
			}
			for _, want := range append(tc.want, ":x: **The proposed config does not load") {
				if !strings.Contains(comments[0].Body, want) {
					t.Errorf("plan comment lacks %q:\n%s", want, comments[0].Body)
				}
			}
			if strings.Contains(comments[0].Body, "job(s) move") {
				t.Errorf("an invalid config got a plan:\n%s", comments[0].Body)
			}
		})
	}
}

// TestPlanCommentIgnored: PRs changing no config file, other actions and a
// config file of another path get no comment and reach no dispatcher;
// /dispatch plan on such a PR says there is nothing to plan.
func TestPlanCommentIgnored(t *testing.T) {
	for name, tc := range map[string]struct {
		changed string
		action  github.PullRequestEventAction
	}{
		"no config file":        {changed: "ci-operator/config/openshift/origin/main.yaml", action: github.PullRequestActionOpened},
		"a file of another dir": {changed: "core-services/other/_clusters.yaml", action: github.PullRequestActionSynchronize},
		"closed":                {changed: DefaultClusterConfigPath, action: github.PullRequestActionClosed},
		"labeled":               {changed: DefaultClusterConfigPath, action: github.PullRequestActionLabeled},
	} {
		t.Run(name, func(t *testing.T) {
			ghc := newFakeGitHub()
			fd := newFakeDispatcher()
			p := newTestPlugin(t, ghc, fd)
			pushFile(ghc, tc.changed, headSHA, "aws:\n- name: build01\n")
			if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(tc.action, headSHA)); err != nil {
				t.Fatal(err)
			}
			if len(ghc.IssueComments[testPR]) != 0 || len(fd.plans) != 0 {
				t.Errorf("comments %q, plans %+v; want none", ghc.IssueCommentsAdded, fd.plans)
			}
		})
	}
	ghc := newFakeGitHub()
	fd := newFakeDispatcher()
	p := newTestPlugin(t, ghc, fd)
	if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(stranger, "/dispatch plan")); err != nil {
		t.Fatal(err)
	}
	if len(ghc.IssueCommentsAdded) != 1 || !strings.Contains(ghc.IssueCommentsAdded[0], "there is nothing to plan") || len(fd.plans) != 0 {
		t.Errorf("/dispatch plan on a PR without config changes: comments %q, plans %+v", ghc.IssueCommentsAdded, fd.plans)
	}
}

// TestPlanCommentBounded: a huge diff lists at most maxPlanItems moves and
// unplaceable jobs, says how many more, and always shows the totals; the
// request carries both files at the head SHA with their repository paths.
func TestPlanCommentBounded(t *testing.T) {
	ghc := newFakeGitHub()
	fd := newFakeDispatcher()
	plan := &api.PlanResponse{Moved: 5000, MovedDemand: 12345.5, Unplaceable: 300,
		To:       map[string]api.Flow{"build01": {Jobs: 2500, Demand: 6000}, "build02": {Jobs: 2500, Demand: 6345.5}},
		From:     map[string]api.Flow{"build03": {Jobs: 5000, Demand: 12345.5}},
		Clusters: []api.ClusterStatus{{Name: "build01", Capacity: 100, Jobs: 9000, BalancedDemand: 20000, Target: 19800, Ratio: 1.0101}},
	}
	for i := range 100 {
		plan.Moves = append(plan.Moves, api.Move{Job: fmt.Sprintf("pull-ci-huge-%04d", i), From: "build03", To: "build01", Reason: "balanced"})
		plan.UnplaceableJobs = append(plan.UnplaceableJobs, api.UnplaceableJob{Job: fmt.Sprintf("gpu-%04d", i), Problem: "no usable cluster meets capabilities [gpu]"})
	}
	fd.plan = plan
	p := newTestPlugin(t, ghc, fd)
	pushFile(ghc, DefaultClusterConfigPath, headSHA, "clusters")
	ghc.PullRequestChanges[testPR] = append(ghc.PullRequestChanges[testPR], github.PullRequestChange{Filename: DefaultDispatcherConfigPath})
	ghc.RemoteFiles[DefaultDispatcherConfigPath] = map[string]string{headSHA: "dispatcher"}
	if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(github.PullRequestActionReopened, headSHA)); err != nil {
		t.Fatal(err)
	}
	if len(fd.plans) != 1 || *fd.plans[0].ClusterConfig != "clusters" || *fd.plans[0].DispatcherConfig != "dispatcher" ||
		fd.plans[0].ClusterConfigPath != DefaultClusterConfigPath || fd.plans[0].DispatcherConfigPath != DefaultDispatcherConfigPath {
		t.Fatalf("plan requests %+v, want both files at the head", fd.plans)
	}
	comments := planComments(ghc)
	if len(comments) != 1 {
		t.Fatalf("%d plan comments, want 1", len(comments))
	}
	body := comments[0].Body
	for _, want := range []string{"**5000 job(s) move** (demand 12345.5); **300 job(s) would become unplaceable**",
		"| `build03` | 0 | 0.0 | 5000 | 12345.5 |", "| `build01` | usable | 100 | 9000 | 20000.0 | 19800.0 | 1.01 |",
		"- ... and 4950 more", "- ... and 250 more", "Moves (5000)", "unplaceable (300)"} {
		if !strings.Contains(body, want) {
			t.Errorf("plan comment lacks %q", want)
		}
	}
	if n := strings.Count(body, "`pull-ci-huge-"); n != maxPlanItems {
		t.Errorf("%d moves listed, want %d", n, maxPlanItems)
	}
	if n := strings.Count(body, "`gpu-"); n != maxPlanItems {
		t.Errorf("%d unplaceable jobs listed, want %d", n, maxPlanItems)
	}
	if len(body) > maxReplyBytes {
		t.Errorf("plan comment of %d bytes, over %d", len(body), maxReplyBytes)
	}
}

// TestPlanCommentsOfConcurrentPushes: deliveries of one PR handled at once
// end with one plan comment, of the head.
func TestPlanCommentsOfConcurrentPushes(t *testing.T) {
	_, client := realDispatcherAPI(t)
	ghc := newFakeGitHub()
	ghc.PullRequests[testPR].Head.SHA = headSHA
	p := newTestPlugin(t, slowLister{ghc}, client)
	pushFile(ghc, DefaultClusterConfigPath, headSHA, exampleClusters(t, blockOf("build03")))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(github.PullRequestActionSynchronize, headSHA)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(planComments(ghc)); n != 1 {
		t.Errorf("%d plan comments after 4 concurrent deliveries, want 1", n)
	}
}

// slowLister widens the window between listing a PR's comments and
// commenting, as GitHub's latency does.
type slowLister struct{ *fakegithub.FakeClient }

func (s slowLister) ListIssueComments(org, repo string, number int) ([]github.IssueComment, error) {
	cs, err := s.FakeClient.ListIssueComments(org, repo, number)
	time.Sleep(50 * time.Millisecond)
	return cs, err
}
