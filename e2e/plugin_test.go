package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/prow/pkg/github"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/plugin"
)

const pluginHMAC = "e2e-hmac-secret"

// TestPluginRescheduleComment posts a signed `/reschedule` PR comment to the
// plugin process, which asks the dispatcher; the job's next ProwJob lands on
// the named cluster and the plugin replies on the PR through (fake) GitHub.
// A comment with a forged signature is refused and changes nothing.
func TestPluginRescheduleComment(t *testing.T) {
	sc := newScenario(t, "plugin", scenarioOptions{})
	gh := newFakeGitHub(t)
	hookURL := startPlugin(t, sc, gh)

	job := jobInstallerE2E
	from := sc.admit(job)
	to := "build03"
	if from == to {
		to = "build02"
	}

	forged := issueComment(t, "mallory", fmt.Sprintf("/reschedule %s %s", jobAPIVerify, to), 11)
	if code := postHook(t, hookURL, forged, "not-the-secret"); code != http.StatusForbidden {
		t.Errorf("a comment with a forged signature got HTTP %d, want 403", code)
	}
	if a := sc.assignment(jobAPIVerify); a.Override != nil {
		t.Errorf("a forged /reschedule created an override: %+v", a.Override)
	}

	payload := issueComment(t, "alice", fmt.Sprintf("Moving it.\n/reschedule %s %s\n", job, to), 12)
	if code := postHook(t, hookURL, payload, pluginHMAC); code != http.StatusOK {
		t.Fatalf("a signed /reschedule comment got HTTP %d, want 200", code)
	}
	eventually(t, 15*time.Second, "the dispatcher records the override from /reschedule", func() error {
		a := sc.assignment(job)
		if a.Override == nil || a.Override.Cluster != to {
			return fmt.Errorf("assignment %+v, override %+v", *a, a.Override)
		}
		return nil
	})
	if got := sc.admit(job); got != to {
		t.Errorf("after `/reschedule %s %s`, the next ProwJob landed on %q", job, to, got)
	}
	eventually(t, 15*time.Second, "the plugin replies on openshift/origin#1", func() error {
		for _, c := range gh.commentsOn("openshift/origin#1") {
			if strings.Contains(c, to) {
				return nil
			}
		}
		return fmt.Errorf("comments: %q", gh.commentsOn("openshift/origin#1"))
	})
}

// startPlugin runs `prowjob-dispatcher plugin` against the scenario's
// dispatcher and gh, and returns the URL GitHub events are posted to.
func startPlugin(t *testing.T, sc *scenario, gh *fakeGitHub) string {
	t.Helper()
	return startPluginFor(t, sc.s, sc.dir, sc.config.jobs, sc.d.APIURL, gh, "")
}

// startPluginFor runs `prowjob-dispatcher plugin` against the dispatcher at
// apiURL (whose token is dir/token) and gh, with extraConfig appended to its
// config, and returns the URL GitHub events are posted to.
func startPluginFor(t *testing.T, s *suite, dir, jobs, apiURL string, gh *fakeGitHub, extraConfig string) string {
	t.Helper()
	return startPluginWith(t, pluginOptions{
		bin: s.requireBinary(t), dir: filepath.Join(dir, "plugin"), hmac: pluginHMAC,
		jobConfig: jobs, dispatcherURL: apiURL, tokenFile: filepath.Join(dir, "token"), extraConfig: extraConfig,
	}, gh)
}

// pluginOptions say what a `prowjob-dispatcher plugin` process runs on.
type pluginOptions struct {
	// bin is the binary; dir receives its files and log.
	bin, dir string
	// hmac is the content of its --hmac-secret-file.
	hmac string
	// jobConfig, dispatcherURL and tokenFile are its job config, the
	// dispatcher's API and the dispatcher's token file.
	jobConfig, dispatcherURL, tokenFile string
	// extraConfig is appended to its plugin config.
	extraConfig string
}

// startPluginWith runs `prowjob-dispatcher plugin` as o says, against gh,
// and returns the URL GitHub events are posted to.
func startPluginWith(t *testing.T, o pluginOptions, gh *fakeGitHub) string {
	t.Helper()
	dir := o.dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"hmac":         o.hmac,
		"github-token": "e2e-github-token",
		"config.yaml":  "allowed_users: [alice]\ndefault_ttl: 1h\n" + o.extraConfig,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p, err := framework.StartProcess("plugin", dir, o.bin, "plugin",
		"--port", strconv.Itoa(port),
		"--hmac-secret-file", filepath.Join(dir, "hmac"),
		"--github-token-path", filepath.Join(dir, "github-token"),
		"--github-endpoint", gh.URL,
		"--plugin-config", filepath.Join(dir, "config.yaml"),
		"--job-config", o.jobConfig,
		"--dispatcher-url", o.dispatcherURL,
		"--dispatcher-token-file", o.tokenFile,
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(testContext(t), 30*time.Second)
	defer cancel()
	if err := p.WaitListening(ctx, base+"/"); err != nil {
		t.Fatal(err)
	}
	// Prow's event servers listen on /hook; plain external plugins on /.
	// The one that checks signatures refuses an unsigned event with 403.
	probe := issueComment(t, "nobody", "hello", 1)
	for _, path := range []string{"/hook", "/"} {
		if postHook(t, base+path, probe, "") == http.StatusForbidden {
			return base + path
		}
	}
	t.Fatalf("neither %s/hook nor %s/ refused an unsigned GitHub event with 403; plugin log:\n%s", base, base, p.LogTail(3000))
	return ""
}

// issueComment is a GitHub issue_comment "created" event on PR openshift/origin#1.
func issueComment(t *testing.T, login, body string, id int) []byte {
	t.Helper()
	user := map[string]any{"login": login, "id": id}
	repo := map[string]any{"name": "origin", "full_name": "openshift/origin", "owner": map[string]any{"login": "openshift"},
		"html_url": "https://github.com/openshift/origin"}
	ev := map[string]any{
		"action": "created",
		"issue": map[string]any{
			"number": 1, "state": "open", "title": "A change", "user": user,
			"html_url":     "https://github.com/openshift/origin/pull/1",
			"pull_request": map[string]any{"url": "https://api.github.com/repos/openshift/origin/pulls/1"},
		},
		"comment": map[string]any{"id": id, "body": body, "user": user,
			"html_url": fmt.Sprintf("https://github.com/openshift/origin/pull/1#issuecomment-%d", id)},
		"repository": repo,
	}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// postHook posts payload as GitHub does, signed with secret (unsigned when
// empty), and returns the HTTP status.
func postHook(t *testing.T, url string, payload []byte, secret string) int {
	t.Helper()
	return postEvent(t, url, "issue_comment", payload, secret)
}

// postEvent posts payload as GitHub does for event, signed with secret
// (unsigned when empty), and returns the HTTP status.
func postEvent(t *testing.T, url, event string, payload []byte, secret string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("e2e-%d", time.Now().UnixNano()))
	if secret != "" {
		req.Header.Set(plugin.SignatureHeader, github.PayloadSignature(payload, []byte(secret)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
