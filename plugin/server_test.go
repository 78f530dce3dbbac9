package plugin

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/prow/pkg/github"
	"sigs.k8s.io/prow/pkg/pluginhelp"
	"sigs.k8s.io/prow/pkg/pluginhelp/externalplugins"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

const testHMAC = "the-hmac-secret"

// issueCommentPayload is testdata/issue_comment.json, a GitHub issue_comment
// delivery, with the comment's author and body set.
func issueCommentPayload(t *testing.T, login, body string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/issue_comment.json")
	if err != nil {
		t.Fatal(err)
	}
	var event map[string]any
	if err := json.Unmarshal(raw, &event); err != nil {
		t.Fatal(err)
	}
	comment := event["comment"].(map[string]any)
	comment["body"] = body
	comment["user"].(map[string]any)["login"] = login
	event["sender"].(map[string]any)["login"] = login
	out, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sha1Signature is GitHub's legacy X-Hub-Signature, "sha1=HEX".
func sha1Signature(payload []byte, key string) string {
	mac := hmac.New(sha1.New, []byte(key))
	mac.Write(payload)
	return "sha1=" + hex.EncodeToString(mac.Sum(nil))
}

// deliver posts a payload the way GitHub does and returns the status.
func deliver(t *testing.T, url, event string, payload []byte, headers map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	req.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// signed returns the signature header GitHub, hook and phony send for
// payload, made by prow's own github.PayloadSignature.
func signed(payload []byte, key string) map[string]string {
	return map[string]string{SignatureHeader: github.PayloadSignature(payload, []byte(key))}
}

// TestServer runs the plugin's HTTP server with signed GitHub deliveries
// against the in-memory fake dispatcher.
func TestServer(t *testing.T) {
	fake := newFakeDispatcher()
	ghc := newFakeGitHub()
	p := newTestPlugin(t, ghc, fake)
	s := NewServer(context.Background(), p, func() []byte { return []byte(testHMAC) }, testLog())
	mux := http.NewServeMux()
	mux.Handle("/", s)
	externalplugins.ServeExternalPluginHelp(mux, testLog(), p.HelpProvider)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	reschedule := issueCommentPayload(t, orgMember, "Moving it off build01.\r\n/reschedule pull-ci-openshift-origin-main-unit build03\r\n")
	oversized := issueCommentPayload(t, orgMember, "/reschedule pull-ci-openshift-origin-main-unit build03\n"+strings.Repeat("x", MaxPayloadBytes))
	cases := []struct {
		name    string
		event   string
		payload []byte
		headers map[string]string
		want    int
		// wantReschedules is the number of reschedule requests that reached the dispatcher so far.
		wantReschedules int
		wantComments    int
	}{
		{name: "forged signatures", event: "issue_comment", payload: reschedule, headers: signed(reschedule, "not-the-secret"), want: http.StatusForbidden},
		{name: "no signature", event: "issue_comment", payload: reschedule, want: http.StatusForbidden},
		{name: "a SHA-1 signature alone is no longer accepted", event: "issue_comment", payload: reschedule, headers: map[string]string{
			"X-Hub-Signature": sha1Signature(reschedule, testHMAC)}, want: http.StatusForbidden},
		{name: "SHA-256 without its prefix", event: "issue_comment", payload: reschedule, headers: map[string]string{
			SignatureHeader: strings.TrimPrefix(github.PayloadSignature(reschedule, []byte(testHMAC)), "sha256=")}, want: http.StatusForbidden},
		{name: "SHA-256 not hex", event: "issue_comment", payload: reschedule, headers: map[string]string{SignatureHeader: "sha256=zz"}, want: http.StatusForbidden},
		{name: "signature of another payload", event: "issue_comment", payload: reschedule,
			headers: signed(issueCommentPayload(t, orgMember, "hi"), testHMAC), want: http.StatusForbidden},
		{name: "oversized payload", event: "issue_comment", payload: oversized, headers: signed(oversized, testHMAC), want: http.StatusRequestEntityTooLarge},
		{name: "missing event header", payload: reschedule, headers: signed(reschedule, testHMAC), want: http.StatusBadRequest},
		{name: "other events are acknowledged and ignored", event: "push", payload: reschedule, headers: signed(reschedule, testHMAC), want: http.StatusOK},
		{name: "signed as GitHub and hook send it", event: "issue_comment", payload: reschedule, headers: signed(reschedule, testHMAC),
			want: http.StatusOK, wantReschedules: 1, wantComments: 1},
		{name: "a valid SHA-256 beside an old SHA-1 header", event: "issue_comment", payload: reschedule, headers: map[string]string{
			SignatureHeader: github.PayloadSignature(reschedule, []byte(testHMAC)), "X-Hub-Signature": sha1Signature(reschedule, testHMAC)},
			want: http.StatusOK, wantReschedules: 2, wantComments: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := deliver(t, srv.URL, tc.event, tc.payload, tc.headers); got != tc.want {
				t.Fatalf("status = %d, want %d", got, tc.want)
			}
			s.Wait()
			_, _, reschedules := fake.snapshot()
			if len(reschedules) != tc.wantReschedules {
				t.Fatalf("%d reschedule requests reached the dispatcher, want %d", len(reschedules), tc.wantReschedules)
			}
			if len(ghc.IssueCommentsAdded) != tc.wantComments {
				t.Fatalf("%d comments, want %d: %q", len(ghc.IssueCommentsAdded), tc.wantComments, ghc.IssueCommentsAdded)
			}
			if tc.wantReschedules == 0 {
				return
			}
			want := api.RescheduleRequest{Job: "pull-ci-openshift-origin-main-unit", Cluster: "build03", TTL: "72h0m0s",
				Reason: "requested by @org-member in https://github.com/openshift/origin/pull/1234", By: orgMember}
			if got := reschedules[len(reschedules)-1]; got != want {
				t.Errorf("reschedule request = %+v, want %+v", got, want)
			}
			last := ghc.IssueCommentsAdded[len(ghc.IssueCommentsAdded)-1]
			for _, w := range []string{
				"openshift/origin#1234:@org-member: moved `pull-ci-openshift-origin-main-unit`: `build01` → `build03`.",
				"In response to [this](https://github.com/openshift/origin/pull/1234#issuecomment-2498765432)",
				">/reschedule pull-ci-openshift-origin-main-unit build03",
			} {
				if !strings.Contains(last, w) {
					t.Errorf("reply lacks %q:\n%s", w, last)
				}
			}
		})
	}

	t.Run("dispatch by a stranger", func(t *testing.T) {
		payload := issueCommentPayload(t, stranger, "/dispatch")
		if got := deliver(t, srv.URL, "issue_comment", payload, signed(payload, testHMAC)); got != http.StatusOK {
			t.Fatalf("status = %d", got)
		}
		s.Wait()
		last := ghc.IssueCommentsAdded[len(ghc.IssueCommentsAdded)-1]
		if !strings.Contains(last, "| `pull-ci-openshift-origin-main-unit` | `build01` |") {
			t.Errorf("reply lacks the table:\n%s", last)
		}
	})

	t.Run("pull_request of a config PR gets a plan comment", func(t *testing.T) {
		pushFile(ghc, DefaultClusterConfigPath, headSHA, "aws:\n- name: build01\n")
		fake.plan = &api.PlanResponse{Moved: 7, MovedDemand: 70}
		payload, err := json.Marshal(prEvent(github.PullRequestActionSynchronize, headSHA))
		if err != nil {
			t.Fatal(err)
		}
		if got := deliver(t, srv.URL, "pull_request", payload, signed(payload, testHMAC)); got != http.StatusOK {
			t.Fatalf("status = %d", got)
		}
		s.Wait()
		if c := planComments(ghc); len(c) != 1 || !strings.Contains(c[0].Body, "**7 job(s) move** (demand 70.0)") {
			t.Errorf("plan comments %+v, want one with the fake's plan", c)
		}
	})

	t.Run("help", func(t *testing.T) {
		// Prow's hook posts the repos that enable the plugin.
		resp, err := http.Post(srv.URL+"/help", "application/json", strings.NewReader(`[{"Org":"openshift","Repo":"origin"}]`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		var help pluginhelp.PluginHelp
		if err := json.NewDecoder(resp.Body).Decode(&help); err != nil {
			t.Fatal(err)
		}
		var usages []string
		for _, c := range help.Commands {
			if c.Description == "" || c.WhoCanUse == "" || len(c.Examples) == 0 {
				t.Errorf("command %q lacks a description, who can use it or examples", c.Usage)
			}
			usages = append(usages, c.Usage)
		}
		if got, want := fmt.Sprint(usages), "[/dispatch /dispatch refresh /dispatch plan /reschedule <job-name> [cluster] "+drainUsage+" "+capUsage+" "+undrainUsage+"]"; got != want {
			t.Errorf("commands = %s, want %s", got, want)
		}
		if !strings.Contains(help.Commands[3].WhoCanUse, "`openshift`") {
			t.Errorf("/reschedule's WhoCanUse does not name the allowed org: %q", help.Commands[3].WhoCanUse)
		}
	})
}

// TestServerHierarchicalSecret checks that the plugin reads hook's secret
// file format, an org/repo -> tokens map where the most specific entry wins.
func TestServerHierarchicalSecret(t *testing.T) {
	secret := []byte(`
openshift/origin:
- value: repo-token
  created_at: 2026-01-01T00:00:00Z
openshift:
- value: org-token
  created_at: 2026-01-01T00:00:00Z
'*':
- value: global-token
  created_at: 2026-01-01T00:00:00Z
`)
	fake := newFakeDispatcher()
	p := newTestPlugin(t, newFakeGitHub(), fake)
	s := NewServer(context.Background(), p, func() []byte { return secret }, testLog())
	srv := httptest.NewServer(s)
	defer srv.Close()
	payload := issueCommentPayload(t, orgMember, "/reschedule pull-ci-openshift-origin-main-unit build03")
	cases := []struct {
		key  string
		want int
	}{
		{key: "repo-token", want: http.StatusOK},
		{key: "org-token", want: http.StatusForbidden},    // shadowed by the repo's entry
		{key: "global-token", want: http.StatusForbidden}, // shadowed too
		{key: "the-hmac-secret", want: http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			if got := deliver(t, srv.URL, "issue_comment", payload, signed(payload, tc.key)); got != tc.want {
				t.Errorf("status = %d, want %d", got, tc.want)
			}
		})
	}
}
