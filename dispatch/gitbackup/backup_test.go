package gitbackup

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	fakeclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/prow/pkg/git/localgit"
	"sigs.k8s.io/prow/pkg/github"
	"sigs.k8s.io/prow/pkg/github/fakegithub"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
)

const (
	org, repoName = "openshift", "release"
	// baseConfig is the file on the base branch: comments, keys before and
	// after buildFarm, and an indented sequence Marshal would not write.
	baseConfig = `# The dispatcher config of OpenShift CI: edited by hand, buildFarm by the dispatcher.
default: build01
kvm:
  - build02   # the kvm cluster
buildFarm:
  aws:
    build01:
      filenames:
      - old-presubmits.yaml
# Groups pin jobs.
groups:
  build03:
    jobs: [periodic-foo]
`
)

// farmOf is a buildFarm of one cluster.
func farmOf(cluster string, files ...string) map[string]map[string]*config.BuildFarmCluster {
	return map[string]map[string]*config.BuildFarmCluster{"aws": {cluster: {Filenames: files}}}
}

// moved is a dispatch report that moved a job.
var moved = &engine.Report{Moves: []engine.Move{{Job: "pull-ci-foo", From: "build01", To: "build02"}}}

// testGitHub is prow's fake GitHub client (its bot user, and its AddLabel,
// which refuses a label added twice), with the pull request calls recorded
// here: the fake's do not keep title, head or labels, number from 0 and
// search ignores the query. It fails on demand.
type testGitHub struct {
	*fakegithub.FakeClient

	mu      sync.Mutex
	prs     map[int]*createdPR
	creates int
	labels  int      // AddLabel calls
	fail    int      // the next fail calls of CreatePullRequest and UpdatePullRequest fail
	block   chan int // when set, CreatePullRequest waits for a value on it
}

// createdPR is what CreatePullRequest was given, and what happened since.
type createdPR struct {
	title, body, head, base string
	updates                 int
	labels                  []string
}

func newTestGitHub() *testGitHub {
	return &testGitHub{FakeClient: fakegithub.NewFakeClient(), prs: map[int]*createdPR{}}
}

var errGitHubDown = errors.New("502 Bad Gateway")

func (g *testGitHub) failing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail > 0 {
		g.fail--
		return true
	}
	return false
}

