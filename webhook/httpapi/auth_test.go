package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

func TestAuthorizerWithoutToken(t *testing.T) {
	tests := []struct {
		name      string
		auth      Authorizer
		token     string
		wantCode  int
		dispatchs int
	}{
		{name: "refused without a token file", wantCode: 403},
		{name: "a bearer does not help without a token file", token: "anything", wantCode: 403},
		{name: "allowed with --insecure-allow-unauthenticated", auth: Authorizer{AllowUnauthenticated: true}, wantCode: 200, dispatchs: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeBackend()
			f.report = &engine.Report{}
			srv := httptest.NewServer((&API{Backend: f, Auth: tc.auth, Log: logr.Discard()}).Handler())
			defer srv.Close()
			code, body := call(t, "POST", srv.URL+api.DispatchPath, tc.token, "")
			if code != tc.wantCode || f.dispatches != tc.dispatchs {
				t.Errorf("HTTP %d (%s), %d dispatches; want %d, %d", code, body, f.dispatches, tc.wantCode, tc.dispatchs)
			}
			// Reads stay open whatever the auth.
			if code, body := call(t, "GET", srv.URL+api.OverridesPath, "", ""); code != 200 {
				t.Errorf("GET overrides: HTTP %d %s", code, body)
			}
		})
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	for _, bad := range []string{"", " \n"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewTokenFile(path); err == nil {
			t.Errorf("token file %q: no error", bad)
		}
	}
	if _, err := NewTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing token file: no error")
	}

	if err := os.WriteFile(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := NewTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	step := stepClock(tok)
	for _, tc := range []struct {
		token string
		want  bool
	}{{"first", true}, {"first\n", false}, {"firs", false}, {"firstt", false}, {"", false}} {
		if got := tok.Valid(tc.token); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.token, got, tc.want)
		}
	}

	// Rotation: the new token is read once the file changes and a second has passed.
	if err := os.WriteFile(path, []byte("second-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	step()
	if !tok.Valid("second-token") || tok.Valid("first") {
		t.Error("the rotated token is not in force")
	}
	// A file that becomes empty leaves no token in force (see TestTokenFileRevocation).
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	step()
	if tok.Valid("second-token") || tok.Valid("") {
		t.Error("an emptied token file kept a token in force")
	}
}

func TestTokenFileNamesCallers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	if err := os.WriteFile(path, []byte("# callers\napi bare-token\nplugin plugin-token\n\nalice alice-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := NewTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]string{"bare-token": DefaultTokenName, "plugin-token": "plugin", "alice-token": "alice", "plugin": "", "alice": ""} {
		if name, ok := tok.Caller(token); name != want || ok != (want != "") {
			t.Errorf("Caller(%q) = %q, %v; want %q", token, name, ok, want)
		}
	}
	for content, want := range map[string]string{
		"a x\na y\n":  `name "a" already on line 1`,
		"a b c\n":     "line 1: 3 fields, want NAME TOKEN",
		"# nothing\n": "empty",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewTokenFile(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("token file %q: %v, want an error containing %q", content, err, want)
		}
	}
}

// TestTokenFileRefusesNameWithoutToken: a line that holds a caller's name
// but lost its token (an empty shell variable in `NAME $TOKEN`) is an error,
// never a bare token equal to the name.
func TestTokenFileRefusesNameWithoutToken(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr string // "" means the file loads
	}{
		{name: "name and trailing space alone", content: "operators \n", wantErr: "line 1"},
		{name: "name and trailing tab alone", content: "operators\t\n", wantErr: "line 1"},
		{name: "name and trailing space after a named line", content: "plugin plugin-token\noperators \n", wantErr: "line 2"},
		{name: "lone word among named lines", content: "plugin plugin-token\noperators\n", wantErr: "line 2"},
		{name: "lone word before named lines", content: "operators\nplugin plugin-token\n", wantErr: "line 1"},
		{name: "two lone words", content: "first-token\nsecond-token\n", wantErr: "line 1"},
		{name: "one token shared by two callers", content: "alice shared-token\nbob shared-token\n", wantErr: "line 2"},
		{name: "a single bare token", content: "# the API token\nbare-token\n"},
		{name: "a single bare token with CRLF", content: "bare-token\r\n"},
		{name: "named tokens with CRLF", content: "plugin plugin-token\r\nalice alice-token\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			tok, err := NewTokenFile(path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("token file %q: %v", tc.content, err)
				}
				return
			}
			if err == nil {
				_, ok := tok.Caller("operators")
				t.Fatalf("token file %q loaded (Bearer operators accepted: %v), want an error naming %s", tc.content, ok, tc.wantErr)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, tc.wantErr) {
				t.Errorf("error %q: want the path %s and %q", msg, path, tc.wantErr)
			}
			for _, secret := range []string{"plugin-token", "shared-token", "second-token"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows the secret %q", err, secret)
				}
			}
		})
	}
}

