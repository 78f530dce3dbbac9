package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
)

// The job config's place in the release repository, as in openshift/release.
const (
	gitJobsDir       = "ci-operator/jobs"
	gitConfig        = "core-services/sanitize-prow-jobs/_config.yaml"
	gitClusters      = "core-services/sanitize-prow-jobs/_clusters.yaml"
	consoleJobsFile  = gitJobsDir + "/openshift/console/openshift-console-main-presubmits.yaml"
	pinnedLabelValue = "ci-operator.openshift.io/cluster: "
)

// TestJobConfigFromGit runs the dispatcher on the job config and both
// configs of a release repository served over HTTP by git http-backend.
// A push that pins a job to another cluster is in force within the fetch
// interval; with a long interval, it is in force as soon as the plugin
// gets the push event. A fetch that fails keeps the last good tree and
// shows in /readyz and the metrics.
func TestJobConfigFromGit(t *testing.T) {
	s := require(t)
	bin := s.requireBinary(t)
	ctx := testContext(t)
	root := t.TempDir()
	repo := newReleaseRepo(t, root)

	start := func(name string, interval time.Duration) *framework.ServeProcess {
		t.Helper()
		dir := filepath.Join(s.workDir, "jobconfig-git-"+name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		d, err := framework.StartServe(ctx, framework.ServeConfig{
			Bin: bin, Dir: dir, Name: "dispatcher-jobconfig-git-" + name,
			DispatcherConfig: gitConfig, ClusterConfig: gitClusters, JobConfig: gitJobsDir,
			PrometheusURL: s.prom.URL,
			ExtraArgs: []string{"--job-config-git-url", repo.url, "--configs-from-git", "--job-config-git-dir", filepath.Join(dir, "git"),
				"--job-config-git-interval", interval.String()},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Kill)
		return d
	}
	clusterOf := func(d *framework.ServeProcess) string {
		t.Helper()
		a, err := d.API.Assignment(ctx, jobConsolePinned)
		if err != nil {
			t.Fatalf("GET assignment of %s: %v", jobConsolePinned, err)
		}
		return a.Cluster
	}
	waitCluster := func(d *framework.ServeProcess, want string, within time.Duration) time.Duration {
		t.Helper()
		begin := time.Now()
		for clusterOf(d) != want {
			if time.Since(begin) > within {
				t.Fatalf("%s is on %q %s after the push, want %q; log:\n%s", jobConsolePinned, clusterOf(d), within, want, d.LogTail(3000))
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(begin)
	}

	// Within the fetch interval.
	d := start("interval", 2*time.Second)
	if got := clusterOf(d); got != "build03" {
		t.Fatalf("%s is on %q, want build03 as the repository pins it", jobConsolePinned, got)
	}
	repo.pin(t, "build01")
	took := waitCluster(d, "build01", 20*time.Second)
	t.Logf("a push was in force %s after it (fetch interval 2s)", took.Round(time.Millisecond))

	// A failing fetch keeps the last good tree and says so.
	repo.down(true)
	var ready struct {
		JobConfig struct {
			Revision, Error string
			Failures        int
		} `json:"jobConfig"`
	}
	eventually(t, 20*time.Second, "a failed fetch in /readyz", func() error {
		if err := getJSON(ctx, d.HealthURL+"/readyz", &ready); err != nil {
			return err
		}
		if ready.JobConfig.Error == "" {
			return fmt.Errorf("jobConfig %+v", ready.JobConfig)
		}
		return nil
	})
	if got := clusterOf(d); got != "build01" {
		t.Errorf("with the repository down, %s is on %q, want build01 from the last good tree", jobConsolePinned, got)
	}
	var metrics string
	if err := getText(ctx, d.HealthURL+"/metrics", &metrics); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics, `prowjob_dispatcher_job_config_git_fetches_total{result="error"}`) {
		t.Errorf("/metrics lacks the failed fetches")
	}
	d.Kill()

	// Down at start: the restarted dispatcher serves its saved table, says
	// why in /readyz, and takes the job config once a fetch works.
	d = start("interval", 2*time.Second)
	if got := clusterOf(d); got != "build01" {
		t.Errorf("restarted with the repository down, %s is on %q, want build01 from the saved table", jobConsolePinned, got)
	}
	if err := getJSON(ctx, d.HealthURL+"/readyz", &ready); err != nil || ready.JobConfig.Error == "" {
		t.Errorf("restarted with the repository down, /readyz jobConfig %+v (%v), want the fetch's error", ready.JobConfig, err)
	}
	repo.down(false)
	repo.pin(t, "build03")
	took = waitCluster(d, "build03", 30*time.Second)
	t.Logf("down at start: a push after the repository came back was in force %s after it", took.Round(time.Millisecond))
	d.Kill()

	// At once on the push event, with an interval that would not fetch.
	d = start("push", time.Hour)
	if got := clusterOf(d); got != "build03" {
		t.Fatalf("%s is on %q, want build03", jobConsolePinned, got)
	}
	gh := newFakeGitHub(t)
	hook := startPluginFor(t, s, d.Config.Dir, filepath.Join(s.moduleDir, "e2e", "testdata", "jobs"), d.APIURL, gh,
		"job_config_repo: openshift/release\njob_config_branch: master\n")
	sha := repo.pin(t, "build02")
	event, err := json.Marshal(map[string]any{
		"ref": "refs/heads/master", "after": sha,
		"repository": map[string]any{"name": "release", "full_name": "openshift/release", "owner": map[string]any{"login": "openshift"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if code := postEvent(t, hook, "push", event, pluginHMAC); code != http.StatusOK {
		t.Fatalf("the plugin answered the push event with %d", code)
	}
	took = waitCluster(d, "build02", 15*time.Second)
	t.Logf("a push was in force %s after its event (fetch interval 1h)", took.Round(time.Millisecond))
}

// TestJobConfigFromGitAuth: the repository wants basic auth, as a private
// HTTPS repository does. The token file is read at each fetch: a token the
// server no longer takes shows in /readyz naming the cause and the file,
// the last good tree stays in force, and writing the new token into the
// file brings the next push in without a restart.
func TestJobConfigFromGitAuth(t *testing.T) {
	s := require(t)
	bin := s.requireBinary(t)
	ctx := testContext(t)
	repo := newReleaseRepo(t, t.TempDir())
	repo.requireAuth("ci-bot", "first-token")
	dir := filepath.Join(s.workDir, "jobconfig-git-auth")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tokenPath := filepath.Join(dir, "git-token")
	writeToken := func(token string) {
		t.Helper()
		if err := os.WriteFile(tokenPath, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeToken("first-token")
	d, err := framework.StartServe(ctx, framework.ServeConfig{
		Bin: bin, Dir: dir, Name: "dispatcher-jobconfig-git-auth",
		DispatcherConfig: gitConfig, ClusterConfig: gitClusters, JobConfig: gitJobsDir,
		PrometheusURL: s.prom.URL,
		ExtraArgs: []string{"--job-config-git-url", repo.url, "--configs-from-git", "--job-config-git-dir", filepath.Join(dir, "git"),
			"--job-config-git-interval", "1s", "--job-config-git-token-path", tokenPath, "--job-config-git-username", "ci-bot"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Kill)
	clusterOf := func() string {
		t.Helper()
		a, err := d.API.Assignment(ctx, jobConsolePinned)
		if err != nil {
			t.Fatalf("GET assignment of %s: %v", jobConsolePinned, err)
		}
		return a.Cluster
	}
	if got := clusterOf(); got != "build03" {
		t.Fatalf("%s is on %q, want build03 as the repository pins it", jobConsolePinned, got)
	}

	// The server rotates the token; the file still has the old one.
	repo.requireAuth("ci-bot", "second-token")
	repo.pin(t, "build01")
	var ready struct {
		JobConfig struct{ Revision, Error string } `json:"jobConfig"`
	}
	eventually(t, 20*time.Second, "the refused token in /readyz", func() error {
		if err := getJSON(ctx, d.HealthURL+"/readyz", &ready); err != nil {
			return err
		}
		if !strings.Contains(ready.JobConfig.Error, "refused the credentials") || !strings.Contains(ready.JobConfig.Error, tokenPath) {
			return fmt.Errorf("jobConfig %+v, want an error naming the refused credentials and %s", ready.JobConfig, tokenPath)
		}
		return nil
	})
	t.Logf("/readyz jobConfig.error: %s", ready.JobConfig.Error)
	if strings.Contains(ready.JobConfig.Error, "first-token") || strings.Contains(d.LogTail(100000), "first-token") {
		t.Errorf("the token shows in /readyz or the log")
	}
	if got := clusterOf(); got != "build03" {
		t.Errorf("with the token refused, %s is on %q, want build03 from the last good tree", jobConsolePinned, got)
	}

	// The file is rotated too: the next fetch takes the push in.
	writeToken("second-token")
	begin := time.Now()
	for clusterOf() != "build01" {
		if time.Since(begin) > 20*time.Second {
			t.Fatalf("%s is on %q 20s after the token file was rotated, want build01; log:\n%s", jobConsolePinned, clusterOf(), d.LogTail(3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	ready.JobConfig.Error = "" // absent from the JSON when there is none
	if err := getJSON(ctx, d.HealthURL+"/readyz", &ready); err != nil || ready.JobConfig.Error != "" {
		t.Errorf("/readyz jobConfig %+v (%v) after the rotation, want no error", ready.JobConfig, err)
	}
}

// releaseRepo is openshift/release served by git http-backend.
type releaseRepo struct {
	url, work string
	srv       *httptest.Server
	isDown    chan bool
	auth      chan [2]string // username and password fetches need; none when the password is empty
}

// newReleaseRepo seeds openshift/release with the suite's job config and
// configs at their openshift/release paths and serves it over HTTP.
func newReleaseRepo(t *testing.T, root string) *releaseRepo {
	t.Helper()
	seed := filepath.Join(root, "seed")
	if err := framework.CopyDir("testdata/jobs", filepath.Join(seed, filepath.FromSlash(gitJobsDir))); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{"testdata/dispatcher.yaml": gitConfig, "testdata/clusters.yaml": gitClusters} {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(seed, filepath.FromSlash(to))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(seed, "README.md"), []byte("release\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, "", "init", "--initial-branch", "master", seed)
	gitRun(t, seed, "add", ".")
	gitRun(t, seed, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-m", "seed")
	bare := filepath.Join(root, "git", "openshift", "release")
	gitRun(t, "", "clone", "--bare", seed, bare)
	gitRun(t, bare, "config", "http.receivepack", "true")
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{Path: gitPath, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Join(root, "git"), "GIT_HTTP_EXPORT_ALL=1"}}
	r := &releaseRepo{work: filepath.Join(root, "work"), isDown: make(chan bool, 1), auth: make(chan [2]string, 1)}
	r.isDown <- false
	r.auth <- [2]string{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		down := <-r.isDown
		r.isDown <- down
		if down {
			http.Error(w, "503 the git server is down", http.StatusServiceUnavailable)
			return
		}
		auth := <-r.auth
		r.auth <- auth
		// Fetches need the credentials; the test's own pushes do not.
		push := strings.HasSuffix(req.URL.Path, "/git-receive-pack") || req.URL.Query().Get("service") == "git-receive-pack"
		if user, pass, ok := req.BasicAuth(); auth[1] != "" && !push && (!ok || user != auth[0] || pass != auth[1]) {
			w.Header().Set("WWW-Authenticate", `Basic realm="release"`)
			http.Error(w, "401 unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.url = r.srv.URL + "/openshift/release"
	gitRun(t, "", "clone", r.url, r.work)
	return r
}

// down makes the server answer 503 (true) or serve again (false).
func (r *releaseRepo) down(down bool) {
	<-r.isDown
	r.isDown <- down
}

// requireAuth makes fetches need this username and password (none when
// pass is empty).
func (r *releaseRepo) requireAuth(user, pass string) {
	<-r.auth
	r.auth <- [2]string{user, pass}
}

// pin pushes, over HTTP, a commit pinning the console's pinned job to
// cluster, and returns the commit.
func (r *releaseRepo) pin(t *testing.T, cluster string) string {
	t.Helper()
	p := filepath.Join(r.work, filepath.FromSlash(consoleJobsFile))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if at := strings.Index(l, pinnedLabelValue); at >= 0 {
			lines[i] = l[:at] + pinnedLabelValue + cluster
		}
	}
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, r.work, "-c", "user.name=e2e", "-c", "user.email=e2e@example.com", "commit", "-am", "pin to "+cluster)
	gitRun(t, r.work, "push", "origin", "master")
	out, err := exec.Command("git", "-C", r.work, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
