package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// TestRealAPIClient is the only plugin test that speaks HTTP to a dispatcher;
// every other test uses fakeDispatcher. It wires the plugin to the real
// *api.Client, as cmd/prowjob-dispatcher does, against an httptest server that
// answers a single route (POST api.ReschedulePath), to check what only the
// HTTP path can show: the bearer token is sent, the request and response
// survive the wire, and the client's own errors (its timeout, a refused
// connection) get the same replies as the errors fakeDispatcher injects.
func TestRealAPIClient(t *testing.T) {
	const token, slowJob = "the-token", "slow-job"
	var (
		mu       sync.Mutex
		received []api.RescheduleRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reply := func(code int, v any) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(v)
		}
		if r.Method != http.MethodPost || r.URL.Path != api.ReschedulePath {
			reply(http.StatusNotFound, api.Error{Error: "no such endpoint"})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			reply(http.StatusUnauthorized, api.Error{Error: "bad token"})
			return
		}
		var req api.RescheduleRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			reply(http.StatusBadRequest, api.Error{Error: err.Error()})
			return
		}
		mu.Lock()
		received = append(received, req)
		mu.Unlock()
		if req.Job == slowJob {
			<-r.Context().Done() // never answers; the client gives up
			return
		}
		created := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		ttl, _ := time.ParseDuration(req.TTL)
		reply(http.StatusOK, api.RescheduleResponse{Job: req.Job, From: "build01", To: req.Cluster,
			Override: api.Override{Job: req.Job, Cluster: req.Cluster, Reason: req.Reason, By: req.By, CreatedAt: created, Expires: created.Add(ttl)}})
	}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	cases := []struct {
		name    string
		url     string
		token   string
		timeout time.Duration
		job     string
		want    string
		// wantReceived is whether the request reached the server.
		wantReceived bool
	}{
		{name: "the token is sent and the answer decoded", url: srv.URL, token: token, job: "pull-ci-openshift-origin-main-unit",
			want:         "moved `pull-ci-openshift-origin-main-unit`: `build01` → `build02`.\n\nReason: requested by @org-member in " + testPRURL + ". The override expires 2026-11-25T10:00:00Z.",
			wantReceived: true},
		{name: "a wrong token", url: srv.URL, token: "not-the-token", job: "pull-ci-openshift-origin-main-unit",
			want: "the dispatcher refused this plugin's credentials, so nothing was changed."},
		{name: "the client's timeout", url: srv.URL, token: token, timeout: 50 * time.Millisecond, job: slowJob,
			want: "the dispatcher did not answer in time. Nothing was changed", wantReceived: true},
		{name: "a refused connection", url: closed.URL, token: token, job: "pull-ci-openshift-origin-main-unit",
			want: "the dispatcher could not be reached. Nothing was changed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			received = nil
			mu.Unlock()
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ghc := newFakeGitHub()
			p := newTestPlugin(t, ghc, &api.Client{BaseURL: tc.url, Token: tc.token, HTTP: &http.Client{Timeout: timeout}})
			if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(orgMember, "/reschedule "+tc.job+" build02")); err != nil {
				t.Fatal(err)
			}
			if len(ghc.IssueCommentsAdded) != 1 || !strings.Contains(ghc.IssueCommentsAdded[0], tc.want) {
				t.Errorf("got %q, want a reply with %q", ghc.IssueCommentsAdded, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			var want []api.RescheduleRequest
			if tc.wantReceived {
				want = []api.RescheduleRequest{{Job: tc.job, Cluster: "build02", TTL: "72h0m0s",
					Reason: "requested by @" + orgMember + " in " + testPRURL, By: orgMember}}
			}
			if len(received) != len(want) || (len(want) == 1 && received[0] != want[0]) {
				t.Errorf("the server received %+v, want %+v", received, want)
			}
		})
	}
}