func (g *testGitHub) CreatePullRequest(o, r, title, body, head, base string, canModify bool) (int, error) {
	if g.block != nil {
		<-g.block
	}
	if g.failing() {
		return 0, errGitHubDown
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.creates++
	n := len(g.prs) + 1 // GitHub numbers from 1 (the fake's own numbering starts at 0)
	g.prs[n] = &createdPR{title: title, body: body, head: head, base: base}
	return n, nil
}

// FindIssues answers the search the backup makes for its open pull
// request: by "head:<branch>" and "author:<bot>".
func (g *testGitHub) FindIssues(query, sort string, asc bool) ([]github.Issue, error) {
	bot, err := g.BotUser()
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(query)
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []github.Issue
	for n, pr := range g.prs {
		_, branch, _ := strings.Cut(pr.head, ":")
		if branch == "" {
			branch = pr.head
		}
		if slices.Contains(fields, "head:"+branch) && slices.Contains(fields, "author:"+bot.Login) {
			out = append(out, github.Issue{Number: n, Title: pr.title, User: github.User{Login: bot.Login}})
		}
	}
	return out, nil
}

func (g *testGitHub) UpdatePullRequest(o, r string, n int, title, body *string, open *bool, branch *string, canModify *bool) error {
	if g.failing() {
		return errGitHubDown
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	pr, ok := g.prs[n]
	if !ok {
		return errors.New("no such pull request")
	}
	pr.updates++
	if title != nil {
		pr.title = *title
	}
	if body != nil {
		pr.body = *body
	}
	return nil
}

func (g *testGitHub) GetIssue(o, r string, n int) (*github.Issue, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	pr, ok := g.prs[n]
	if !ok {
		return nil, errors.New("no such issue")
	}
	issue := &github.Issue{Number: n, Title: pr.title}
	for _, l := range pr.labels {
		issue.Labels = append(issue.Labels, github.Label{Name: l})
	}
	return issue, nil
}

func (g *testGitHub) AddLabel(o, r string, n int, label string) error {
	if err := g.FakeClient.AddLabel(o, r, n, label); err != nil { // errs on a label added twice
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.labels++
	g.prs[n].labels = append(g.prs[n].labels, label)
	return nil
}

// snapshot copies the pull requests for a test to read.
func (g *testGitHub) snapshot() map[int]createdPR {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[int]createdPR{}
	for n, pr := range g.prs {
		out[n] = *pr
	}
	return out
}

// fixture is one backup over a local repository.
type fixture struct {
	t     *testing.T
	b     *Backup
	lg    *localgit.LocalGit
	gh    *testGitHub
	clock *fakeclock.FakeClock
	reg   *prometheus.Registry
	diff  *bytes.Buffer

	mu   sync.Mutex
	farm map[string]map[string]*config.BuildFarmCluster
}

func newFixture(t *testing.T, edit func(*Options)) *fixture {
	t.Helper()
	lg, factory, err := localgit.NewV2()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lg.Clean(); _ = factory.Clean() })
	lg.InitialBranch = "master"
	if err := lg.MakeFakeRepo(org, repoName); err != nil {
		t.Fatal(err)
	}
	if err := lg.AddCommit(org, repoName, map[string][]byte{DefaultPath: []byte(baseConfig), "README.md": []byte("release\n")}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		t: t, lg: lg, gh: newTestGitHub(), reg: prometheus.NewRegistry(), diff: &bytes.Buffer{},
		clock: fakeclock.NewFakeClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)),
		farm:  farmOf("build01", "a-presubmits.yaml", "b-periodics.yaml"),
	}
	opts := Options{
		Org: org, Repo: repoName, Labels: []string{"lgtm", "approved"}, PushToFork: true,
		GitHub: f.gh, Git: factory, DiffOut: f.diff,
		BuildFarm: func() map[string]map[string]*config.BuildFarmCluster {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.farm
		},
		Clock: f.clock, Registerer: f.reg,
	}
	if edit != nil {
		edit(&opts)
	}
	if f.b, err = New(opts); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) setFarm(farm map[string]map[string]*config.BuildFarmCluster) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.farm = farm
}

