package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

const (
	backupOrg, backupRepo = "openshift", "release"
	backupBot             = "ci-robot"
	backupToken           = "e2e-github-token-5f1c"
	backupPath            = "core-services/sanitize-prow-jobs/_config.yaml"
	backupBranch          = "prowjob-dispatcher-buildfarm"
	backupTitle           = "Update the buildFarm from prowjob-dispatcher's table"
	// backupHead and backupTail surround the buildFarm section of the file
	// the release repository starts with; the backup must keep them.
	backupHead = `# OpenShift CI's dispatcher config (e2e): hand-edited keys stay as written.
default: build02   # the fallback
manualClusters:
  - vsphere02
`
	backupStaleSection = `buildFarm:
  gcp:
    build04:
      filenames:
      - stale-presubmits.yaml
`
	backupTail = `# Jobs that must run on one cluster.
groups:
  build03:
    jobs: [periodic-ci-image-import-to-build03]
`
)

// TestBackupPullRequest runs the dispatcher with the Git backup pointed at
// a real git smart-HTTP server (git http-backend over bare repositories:
// openshift/release and the bot's fork) and a fake GitHub that fails its
// first two pull request creations. Blocking a cluster moves jobs; the
// backup force-pushes the fork's branch with the file's buildFarm equal to
// GET /api/v1/buildfarm and every other line unchanged, and, after retrying
// the failing GitHub, opens one pull request with the title, head, base and
// labels; a second dispatch that moves jobs updates that pull request. The
// dispatch is never held up: the API answers throughout, and the
// token never reaches the log.
func TestBackupPullRequest(t *testing.T) {
	sc, gitSrv, gh, seed := startBackup(t, 2, "--backup-labels", "lgtm,approved")
	ctx := testContext(t)
	victim := blockBalancedCluster(sc)

	// The backup: the fork's branch holds the live buildFarm, and the pull
	// request is opened once GitHub stops failing.
	var live map[string]map[string]*config.BuildFarmCluster
	var pushed string
	eventually(t, 60*time.Second, "the backup branch to hold the live buildFarm", func() error {
		// The API answers while the backup runs: dispatch is not held up.
		var body string
		if err := getText(ctx, sc.d.APIURL+api.BuildFarmPath, &body); err != nil {
			return err
		}
		live = buildFarmOf(t, body)
		if pushed = gitSrv.show(backupBot, backupBranch, backupPath); pushed == "" {
			return fmt.Errorf("nothing pushed to %s/%s %s yet", backupBot, backupRepo, backupBranch)
		}
		if got := buildFarmOf(t, pushed); !reflect.DeepEqual(got, live) {
			return fmt.Errorf("pushed buildFarm %s, live %s", toJSON(got), toJSON(live))
		}
		return nil
	})
	if _, ok := live["aws"][victim]; ok && len(live["aws"][victim].Filenames) > 0 {
		t.Errorf("the live buildFarm still gives %s files: %v", victim, live["aws"][victim].Filenames)
	}
	if !strings.HasPrefix(pushed, backupHead) || !strings.HasSuffix(pushed, backupTail) || strings.Contains(pushed, "stale-presubmits.yaml") {
		t.Errorf("the pushed file does not keep the other keys as written, or keeps the stale section:\n%s", pushed)
	}
	if got := gitSrv.show(backupOrg, "master", backupPath); got != seed {
		t.Errorf("the base branch changed:\n%s", got)
	}
	if got := gitSrv.show(backupOrg, backupBranch, backupPath); got != "" {
		t.Errorf("the branch was pushed to the central repository too")
	}

	var pr *backupPR
	eventually(t, 60*time.Second, "the backup pull request", func() error {
		prs := gh.pullRequests()
		if len(prs) == 0 {
			return fmt.Errorf("no pull request yet (%d creations refused)", gh.refused())
		}
		if prs[0].labels == nil || len(prs[0].labels) < 2 {
			return fmt.Errorf("pull request #%d has labels %v", prs[0].Number, prs[0].labels)
		}
		pr = &prs[0]
		return nil
	})
	if n := len(gh.pullRequests()); n != 1 {
		t.Errorf("%d pull requests, want 1", n)
	}
	if gh.refused() != 2 {
		t.Errorf("GitHub refused %d creations, want 2 (then the retry succeeded)", gh.refused())
	}
	if pr.Title != backupTitle || pr.Head != backupBot+":"+backupBranch || pr.Base != "master" || !slices.Equal(pr.labels, []string{"lgtm", "approved"}) {
		t.Errorf("pull request %+v: want title %q, head %s:%s, base master, labels lgtm, approved", pr, backupTitle, backupBot, backupBranch)
	}
	if !gitSrv.pushedWithToken() {
		t.Error("no push carried the bot's login and token")
	}

	// A second dispatch that moves jobs (the other of build02 and build03
	// blocked too) updates the same pull request: no second one.
	other := map[string]string{"build02": "build03", "build03": "build02"}[victim]
	sc.setClusterBlocked(other)
	eventually(t, 60*time.Second, "the backup branch to follow the second dispatch", func() error {
		var body string
		if err := getText(ctx, sc.d.APIURL+api.BuildFarmPath, &body); err != nil {
			return err
		}
		live = buildFarmOf(t, body)
		if c := live["aws"][other]; c != nil && len(c.Filenames) > 0 {
			return fmt.Errorf("the live buildFarm still gives %s files", other)
		}
		if got := buildFarmOf(t, gitSrv.show(backupBot, backupBranch, backupPath)); !reflect.DeepEqual(got, live) {
			return fmt.Errorf("pushed buildFarm %s, live %s", toJSON(got), toJSON(live))
		}
		if n := gh.updates(); n == 0 {
			return errors.New("the pull request was not updated")
		}
		return nil
	})
	if prs := gh.pullRequests(); len(prs) != 1 || !slices.Equal(prs[0].labels, []string{"lgtm", "approved"}) {
		t.Errorf("after a second backup: pull requests %+v, want the one, its labels once", prs)
	}

	var metrics string
	if err := getText(ctx, sc.d.HealthURL+"/metrics", &metrics); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`prowjob_dispatcher_backup_runs_total\{result="error"\} [2-9]`,
		`prowjob_dispatcher_backup_runs_total\{result="pushed"\} [1-9]`,
		`prowjob_dispatcher_backup_pull_request ` + strconv.Itoa(pr.Number) + `\n`,
		`prowjob_dispatcher_backup_consecutive_failures 0\n`,
	} {
		if !regexp.MustCompile(re).MatchString(metrics) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
	var ready struct {
		Ready  bool `json:"ready"`
		Backup *struct {
			PullRequest int    `json:"pullRequest"`
			LastError   string `json:"lastError"`
			LastPush    string `json:"lastPush"`
		} `json:"backup"`
	}
	var readyz string
	if err := getText(ctx, sc.d.HealthURL+"/readyz", &readyz); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(readyz), &ready); err != nil {
		t.Fatalf("/readyz: %v: %s", err, readyz)
	}
	if !ready.Ready || ready.Backup == nil || ready.Backup.PullRequest != pr.Number || ready.Backup.LastError != "" || ready.Backup.LastPush == "" {
		t.Errorf("/readyz %s: want ready, backup with pullRequest %d, a last push and no error", readyz, pr.Number)
	}
	if log, err := os.ReadFile(sc.d.LogPath); err != nil {
		t.Error(err)
	} else if strings.Contains(string(log), backupToken) {
		t.Error("the GitHub token is in the dispatcher's log")
	}
}

