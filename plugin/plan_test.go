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
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/httpapi"
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
		Demand:               demand.File{Path: filepath.Join(ex, "demand.yaml")},
		Logger:               logr.Discard(),
	}, stateDir(t))
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
	tok, err := httpapi.NewTokenFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&httpapi.API{Backend: d, Auth: httpapi.Authorizer{Token: tok}, Log: logr.Discard()}).Handler())
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
	} {
		if !strings.Contains(body, want) {
			t.Errorf("plan comment lacks %q:\n%s", want, body)
		}
	}
	for _, unwanted := range []string{"| `build03` | balanced |", "not planned yet", "job config file(s)", "add 0 job(s)"} {
		if strings.Contains(body, unwanted) {
			t.Errorf("plan comment has %q:\n%s", unwanted, body)
		}
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
		Clusters: []api.ClusterStatus{{Name: "build01", Capacity: 100, Jobs: 9000, Demand: 20000, BalancedDemand: 18000, ForcedDemand: 2000, Target: 19800, Ratio: 1.0101}},
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
		"| `build03` | 0 | 0.0 | 5000 | 12345.5 |", "| Cluster | State | Capacity | Jobs | Load | Balanced | Target | Load/target |", "| `build01` | usable | 100 | 9000 | 20000.0 | 18000.0 | 19800.0 | 1.01 |",
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

const (
	newJobFile    = DefaultJobConfigDir + "/openshift/new/openshift-new-main-presubmits.yaml"
	gone417       = DefaultJobConfigDir + "/openshift/origin/openshift-origin-release-4.17-presubmits.yaml"
	newPresubmits = `presubmits:
  openshift/new:
  - name: pull-ci-openshift-new-main-e2e-arm64
    labels:
      capability/arm64: arm64
  - name: pull-ci-openshift-new-main-e2e-kvm
    labels:
      devices.kubevirt.io/kvm: "true"
  - name: pull-ci-openshift-new-main-legacy
    agent: jenkins
`
)

// changeFiles makes the test PR change the files, each with its status
// and, unless removed, its content at sha.
func changeFiles(ghc *fakegithub.FakeClient, sha string, files ...github.PullRequestChange) {
	ghc.PullRequestChanges[testPR] = append([]github.PullRequestChange{{Filename: "README.md"}}, files...)
}

// putFile sets path's content at sha.
func putFile(ghc *fakegithub.FakeClient, path, sha, content string) {
	if ghc.RemoteFiles[path] == nil {
		ghc.RemoteFiles[path] = map[string]string{}
	}
	ghc.RemoteFiles[path][sha] = content
}

// TestPlanCommentOnJobConfigPR: with the real dispatcher behind the real
// API, a PR changing only job config files, one added and one deleted, gets
// a plan comment listing the new jobs with their clusters and the removed
// jobs with the clusters they are on; nothing changes in the dispatcher.
func TestPlanCommentOnJobConfigPR(t *testing.T) {
	d, client := realDispatcherAPI(t)
	before := d.Clusters()
	ghc := newFakeGitHub()
	ghc.PullRequests[testPR].Head.SHA = headSHA
	p := newTestPlugin(t, ghc, client)
	changeFiles(ghc, headSHA,
		github.PullRequestChange{Filename: newJobFile, Status: github.PullRequestFileAdded},
		github.PullRequestChange{Filename: gone417, Status: github.PullRequestFileRemoved},
		github.PullRequestChange{Filename: DefaultJobConfigDir + "/openshift/new/OWNERS", Status: github.PullRequestFileAdded})
	putFile(ghc, newJobFile, headSHA, newPresubmits)

	if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(github.PullRequestActionOpened, headSHA)); err != nil {
		t.Fatal(err)
	}
	comments := planComments(ghc)
	if len(comments) != 1 {
		t.Fatalf("comments %+v, want one plan comment", ghc.IssueComments[testPR])
	}
	body := comments[0].Body
	a1, a2 := d.Lookup("pull-ci-openshift-origin-release-4.17-unit")
	r1, r2 := d.Lookup("pull-ci-openshift-origin-release-4.17-e2e-aws")
	if !a2 || !r2 {
		t.Fatal("the 4.17 jobs have no rows in force")
	}
	for _, want := range []string{
		"**prowjob-dispatcher plan** for 2 job config file(s) under `ci-operator/jobs` at `0123456789ab`",
		"The job config files **add 3 job(s)** and **remove 2 job(s)**.",
		"| Cluster | Jobs added | Demand added | Jobs removed | Demand removed |",
		"| `build02` | 1 | ",
		"Jobs added (3):",
		"| `pull-ci-openshift-new-main-e2e-arm64` | `openshift/new/openshift-new-main-presubmits.yaml` | `build01` | capability |",
		"| `pull-ci-openshift-new-main-e2e-kvm` | `openshift/new/openshift-new-main-presubmits.yaml` | `build02` | kvm |",
		"| `pull-ci-openshift-new-main-legacy` | `openshift/new/openshift-new-main-presubmits.yaml` | none | agent \"jenkins\": not dispatched, left alone |",
		"Jobs removed (2):",
		"| `pull-ci-openshift-origin-release-4.17-e2e-aws` | `openshift/origin/openshift-origin-release-4.17-presubmits.yaml` | `" + r1.Cluster + "` | " + string(r1.Reason) + " |",
		"| `pull-ci-openshift-origin-release-4.17-unit` | `openshift/origin/openshift-origin-release-4.17-presubmits.yaml` | `" + a1.Cluster + "` | " + string(a1.Reason) + " |",
		"Load after the change:",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("plan comment lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "not planned yet") || strings.Contains(body, "left out") {
		t.Errorf("plan comment:\n%s", body)
	}
	if after := d.Clusters(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("planning changed the dispatcher:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestPlanCommentBrokenJobFile: a PR whose job config file does not load,
// or defines a job another file has, gets the validation error naming the
// files.
func TestPlanCommentBrokenJobFile(t *testing.T) {
	_, client := realDispatcherAPI(t)
	for name, tc := range map[string]struct {
		content string
		want    string
	}{
		"malformed YAML": {content: "presubmits:\n  openshift/new: [",
			want: "- `job config " + DefaultJobConfigDir + ": error unmarshalling " + newJobFile + ": "},
		"a job another file defines": {content: "periodics:\n- name: periodic-ci-openshift-ci-tools-master-e2e-rce\n  interval: 1h\n",
			want: "- `job config " + DefaultJobConfigDir + `: job "periodic-ci-openshift-ci-tools-master-e2e-rce" defined twice: ` +
				"periodic openshift/ci-tools/openshift-ci-tools-master-periodics.yaml and periodic openshift/new/openshift-new-main-presubmits.yaml`"},
	} {
		t.Run(name, func(t *testing.T) {
			ghc := newFakeGitHub()
			p := newTestPlugin(t, ghc, client)
			changeFiles(ghc, headSHA, github.PullRequestChange{Filename: newJobFile, Status: "modified"})
			putFile(ghc, newJobFile, headSHA, tc.content)
			if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(github.PullRequestActionSynchronize, headSHA)); err != nil {
				t.Fatal(err)
			}
			comments := planComments(ghc)
			if len(comments) != 1 {
				t.Fatalf("%d plan comments, want 1", len(comments))
			}
			for _, want := range []string{":x: **The proposed config does not load: 1 validation error(s).**", tc.want} {
				if !strings.Contains(comments[0].Body, want) {
					t.Errorf("plan comment lacks %q:\n%s", want, comments[0].Body)
				}
			}
		})
	}
}

// TestPlanCommentJobFilesBounded: a PR changing more job config files than
// a plan sends sends the first whole changes (a rename with its old path)
// within the bounds, says which it left out, and bounds the added and
// removed lists with their totals shown.
func TestPlanCommentJobFilesBounded(t *testing.T) {
	ghc := newFakeGitHub()
	fd := newFakeDispatcher()
	plan := &api.PlanResponse{Added: 400, Removed: 60,
		AddedTo:     map[string]api.Flow{"build01": {Jobs: 400, Demand: 400}},
		RemovedFrom: map[string]api.Flow{"build02": {Jobs: 60, Demand: 120}},
		Clusters:    []api.ClusterStatus{{Name: "build01", Capacity: 100}},
	}
	for i := range 100 {
		plan.AddedJobs = append(plan.AddedJobs, api.JobChange{Job: fmt.Sprintf("pull-new-%03d", i), File: "x.yaml", Cluster: "build01", Reason: "balanced"})
	}
	for i := range 60 {
		plan.RemovedJobs = append(plan.RemovedJobs, api.JobChange{Job: fmt.Sprintf("pull-old-%03d", i), File: "y.yaml", Cluster: "build02", Reason: "pinned"})
	}
	fd.plan = plan
	p := newTestPlugin(t, ghc, fd)
	var files []github.PullRequestChange
	for i := range maxPlanJobFiles - 1 {
		f := fmt.Sprintf("%s/org/r%03d/org-r%03d-main-presubmits.yaml", DefaultJobConfigDir, i, i)
		files = append(files, github.PullRequestChange{Filename: f, Status: "modified"})
		putFile(ghc, f, headSHA, "presubmits: {}\n")
	}
	// A rename would make the 101st file: it is left out whole.
	renamed := DefaultJobConfigDir + "/org/z/z-presubmits.yaml"
	files = append(files, github.PullRequestChange{Filename: renamed, PreviousFilename: DefaultJobConfigDir + "/org/z/old-presubmits.yaml", Status: "renamed"})
	putFile(ghc, renamed, headSHA, "presubmits: {}\n")
	changeFiles(ghc, headSHA, files...)
	if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(github.PullRequestActionOpened, headSHA)); err != nil {
		t.Fatal(err)
	}
	if len(fd.plans) != 1 || len(fd.plans[0].JobConfigFiles) != maxPlanJobFiles-1 || fd.plans[0].JobConfigDir != DefaultJobConfigDir {
		t.Fatalf("plan requests: %d, want one of %d files", len(fd.plans), maxPlanJobFiles-1)
	}
	if c := fd.plans[0].JobConfigFiles["org/r000/org-r000-main-presubmits.yaml"]; c == nil || *c != "presubmits: {}\n" {
		t.Errorf("first file sent as %v", c)
	}
	body := planComments(ghc)[0].Body
	for _, want := range []string{
		"for 101 job config file(s) under `ci-operator/jobs`",
		":warning: **2 of the 101 changed job config file(s) were left out**",
		"- `" + renamed + "`\n- `" + DefaultJobConfigDir + "/org/z/old-presubmits.yaml`\n",
		"The job config files **add 400 job(s)** and **remove 60 job(s)**.",
		"| `build01` | 400 | 400.0 | 0 | 0.0 |", "| `build02` | 0 | 0.0 | 60 | 120.0 |",
		"Jobs added (400):", "- ... and 350 more", "Jobs removed (60):", "- ... and 10 more",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("plan comment lacks %q", want)
		}
	}
	if n := strings.Count(body, "`pull-new-"); n != maxPlanItems {
		t.Errorf("%d added jobs listed, want %d", n, maxPlanItems)
	}
	if len(body) > maxReplyBytes {
		t.Errorf("plan comment of %d bytes, over %d", len(body), maxReplyBytes)
	}

	// Files over the byte budget are left out from the first that does not fit.
	ghc = newFakeGitHub()
	fd = newFakeDispatcher()
	p = newTestPlugin(t, ghc, fd)
	big := strings.Repeat("# a comment line\n", planRequestBudget/18/2)
	files = nil
	for _, name := range []string{"a", "b", "c"} {
		f := DefaultJobConfigDir + "/" + name + ".yaml"
		files = append(files, github.PullRequestChange{Filename: f, Status: "modified"})
		putFile(ghc, f, headSHA, big)
	}
	changeFiles(ghc, headSHA, files...)
	if err := p.HandlePullRequest(context.Background(), testLog(), prEvent(github.PullRequestActionOpened, headSHA)); err != nil {
		t.Fatal(err)
	}
	if len(fd.plans) != 1 || len(fd.plans[0].JobConfigFiles) != 1 {
		t.Fatalf("plan requests %d, want one of 1 file", len(fd.plans))
	}
	if n, _ := jsonLen(fd.plans[0]); n > api.MaxPlanRequestBytes {
		t.Errorf("request of %d bytes, over %d", n, api.MaxPlanRequestBytes)
	}
	if body := planComments(ghc)[0].Body; !strings.Contains(body, ":warning: **2 of the 3 changed job config file(s) were left out**") {
		t.Errorf("plan comment lacks the files left out:\n%.600s", body)
	}
}

// TestJobFileChanges: which changes of a PR are job config files of the
// plan, grouped by change, with the deleted ones marked.
func TestJobFileChanges(t *testing.T) {
	const dir = "ci-operator/jobs"
	got := jobFileChanges(dir, []github.PullRequestChange{
		{Filename: "ci-operator/jobs/a/a.yaml", Status: "modified"},
		{Filename: "ci-operator/jobs/a/b.yml", Status: "added"},
		{Filename: "ci-operator/jobs/a/c.yaml", Status: "removed"},
		{Filename: "ci-operator/jobs/a/OWNERS", Status: "added"},
		{Filename: "ci-operator/jobs/..data/d.yaml", Status: "added"},
		{Filename: "ci-operator/jobsx/e.yaml", Status: "added"},
		{Filename: "ci-operator/config/a/a.yaml", Status: "modified"},
		{Filename: "ci-operator/jobs/b/new.yaml", PreviousFilename: "ci-operator/jobs/b/old.yaml", Status: "renamed"},
		{Filename: "ci-operator/jobs/b/old.yaml", Status: "added"}, // re-added at the old path
		{Filename: "ci-operator/config/c.yaml", PreviousFilename: "ci-operator/jobs/c/moved.yaml", Status: "renamed"},
	})
	want := [][]jobFileChange{
		{{rel: "a/a.yaml"}}, {{rel: "a/b.yml"}}, {{rel: "a/c.yaml", deleted: true}},
		{{rel: "b/new.yaml"}}, {{rel: "b/old.yaml"}}, {{rel: "c/moved.yaml", deleted: true}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", got, want)
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