// branchFile is the file on a branch of the repository; "" when the branch
// does not exist.
func (f *fixture) branchFile(branch string) string {
	f.t.Helper()
	cmd := exec.Command("git", "show", branch+":"+DefaultPath)
	cmd.Dir = filepath.Join(f.lg.Dir, org, repoName)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// want is the base file with the buildFarm replaced.
func want(t *testing.T, farm map[string]map[string]*config.BuildFarmCluster) string {
	t.Helper()
	out, err := config.ReplaceBuildFarm([]byte(baseConfig), farm)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (f *fixture) runs(result string) float64 {
	return testutil.ToFloat64(f.b.metrics.runs.WithLabelValues(result))
}

// waitFor polls cond for up to 20 s (git runs take real time).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunOnceCreatesThenUpdatesOnePR: the first backup pushes the head
// branch and opens a pull request with the title, head, base and labels; a
// second one with another farm pushes again and updates the same pull
// request (no second one, no label added twice); a third with the farm the
// base already has pushes nothing.
func TestRunOnceCreatesThenUpdatesOnePR(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fork     bool
		wantHead string
	}{
		{"to the bot's fork", true, "k8s-ci-robot:" + DefaultHeadBranch},
		{"to the repository", false, DefaultHeadBranch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.PushToFork = tc.fork })
			ctx := context.Background()

			result, n, err := f.b.runOnce(ctx)
			if err != nil || result != ResultPushed {
				t.Fatalf("first run: %s, %v; want pushed", result, err)
			}
			if got, w := f.branchFile(DefaultHeadBranch), want(t, farmOf("build01", "a-presubmits.yaml", "b-periodics.yaml")); got != w {
				t.Errorf("pushed file:\n%s\nwant\n%s", got, w)
			}
			if got := f.branchFile("master"); got != baseConfig {
				t.Errorf("the base branch changed:\n%s", got)
			}
			prs := f.gh.snapshot()
			pr, ok := prs[n]
			if len(prs) != 1 || !ok {
				t.Fatalf("pull requests %v, want #%d only", prs, n)
			}
			if pr.title != DefaultTitle || pr.head != tc.wantHead || pr.base != "master" || !strings.Contains(pr.body, "2 job files on 1 clusters") {
				t.Errorf("pull request %+v: want title %q, head %q, base master, a body counting 2 files", pr, DefaultTitle, tc.wantHead)
			}
			if strings.Join(pr.labels, ",") != "lgtm,approved" {
				t.Errorf("labels %v, want lgtm, approved", pr.labels)
			}

			second := farmOf("build02", "a-presubmits.yaml")
			f.setFarm(second)
			result, n2, err := f.b.runOnce(ctx)
			if err != nil || result != ResultPushed || n2 != n {
				t.Fatalf("second run: %s #%d, %v; want pushed #%d", result, n2, err, n)
			}
			if got, w := f.branchFile(DefaultHeadBranch), want(t, second); got != w {
				t.Errorf("second pushed file:\n%s\nwant\n%s", got, w)
			}
			prs = f.gh.snapshot()
			if len(prs) != 1 || f.gh.creates != 1 || prs[n].updates != 1 || f.gh.labels != 2 {
				t.Errorf("after the second run: %d pull requests, %d created, #%d updated %d times, %d labels added; want 1, 1, 1, 2",
					len(prs), f.gh.creates, n, prs[n].updates, f.gh.labels)
			}

			f.setFarm(farmOf("build01", "old-presubmits.yaml"))
			result, _, err = f.b.runOnce(ctx)
			if err != nil || result != ResultUnchanged {
				t.Fatalf("third run: %s, %v; want unchanged", result, err)
			}
			if got, w := f.branchFile(DefaultHeadBranch), want(t, second); got != w {
				t.Errorf("an unchanged run pushed:\n%s", got)
			}
			if f.gh.snapshot()[n].updates != 1 {
				t.Error("an unchanged run updated the pull request")
			}
		})
	}
}

// TestRunOnceNoDiff: a base that already holds the live buildFarm (in
// Marshal's form) gives no push and no GitHub call.
func TestRunOnceNoDiff(t *testing.T) {
	f := newFixture(t, nil)
	if want(t, farmOf("build01", "old-presubmits.yaml")) != baseConfig {
		t.Fatal("the fixture's buildFarm is not in Marshal's form")
	}
	f.setFarm(farmOf("build01", "old-presubmits.yaml"))
	result, n, err := f.b.runOnce(context.Background())
	if err != nil || result != ResultUnchanged || n != 0 {
		t.Fatalf("%s #%d, %v; want unchanged", result, n, err)
	}
	if got := f.branchFile(DefaultHeadBranch); got != "" {
		t.Errorf("the head branch was pushed:\n%s", got)
	}
	if len(f.gh.snapshot()) != 0 {
		t.Errorf("pull requests opened: %v", f.gh.snapshot())
	}
}

// TestRunOnceDryRun: a dry run prints a unified diff of the section only,
// and pushes and opens nothing (it has no GitHub client at all).
func TestRunOnceDryRun(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.DryRun, o.GitHub = true, nil })
	result, _, err := f.b.runOnce(context.Background())
	if err != nil || result != ResultDryRun {
		t.Fatalf("%s, %v; want dry_run", result, err)
	}
	diff := f.diff.String()
	for _, w := range []string{"--- a/" + DefaultPath, "+++ b/" + DefaultPath, "-      - old-presubmits.yaml\n", "+      - a-presubmits.yaml\n", "+      - b-periodics.yaml\n"} {
		if !strings.Contains(diff, w) {
			t.Errorf("diff lacks %q:\n%s", w, diff)
		}
	}
	for _, keep := range []string{"default: build01", "# Groups pin jobs.", "kvm:"} {
		if strings.Contains(diff, "-"+keep) || strings.Contains(diff, "+"+keep) {
			t.Errorf("the diff changes %q:\n%s", keep, diff)
		}
	}
	if got := f.branchFile(DefaultHeadBranch); got != "" {
		t.Errorf("a dry run pushed:\n%s", got)
	}
}