// TestBackupDryRun: with --backup-dry-run a dispatch that moves jobs
// prints the unified diff of the file's buildFarm on stdout, and nothing is
// pushed and no pull request is asked of GitHub.
func TestBackupDryRun(t *testing.T) {
	sc, gitSrv, gh, seed := startBackup(t, 0, "--backup-dry-run")
	ctx := testContext(t)
	blockBalancedCluster(sc)
	var metrics string
	eventually(t, 60*time.Second, "a dry run", func() error {
		if err := getText(ctx, sc.d.HealthURL+"/metrics", &metrics); err != nil {
			return err
		}
		if !regexp.MustCompile(`prowjob_dispatcher_backup_runs_total\{result="dry_run"\} [1-9]`).MatchString(metrics) {
			return errors.New("no dry run counted yet")
		}
		return nil
	})
	log, err := os.ReadFile(sc.d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\n--- a/" + backupPath + "\n", "\n+++ b/" + backupPath + "\n", "\n-      - stale-presubmits.yaml\n", "\n+  aws:\n", "\n buildFarm:\n"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the dispatcher's output lacks the diff line %q:\n%s", want, sc.d.LogTail(40))
		}
	}
	if strings.Contains(string(log), "\n-default: build02") || strings.Contains(string(log), "\n-# Jobs that must run") {
		t.Error("the diff changes a line outside buildFarm")
	}
	if got := gitSrv.show(backupBot, backupBranch, backupPath); got != "" {
		t.Errorf("a dry run pushed to the fork:\n%s", got)
	}
	if got := gitSrv.show(backupOrg, "master", backupPath); got != seed {
		t.Errorf("a dry run changed the base branch:\n%s", got)
	}
	if n := len(gh.pullRequests()) + gh.updates() + gh.refused(); n != 0 {
		t.Errorf("a dry run asked GitHub for %d pull request changes", n)
	}
}

