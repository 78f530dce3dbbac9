package webhook

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// fixedLeader is a Leader that says what the test sets.
type fixedLeader struct {
	mu               sync.Mutex
	name, addr, self string
}

func (l *fixedLeader) Leader() (string, string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.name, l.addr, l.name != "" && l.name == l.self
}
func (l *fixedLeader) Replica() string { return l.self }

func TestFollowersForwardWritesToTheLeader(t *testing.T) {
	tok, err := NewTokenFile(writeToken(t, testToken))
	if err != nil {
		t.Fatal(err)
	}
	start := func(f *fakeBackend, l *fixedLeader) *httptest.Server {
		srv := httptest.NewServer((&API{Backend: f, Auth: Authorizer{Token: tok}, Log: logr.Discard(), Leader: l}).Handler())
		t.Cleanup(srv.Close)
		return srv
	}
	leaderBackend, followerBackend := newFakeBackend(), newFakeBackend()
	leaderState := &fixedLeader{name: "r1", self: "r1"}
	leader := start(leaderBackend, leaderState)
	leaderState.addr = leader.URL
	followerState := &fixedLeader{name: "r1", addr: leader.URL, self: "r2"}
	follower := start(followerBackend, followerState)

	reschedule := `{"job":"pull-ci-openshift-origin-main-unit","reason":"flaky"}`
	tests := []struct {
		name             string
		leader, addr     string
		method, path     string
		token, body      string
		wantCode         int
		want             string
		onLeader, onHere int // reschedules the leader's and the follower's backend got
	}{
		{name: "reschedule is made on the leader", leader: "r1", addr: leader.URL, method: "POST", path: api.ReschedulePath, token: testToken, body: reschedule,
			wantCode: 200, want: `"to"`, onLeader: 1},
		{name: "unauthenticated is refused by the follower itself", leader: "r1", addr: leader.URL, method: "POST", path: api.ReschedulePath, body: reschedule,
			wantCode: 401, want: "token"},
		{name: "reads are served here", leader: "r1", addr: leader.URL, method: "GET", path: api.OverridesPath, wantCode: 200},
		{name: "no leader: a reschedule lands in the shared state from here", method: "POST", path: api.ReschedulePath, token: testToken, body: reschedule,
			wantCode: 200, onHere: 1},
		{name: "no leader: a dispatch is refused", method: "POST", path: api.DispatchPath, token: testToken,
			wantCode: 503, want: "no leader is elected yet (replica r2 follows)"},
		{name: "leader unreachable", leader: "r3", addr: "http://127.0.0.1:1", method: "POST", path: api.ReschedulePath, token: testToken, body: reschedule,
			wantCode: 502, want: "forwarding to the leader r3"},
		{name: "leader address not a URL", leader: "r3", addr: "build01:8080", method: "POST", path: api.DispatchPath, token: testToken,
			wantCode: 502, want: "not a URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leaderBackend.reschedules, followerBackend.reschedules = nil, nil
			followerState.mu.Lock()
			followerState.name, followerState.addr = tc.leader, tc.addr
			followerState.mu.Unlock()
			code, body := call(t, tc.method, follower.URL+tc.path, tc.token, tc.body)
			if code != tc.wantCode || !strings.Contains(body, tc.want) {
				t.Errorf("HTTP %d %s, want %d with %q", code, body, tc.wantCode, tc.want)
			}
			if len(leaderBackend.reschedules) != tc.onLeader || len(followerBackend.reschedules) != tc.onHere {
				t.Errorf("reschedules: %d on the leader, %d on the follower; want %d and %d",
					len(leaderBackend.reschedules), len(followerBackend.reschedules), tc.onLeader, tc.onHere)
			}
		})
	}

	// A forwarded request is answered where it lands, so two replicas that
	// each think the other leads cannot bounce it between them.
	leaderState.mu.Lock()
	leaderState.name, leaderState.addr = "r2", follower.URL
	leaderState.mu.Unlock()
	followerState.mu.Lock()
	followerState.name, followerState.addr = "r1", leader.URL
	followerState.mu.Unlock()
	leaderBackend.reschedules = nil
	req, _ := http.NewRequest("POST", follower.URL+api.ReschedulePath, strings.NewReader(reschedule))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(ServedByHeader) != "r1" || len(leaderBackend.reschedules) != 1 {
		t.Errorf("HTTP %d served by %q, %d reschedules on r1; want 200 by r1, once", resp.StatusCode, resp.Header.Get(ServedByHeader), len(leaderBackend.reschedules))
	}
}
