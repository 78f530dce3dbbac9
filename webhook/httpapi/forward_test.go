package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
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
	ra := testReplicaAuth(t, replicaSecret)
	start := func(f *fakeBackend, l *fixedLeader) *httptest.Server {
		srv := httptest.NewServer((&API{Backend: f, Auth: Authorizer{Token: tok}, Log: logr.Discard(), Leader: l, ReplicaAuth: ra}).Handler())
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
		// Right after an election or an API server outage the Lease may
		// name a leader whose record (its address) cannot be read yet: the
		// write is neither made here nor refused as if this replica led.
		{name: "leader known, its address not yet", leader: "r1", method: "POST", path: api.ReschedulePath, token: testToken, body: reschedule,
			wantCode: 503, want: "replica r1 leads but its address is not known yet"},
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

	// The leader's address that appears within the wait is used.
	followerState.mu.Lock()
	followerState.name, followerState.addr = "r1", ""
	followerState.mu.Unlock()
	leaderBackend.reschedules, followerBackend.reschedules = nil, nil
	time.AfterFunc(300*time.Millisecond, func() {
		followerState.mu.Lock()
		followerState.addr = leader.URL
		followerState.mu.Unlock()
	})
	if code, body := call(t, "POST", follower.URL+api.ReschedulePath, testToken, reschedule); code != 200 || len(leaderBackend.reschedules) != 1 || len(followerBackend.reschedules) != 0 {
		t.Errorf("with the leader's address known 300 ms later: HTTP %d %s, %d reschedules on the leader, %d here; want 200, 1 and 0",
			code, body, len(leaderBackend.reschedules), len(followerBackend.reschedules))
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

// replicaSecret is the replicas' shared secret in the tests.
const replicaSecret = "0123456789abcdef0123456789abcdef-test"

func testReplicaAuth(t testing.TB, secret string) *ReplicaAuth {
	t.Helper()
	ra, err := NewReplicaAuth([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return ra
}

// TestForwardedRequestsMustBeSignedByAReplica: a request that says it was
// forwarded is served where it lands only when a replica holding the
// replica secret signed it; a client that sets the header itself, forges or
// replays a signature, or signs with another secret is refused, and neither
// the follower nor the leader makes the write.
func TestForwardedRequestsMustBeSignedByAReplica(t *testing.T) {
	tok, err := NewTokenFile(writeToken(t, testToken))
	if err != nil {
		t.Fatal(err)
	}
	ra := testReplicaAuth(t, replicaSecret)
	leaderBackend, followerBackend := newFakeBackend(), newFakeBackend()
	leaderBackend.report, followerBackend.report = &engine.Report{}, &engine.Report{}
	leaderSrv := httptest.NewServer((&API{Backend: leaderBackend, Auth: Authorizer{Token: tok}, Log: logr.Discard(),
		Leader: &fixedLeader{name: "r1", self: "r1"}, ReplicaAuth: ra}).Handler())
	t.Cleanup(leaderSrv.Close)
	follower := httptest.NewServer((&API{Backend: followerBackend, Auth: Authorizer{Token: tok}, Log: logr.Discard(),
		Leader: &fixedLeader{name: "r1", addr: leaderSrv.URL, self: "r2"}, ReplicaAuth: ra}).Handler())
	t.Cleanup(follower.Close)

	reschedule := `{"job":"pull-ci-openshift-origin-main-unit","reason":"flaky"}`
	signed := func(secret string, at time.Time, method, path, body string) http.Header {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		a := testReplicaAuth(t, secret)
		a.Now = func() time.Time { return at }
		a.Sign(r, "r3", []byte(body))
		return r.Header
	}
	now := time.Now()
	tests := []struct {
		name         string
		method, path string
		body         string
		header       http.Header
		wantCode     int
		want         string
		onFollower   int // dispatches + reschedules the follower's backend got
		onLeader     int
	}{
		{name: "the client sets the forwarding header: refused, not served by the follower", method: "POST", path: api.DispatchPath,
			header: http.Header{ForwardedHeader: {"x"}}, wantCode: 401, want: "not authenticated"},
		{name: "the header on a reschedule", method: "POST", path: api.ReschedulePath, body: reschedule,
			header: http.Header{ForwardedHeader: {"r1"}}, wantCode: 401, want: ForwardSignatureHeader},
		{name: "a forged signature", method: "POST", path: api.DispatchPath,
			header:   http.Header{ForwardedHeader: {"r3"}, ForwardedAtHeader: {strconv.FormatInt(now.Unix(), 10)}, ForwardNonceHeader: {"00"}, ForwardSignatureHeader: {"sha256=00ff"}},
			wantCode: 401, want: "does not match"},
		{name: "signed with another secret", method: "POST", path: api.DispatchPath,
			header: signed("another-secret-of-at-least-32-bytes!", now, "POST", api.DispatchPath, ""), wantCode: 401, want: "does not match"},
		{name: "signed for another body", method: "POST", path: api.ReschedulePath, body: reschedule,
			header: signed(replicaSecret, now, "POST", api.ReschedulePath, `{"job":"other","reason":"x"}`), wantCode: 401, want: "does not match"},
		{name: "signed for another path", method: "POST", path: api.DispatchPath,
			header: signed(replicaSecret, now, "POST", api.ReschedulePath, ""), wantCode: 401, want: "does not match"},
		{name: "an old signature replayed", method: "POST", path: api.DispatchPath,
			header: signed(replicaSecret, now.Add(-time.Minute), "POST", api.DispatchPath, ""), wantCode: 401, want: "from this replica's clock"},
		{name: "signed by a replica: served where it lands", method: "POST", path: api.DispatchPath,
			header: signed(replicaSecret, now, "POST", api.DispatchPath, ""), wantCode: 200, onFollower: 1},
		{name: "unforwarded: sent to the leader", method: "POST", path: api.DispatchPath, wantCode: 200, onLeader: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, b := range []*fakeBackend{leaderBackend, followerBackend} {
				b.mu.Lock()
				b.dispatches, b.reschedules = 0, nil
				b.mu.Unlock()
			}
			req, err := http.NewRequest(tc.method, follower.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			_, _ = io.Copy(&b, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode || !strings.Contains(b.String(), tc.want) {
				t.Errorf("HTTP %d %s, want %d with %q", resp.StatusCode, b.String(), tc.wantCode, tc.want)
			}
			count := func(f *fakeBackend) int {
				f.mu.Lock()
				defer f.mu.Unlock()
				return f.dispatches + len(f.reschedules)
			}
			if got, gotLeader := count(followerBackend), count(leaderBackend); got != tc.onFollower || gotLeader != tc.onLeader {
				t.Errorf("writes: %d on the follower, %d on the leader; want %d and %d", got, gotLeader, tc.onFollower, tc.onLeader)
			}
		})
	}
}

func TestReplicaSecretMustBeLongEnough(t *testing.T) {
	for _, secret := range []string{"", "  \n", "short"} {
		if _, err := NewReplicaAuth([]byte(secret)); err == nil || !strings.Contains(err.Error(), "at least 32") {
			t.Errorf("secret %q: %v, want refused as too short", secret, err)
		}
	}
}

// TestNotLeaderIsServiceUnavailable: a write the dispatcher refuses because
// another replica leads is answered 503 with the leader's name.
func TestNotLeaderIsServiceUnavailable(t *testing.T) {
	f := newFakeBackend()
	f.dispatchErr = fmt.Errorf("dispatch: %w: replica r1 leads and only the leader changes the table", dispatch.ErrNotLeader)
	srv := startAPI(t, f)
	if code, body := call(t, "POST", srv.URL+api.DispatchPath, testToken, ""); code != 503 || !strings.Contains(body, "replica r1 leads") {
		t.Errorf("HTTP %d %s, want 503 naming the leader", code, body)
	}
}

// TestForwardedRequestReplayedIsRefused: a request a replica signed and
// forwarded is served once; the same request sent again within the
// signature's validity (captured on the wire) is refused and counted.
// Before the nonce, it was served again for 30 s.
func TestForwardedRequestReplayedIsRefused(t *testing.T) {
	tok, err := NewTokenFile(writeToken(t, testToken))
	if err != nil {
		t.Fatal(err)
	}
	ra := testReplicaAuth(t, replicaSecret)
	reg := prometheus.NewPedanticRegistry()
	if err := ra.Register(reg); err != nil {
		t.Fatal(err)
	}
	backend := newFakeBackend()
	backend.report = &engine.Report{}
	srv := httptest.NewServer((&API{Backend: backend, Auth: Authorizer{Token: tok}, Log: logr.Discard(),
		Leader: &fixedLeader{name: "r1", self: "r1"}, ReplicaAuth: ra}).Handler())
	t.Cleanup(srv.Close)

	signer := httptest.NewRequest("POST", api.DispatchPath, nil)
	testReplicaAuth(t, replicaSecret).Sign(signer, "r2", nil)
	send := func() (int, string) {
		req, err := http.NewRequest("POST", srv.URL+api.DispatchPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = signer.Header.Clone()
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := send(); code != http.StatusOK {
		t.Fatalf("the forwarded request: HTTP %d %s, want 200", code, body)
	}
	for range 2 {
		if code, body := send(); code != http.StatusUnauthorized || !strings.Contains(body, "replay") {
			t.Errorf("the same request again: HTTP %d %s, want 401 naming a replay", code, body)
		}
	}
	backend.mu.Lock()
	dispatches := backend.dispatches
	backend.mu.Unlock()
	if dispatches != 1 {
		t.Errorf("%d dispatches served, want 1", dispatches)
	}
	if got := testutil.ToFloat64(ra.refused.WithLabelValues(refusedReplay)); got != 2 {
		t.Errorf("refused as replays: %v, want 2", got)
	}
	// Every other header of a signed request is needed too.
	r := httptest.NewRequest("POST", api.DispatchPath, nil)
	ra.Sign(r, "r2", nil)
	r.Header.Del(ForwardNonceHeader)
	if _, err := ra.Verify(r, nil); err == nil || !strings.Contains(err.Error(), ForwardNonceHeader) {
		t.Errorf("a signed request without its nonce: %v, want refused naming %s", err, ForwardNonceHeader)
	}
}