// startBackup starts a dispatcher whose Git backup points at a new git
// server (the release repository and the bot's fork, seeded with the
// returned file) and a new fake GitHub refusing failCreates pull requests.
func startBackup(t *testing.T, failCreates int, extraArgs ...string) (*scenario, *gitServer, *backupGitHub, string) {
	t.Helper()
	s := require(t)
	bin := s.requireBinary(t)
	ctx := testContext(t)
	dir, err := os.MkdirTemp(s.workDir, "backup-")
	if err != nil {
		t.Fatal(err)
	}
	seed := backupHead + backupStaleSection + backupTail
	gitSrv := newGitServer(t, filepath.Join(dir, "git"), map[string]string{backupPath: seed, "README.md": "release\n"})
	gh := newBackupGitHub(t, failCreates)

	sc := &scenario{t: t, s: s, name: "backup", dir: dir}
	if err := framework.CopyDir("testdata", filepath.Join(dir, "config")); err != nil {
		t.Fatalf("copying testdata: %v", err)
	}
	sc.config.dispatcher = filepath.Join(dir, "config", "dispatcher.yaml")
	sc.config.clusters = filepath.Join(dir, "config", "clusters.yaml")
	sc.config.jobs = filepath.Join(dir, "config", "jobs")
	tokenFile := filepath.Join(dir, "github-token")
	if err := os.WriteFile(tokenFile, []byte(backupToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sc.d, err = framework.StartServe(ctx, framework.ServeConfig{
		Bin: bin, Dir: dir, Name: "dispatcher-" + filepath.Base(dir),
		DispatcherConfig: sc.config.dispatcher, ClusterConfig: sc.config.clusters, JobConfig: sc.config.jobs,
		PrometheusURL: s.prom.URL,
		ExtraArgs: append([]string{
			"--backup-repo", backupOrg + "/" + backupRepo,
			"--backup-interval", "1s", "--backup-retry-delay", "1s",
			"--backup-cache-dir", filepath.Join(dir, "git-cache"),
			"--github-token-path", tokenFile,
			"--github-endpoint", gh.URL,
			"--github-host", strings.TrimPrefix(gitSrv.URL, "http://"),
			"--backup-git-insecure-http",
			"--github-client.max-retries", "1", "--github-client.initial-delay", "100ms",
		}, extraArgs...),
	})
	if err != nil {
		t.Fatalf("starting the dispatcher: %v", err)
	}
	t.Cleanup(func() { sc.d.Kill() })
	return sc, gitSrv, gh, seed
}

// blockBalancedCluster blocks build02 or build03, whichever holds balanced
// jobs, and waits for the file watch's dispatch to move them: a dispatch
// that moves jobs. It returns the blocked cluster.
func blockBalancedCluster(sc *scenario) string {
	t := sc.t
	t.Helper()
	before := map[string]string{}
	victim := ""
	for _, jobs := range balancedJobs {
		for _, job := range jobs {
			before[job] = sc.assignment(job).Cluster
			if c := before[job]; victim == "" && (c == "build02" || c == "build03") {
				victim = c
			}
		}
	}
	if victim == "" {
		t.Fatalf("no balanced job on build02 or build03: %v", before)
	}
	sc.setClusterBlocked(victim)
	eventually(t, 30*time.Second, "the file watch to move every job off "+victim, func() error {
		for job, was := range before {
			if was == victim && sc.assignment(job).Cluster == victim {
				return fmt.Errorf("%s still on %s", job, victim)
			}
		}
		return nil
	})
	return victim
}

// buildFarmOf decodes the buildFarm of a dispatcher config.
func buildFarmOf(t *testing.T, content string) map[string]map[string]*config.BuildFarmCluster {
	t.Helper()
	var cfg config.DispatcherConfig
	if err := yaml.Unmarshal([]byte(content), &cfg); err != nil {
		t.Fatalf("decoding a dispatcher config: %v\n%s", err, content)
	}
	return cfg.BuildFarm
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// gitServer serves bare repositories under root/<org>/<repo> over git's
// smart HTTP protocol (git http-backend as a CGI), asking for basic auth.
type gitServer struct {
	*httptest.Server
	t    *testing.T
	root string

	mu        sync.Mutex
	tokenPush bool // a receive-pack carried backupBot:backupToken
}

// newGitServer creates openshift/release with files on master and the
// bot's fork, a copy of it, and serves them.
func newGitServer(t *testing.T, root string, files map[string]string) *gitServer {
	t.Helper()
	work := filepath.Join(root, "seed")
	gitRun(t, "", "init", "--initial-branch", "master", work)
	for name, content := range files {
		p := filepath.Join(work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitRun(t, work, "add", ".")
	gitRun(t, work, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-m", "seed")
	for _, owner := range []string{backupOrg, backupBot} {
		bare := filepath.Join(root, owner, backupRepo)
		gitRun(t, "", "clone", "--bare", work, bare)
		gitRun(t, bare, "config", "http.receivepack", "true")
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	g := &gitServer{t: t, root: root}
	backend := &cgi.Handler{
		Path: gitPath, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if user != backupBot || pass != backupToken {
			http.Error(w, "bad credentials", http.StatusForbidden)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			g.mu.Lock()
			g.tokenPush = true
			g.mu.Unlock()
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

// show is the file at a branch of owner/release; "" when there is none.
func (g *gitServer) show(owner, branch, path string) string {
	cmd := exec.Command("git", "--git-dir", filepath.Join(g.root, owner, backupRepo), "show", branch+":"+path)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func (g *gitServer) pushedWithToken() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tokenPush
}

func gitRun(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// backupGitHub is the part of GitHub's REST API the backup uses, as prow's
// client calls it: the bot, the search for its open pull request, creating
// and updating it, and its labels. It refuses the first failCreates pull
// request creations with a 502.
type backupGitHub struct {
	*httptest.Server
	t *testing.T

	mu          sync.Mutex
	failCreates int
	refusals    int
	patches     int
	prs         []backupPR
}

// backupPR is a pull request the backup opened.
type backupPR struct {
	Number int    `json:"number"`
	Title  string `json:"title"`
	Body   string `json:"body"`
	Head   string `json:"head"`
	Base   string `json:"base"`
	labels []string
}

var (
	backupPullRE   = regexp.MustCompile(`^/repos/` + backupOrg + `/` + backupRepo + `/pulls/(\d+)$`)
	backupIssueRE  = regexp.MustCompile(`^/repos/` + backupOrg + `/` + backupRepo + `/issues/(\d+)$`)
	backupLabelsRE = regexp.MustCompile(`^/repos/` + backupOrg + `/` + backupRepo + `/issues/(\d+)/labels$`)
)

func newBackupGitHub(t *testing.T, failCreates int) *backupGitHub {
	g := &backupGitHub{t: t, failCreates: failCreates}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Close)
	return g
}

func (g *backupGitHub) serve(w http.ResponseWriter, r *http.Request) {
	g.t.Logf("fake GitHub: %s %s", r.Method, r.URL.RequestURI())
	if r.Header.Get("Authorization") != "Bearer "+backupToken && r.Header.Get("Authorization") != "token "+backupToken {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
		return
	}
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	defer g.mu.Unlock()
	number := func(re *regexp.Regexp) (int, bool) {
		m := re.FindStringSubmatch(r.URL.Path)
		if m == nil {
			return 0, false
		}
		n, _ := strconv.Atoi(m[1])
		return n, n >= 1 && n <= len(g.prs)
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/user":
		writeJSON(w, http.StatusOK, map[string]any{"login": backupBot, "name": "CI Robot", "email": "ci-robot@example.com", "id": 1})
	case r.Method == http.MethodGet && r.URL.Path == "/search/issues":
		q := strings.Fields(r.URL.Query().Get("q"))
		items := []any{}
		for _, pr := range g.prs {
			_, branch, _ := strings.Cut(pr.Head, ":")
			if slices.Contains(q, "repo:"+backupOrg+"/"+backupRepo) && slices.Contains(q, "author:"+backupBot) && slices.Contains(q, "head:"+branch) {
				items = append(items, map[string]any{"number": pr.Number, "title": pr.Title, "user": map[string]string{"login": backupBot}, "pull_request": map[string]any{}})
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"total_count": len(items), "incomplete_results": false, "items": items})
	case r.Method == http.MethodPost && r.URL.Path == "/repos/"+backupOrg+"/"+backupRepo+"/pulls":
		if g.failCreates > 0 {
			g.failCreates--
			g.refusals++
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": "Bad Gateway"})
			return
		}
		var pr backupPR
		if err := json.Unmarshal(body, &pr); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": err.Error()})
			return
		}
		pr.Number = len(g.prs) + 1
		g.prs = append(g.prs, pr)
		writeJSON(w, http.StatusCreated, map[string]any{"number": pr.Number, "title": pr.Title})
	case r.Method == http.MethodPatch && backupPullRE.MatchString(r.URL.Path):
		n, ok := number(backupPullRE)
		var edit struct{ Title, Body *string }
		if !ok || json.Unmarshal(body, &edit) != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
			return
		}
		g.patches++
		if edit.Title != nil {
			g.prs[n-1].Title = *edit.Title
		}
		if edit.Body != nil {
			g.prs[n-1].Body = *edit.Body
		}
		writeJSON(w, http.StatusOK, map[string]any{"number": n})
	case r.Method == http.MethodGet && backupIssueRE.MatchString(r.URL.Path):
		n, ok := number(backupIssueRE)
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
			return
		}
		labels := []any{}
		for _, l := range g.prs[n-1].labels {
			labels = append(labels, map[string]string{"name": l})
		}
		writeJSON(w, http.StatusOK, map[string]any{"number": n, "title": g.prs[n-1].Title, "labels": labels, "pull_request": map[string]any{}})
	case r.Method == http.MethodPost && backupLabelsRE.MatchString(r.URL.Path):
		n, ok := number(backupLabelsRE)
		var add []string
		if !ok || json.Unmarshal(body, &add) != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
			return
		}
		for _, l := range add {
			if !slices.Contains(g.prs[n-1].labels, l) {
				g.prs[n-1].labels = append(g.prs[n-1].labels, l)
			}
		}
		writeJSON(w, http.StatusOK, []any{})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
	}
}

func (g *backupGitHub) pullRequests() []backupPR {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]backupPR, len(g.prs))
	for i, pr := range g.prs {
		pr.labels = slices.Clone(pr.labels)
		out[i] = pr
	}
	return out
}

func (g *backupGitHub) updates() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.patches
}

func (g *backupGitHub) refused() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refusals
}
