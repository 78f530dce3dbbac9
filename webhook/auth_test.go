package webhook

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

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
	clock := time.Now()
	tok.now = func() time.Time { return clock }
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
	clock = clock.Add(2 * time.Second)
	if !tok.Valid("second-token") || tok.Valid("first") {
		t.Error("the rotated token is not in force")
	}
	// A file that becomes unreadable or empty keeps the last good token.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Second)
	if !tok.Valid("second-token") || tok.Valid("") {
		t.Error("an emptied token file changed the token in force")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Second)
	if !tok.Valid("second-token") {
		t.Error("a removed token file changed the token in force")
	}
}

func TestTokenFileNamesCallers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	if err := os.WriteFile(path, []byte("# callers\nbare-token\nplugin plugin-token\n\nalice alice-token\n"), 0o600); err != nil {
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
		"a b c\n":     "line 1: want TOKEN or NAME TOKEN",
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