// TestTokenFileRevocation: a token file replaced by one with a malformed
// line, or emptied, or removed, leaves no token in force; never the old ones.
func TestTokenFileRevocation(t *testing.T) {
	tests := []struct {
		name    string
		replace func(path string) error
	}{
		{name: "new token plus a malformed line", replace: func(path string) error {
			return os.WriteFile(path, []byte("new new-token\noperators \n"), 0o600)
		}},
		{name: "new token plus a line of three fields", replace: func(path string) error {
			return os.WriteFile(path, []byte("new new-token\na b c\n"), 0o600)
		}},
		{name: "emptied", replace: func(path string) error { return os.WriteFile(path, nil, 0o600) }},
		{name: "removed", replace: os.Remove},
		{name: "unreadable", replace: func(path string) error {
			if err := os.Remove(path); err != nil {
				return err
			}
			return os.Mkdir(path, 0o700) // a directory cannot be read as a file, even by root
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens")
			if err := os.WriteFile(path, []byte("alice alice-token\nbob bob-token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tok, err := NewTokenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			step := stepClock(tok)
			if !tok.Valid("alice-token") || !tok.Valid("bob-token") {
				t.Fatal("the first tokens are not in force")
			}
			if err := tc.replace(path); err != nil {
				t.Fatal(err)
			}
			step()
			for _, revoked := range []string{"alice-token", "bob-token", "new-token", "operators"} {
				if tok.Valid(revoked) {
					t.Errorf("Valid(%q) after the file was replaced, want no token in force", revoked)
				}
			}
			// Once fixed, the new tokens apply, even if the stat looks unchanged.
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("new new-token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			step()
			if !tok.Valid("new-token") || tok.Valid("alice-token") {
				t.Error("the fixed file's token is not in force")
			}
		})
	}
}

// TestTokenFileErrorIsShown: a token file refused after a change is logged
// with its path and line (never a token), counted once, shown in /readyz,
// and state-changing requests answer 503 until it is fixed.
func TestTokenFileErrorIsShown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("alice alice-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	reg := prometheus.NewRegistry()
	tok, err := OpenTokenFile(path, TokenFileOptions{Registerer: reg, Logger: funcr.New(func(prefix, args string) {
		logs.WriteString(args + "\n")
	}, funcr.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	step := stepClock(tok)
	f := newFakeBackend()
	f.report = &engine.Report{}
	mux := http.NewServeMux()
	(&API{Backend: f, Auth: Authorizer{Token: tok}, Log: logr.Discard()}).Register(mux)
	RegisterHealth(mux, HealthOptions{Status: fixedStatus(dispatch.Status{Ready: true, TableSize: 1}), Auth: func() any { return tok.Status() }})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	readyz := func() TokenFileStatus {
		t.Helper()
		code, body := call(t, "GET", srv.URL+"/readyz", "", "")
		if code != http.StatusOK {
			t.Errorf("/readyz HTTP %d, want 200 whatever the token file: %s", code, body)
		}
		var got struct {
			Auth TokenFileStatus `json:"auth"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		return got.Auth
	}
	if st := readyz(); st.Error != "" || st.Tokens != 1 || st.Path != path {
		t.Errorf("/readyz auth %+v, want 1 token and no error", st)
	}

	if err := os.WriteFile(path, []byte("bob bob-token\noperators \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	step()
	for _, token := range []string{"alice-token", "bob-token", "operators"} {
		if code, body := call(t, "POST", srv.URL+api.DispatchPath, token, ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "token file is in error") {
			t.Errorf("dispatch with %q: HTTP %d %s, want 503 saying the token file is in error", token, code, body)
		}
	}
	step() // retried: counted and logged once
	st := readyz()
	if st.Tokens != 0 || !strings.Contains(st.Error, path) || !strings.Contains(st.Error, "line 2") || st.ErrorSince.IsZero() {
		t.Errorf("/readyz auth %+v, want no token and an error naming %s and line 2", st, path)
	}
	if got := testutil.ToFloat64(tok.errors); got != 1 {
		t.Errorf("token file errors counted %v, want 1", got)
	}
	if got := testutil.ToFloat64(tok.inForce); got != 0 {
		t.Errorf("tokens in force %v, want 0", got)
	}
	if !strings.Contains(logs.String(), "line 2") || !strings.Contains(logs.String(), path) || strings.Count(logs.String(), "Token file refused") != 1 {
		t.Errorf("logs %q: want one refusal naming the file and line 2", logs.String())
	}
	for _, secret := range []string{"bob-token", "alice-token"} {
		if strings.Contains(logs.String()+st.Error, secret) {
			t.Errorf("the token %q is logged or shown", secret)
		}
	}
	if f.dispatches != 0 {
		t.Errorf("%d dispatches went through a token file in error", f.dispatches)
	}

	// Fixed: the new token, and only it, is in force again.
	if err := os.WriteFile(path, []byte("bob bob-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	step()
	if code, body := call(t, "POST", srv.URL+api.DispatchPath, "bob-token", ""); code != http.StatusOK {
		t.Errorf("dispatch with the new token: HTTP %d %s", code, body)
	}
	if code, _ := call(t, "POST", srv.URL+api.DispatchPath, "alice-token", ""); code != http.StatusUnauthorized {
		t.Errorf("dispatch with the revoked token: HTTP %d, want 401", code)
	}
	if st := readyz(); st.Error != "" || st.Tokens != 1 {
		t.Errorf("/readyz auth %+v after the fix", st)
	}
	if got := testutil.ToFloat64(tok.inForce); got != 1 {
		t.Errorf("tokens in force %v, want 1", got)
	}
}

// stepClock gives tok a clock of its own and returns step, which moves it
// past the interval the file is rechecked at.
func stepClock(tok *TokenFile) (step func()) {
	clock := time.Now()
	tok.now = func() time.Time { return clock }
	return func() { clock = clock.Add(2 * time.Second) }
}