// TestRunOnceMissingFile: a path the base branch lacks is an error naming it.
func TestRunOnceMissingFile(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Path = "core-services/other/_config.yaml" })
	result, _, err := f.b.runOnce(context.Background())
	if result != ResultError || err == nil || !strings.Contains(err.Error(), "core-services/other/_config.yaml on master") {
		t.Fatalf("%s, %v; want an error naming the file", result, err)
	}
}

// TestRunMinInterval: Run backs up at once after the first dispatch that
// moved jobs; one inside the interval waits for its end (not dropped), and
// several there coalesce into one run; a report without moves asks nothing.
func TestRunMinInterval(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MinInterval = 24 * time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	f.b.Notify(&engine.Report{}) // moved nothing
	f.b.Notify(nil)
	time.Sleep(50 * time.Millisecond)
	if f.runs(ResultPushed)+f.runs(ResultUnchanged) != 0 || f.b.Status().Pending {
		t.Fatal("a dispatch that moved nothing started a backup")
	}

	t0 := f.clock.Now()
	f.b.Notify(moved)
	waitFor(t, "the first push", func() bool { return f.runs(ResultPushed) == 1 })
	if st := f.b.Status(); !st.LastPush.Equal(t0) || st.Pending || st.PullRequest == 0 {
		t.Errorf("status after the first push: %+v", st)
	}

	f.clock.Step(time.Hour)
	f.setFarm(farmOf("build02", "a-presubmits.yaml"))
	f.b.Notify(moved)
	f.b.Notify(moved)
	waitFor(t, "the deferred backup to wait", func() bool { return f.b.Status().Pending && f.clock.HasWaiters() })
	if next := f.b.Status().NextAttempt; !next.Equal(t0.Add(24 * time.Hour)) {
		t.Errorf("next attempt %s, want the interval's end %s", next, t0.Add(24*time.Hour))
	}
	f.clock.Step(22 * time.Hour)
	f.b.Notify(moved)
	time.Sleep(100 * time.Millisecond)
	if got := f.runs(ResultPushed); got != 1 {
		t.Fatalf("%v pushes inside the interval, want 1", got)
	}
	f.clock.Step(time.Hour)
	waitFor(t, "the deferred push", func() bool { return f.runs(ResultPushed) == 2 })
	if got, w := f.branchFile(DefaultHeadBranch), want(t, farmOf("build02", "a-presubmits.yaml")); got != w {
		t.Errorf("deferred push wrote\n%s\nwant\n%s", got, w)
	}
	time.Sleep(100 * time.Millisecond)
	if got := f.runs(ResultPushed) + f.runs(ResultUnchanged) + f.runs(ResultError); got != 2 {
		t.Errorf("%v runs for 5 notifications, want 2 (coalesced)", got)
	}
	if f.gh.creates != 1 {
		t.Errorf("%d pull requests created, want 1", f.gh.creates)
	}
}

// TestRunGitHubFailing: a failing GitHub is retried after a backoff that
// doubles, each failure is reported (Status, metrics), and a later success
// opens the pull request and clears the error.
func TestRunGitHubFailing(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.InitialBackoff, o.MaxBackoff = time.Minute, 90*time.Second })
	f.gh.fail = 3
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.b.Run(ctx) }()
	defer func() { cancel(); <-done }()

	f.b.Notify(moved)
	for i, backoff := range []time.Duration{time.Minute, 90 * time.Second, 90 * time.Second} { // doubled, then bounded
		waitFor(t, "a failure", func() bool { return f.runs(ResultError) == float64(i+1) && f.clock.HasWaiters() })
		st := f.b.Status()
		if st.ConsecutiveFailures != i+1 || !strings.Contains(st.LastError, "502 Bad Gateway") || !st.Pending {
			t.Fatalf("status after failure %d: %+v", i+1, st)
		}
		if want := st.LastAttempt.Add(backoff); !st.NextAttempt.Equal(want) {
			t.Errorf("failure %d: next attempt in %s, want %s", i+1, st.NextAttempt.Sub(st.LastAttempt), backoff)
		}
		if got := testutil.ToFloat64(f.b.metrics.failures); got != float64(i+1) {
			t.Errorf("consecutive failures gauge %v, want %d", got, i+1)
		}
		f.clock.Step(backoff - time.Second)
		time.Sleep(50 * time.Millisecond)
		if f.runs(ResultError) != float64(i+1) {
			t.Fatalf("retried before the backoff of %s", backoff)
		}
		f.clock.Step(time.Second)
	}
	waitFor(t, "the retry to succeed", func() bool { return f.runs(ResultPushed) == 1 })
	st := f.b.Status()
	if st.LastError != "" || st.ConsecutiveFailures != 0 || st.Pending || st.PullRequest == 0 || st.LastResult != ResultPushed {
		t.Errorf("status after the success: %+v", st)
	}
	if got := testutil.ToFloat64(f.b.metrics.pullRequest); got != float64(st.PullRequest) {
		t.Errorf("pull request gauge %v, want %d", got, st.PullRequest)
	}
	if got := testutil.ToFloat64(f.b.metrics.lastSuccess); got != float64(st.LastSuccess.Unix()) {
		t.Errorf("last success gauge %v, want %d", got, st.LastSuccess.Unix())
	}
	if n := len(f.gh.snapshot()); n != 1 {
		t.Errorf("%d pull requests after retries, want 1", n)
	}
}

// TestNotifyNeverBlocks: while a run hangs on GitHub, Notify returns at once.
func TestNotifyNeverBlocks(t *testing.T) {
	f := newFixture(t, nil)
	f.gh.block = make(chan int)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.b.Run(ctx) }()
	f.b.Notify(moved)
	waitFor(t, "the run to reach GitHub", func() bool {
		return f.branchFile(DefaultHeadBranch) != ""
	})
	start := time.Now()
	for range 1000 {
		f.b.Notify(moved)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 Notify calls took %s while a run hung", d)
	}
	close(f.gh.block)
	waitFor(t, "the run to end", func() bool { return f.runs(ResultPushed) == 1 })
	cancel()
	<-done
}

func TestNewValidates(t *testing.T) {
	base := func() Options {
		return Options{Org: "o", Repo: "r", Git: nil, GitHub: newTestGitHub(), BuildFarm: func() map[string]map[string]*config.BuildFarmCluster { return nil }}
	}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no git", func(*Options) {}, "no git client factory"},
		{"no repo", func(o *Options) { o.Repo = "" }, "want an org and a repo"},
		{"head is base", func(o *Options) { o.HeadBranch = "master" }, "is the base branch"},
		{"absolute path", func(o *Options) { o.Path = "/etc/passwd" }, "relative to the repository root"},
		{"path out of the repo", func(o *Options) { o.Path = "../x.yaml" }, "relative to the repository root"},
		{"no GitHub", func(o *Options) { o.GitHub = nil }, "no GitHub client"},
		{"backoff", func(o *Options) { o.InitialBackoff, o.MaxBackoff = time.Hour, time.Minute }, "max backoff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			tc.edit(&o)
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRunSurvivesPanic: a run that panics (here the BuildFarm func) is a
// failed run, retried after the backoff; Run goes on.
func TestRunSurvivesPanic(t *testing.T) {
	var calls int
	f := newFixture(t, nil)
	live := f.b.opts.BuildFarm
	f.b.opts.BuildFarm = func() map[string]map[string]*config.BuildFarmCluster {
		if calls++; calls == 1 {
			panic("boom")
		}
		return live()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	f.b.Notify(moved)
	waitFor(t, "the failed run", func() bool { return f.runs(ResultError) == 1 && f.clock.HasWaiters() })
	if st := f.b.Status(); !strings.Contains(st.LastError, "panic: boom") {
		t.Errorf("last error %q, want the panic", st.LastError)
	}
	f.clock.Step(DefaultInitialBackoff)
	waitFor(t, "the retry", func() bool { return f.runs(ResultPushed) == 1 })
}
