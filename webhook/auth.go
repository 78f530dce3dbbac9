package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultTokenName is the caller's name for a token given without one.
const DefaultTokenName = "api"

// TokenFile holds the bearer tokens that state-changing API requests must
// carry, read from a file: one token per line, either alone (its caller is
// named DefaultTokenName) or as "NAME TOKEN", so each caller (the plugin, an
// operator, a CI job) has a token of its own and the API records who asked
// by the token used, never by what the request claims. Empty lines and lines
// starting with # are skipped. The file is re-read when its size or
// modification time changes (a rotated Secret), checked at most once a
// second; if a re-read fails, the last good tokens stay in force.
type TokenFile struct {
	path string

	mu      sync.Mutex
	tokens  []namedToken
	modTime time.Time
	size    int64
	checked time.Time
	now     func() time.Time
}

// NewTokenFile reads the token at path. An unreadable or empty file is an error.
func NewTokenFile(path string) (*TokenFile, error) {
	t := &TokenFile{path: path, now: time.Now}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if err := t.load(fi); err != nil {
		return nil, err
	}
	return t, nil
}

// namedToken is one caller's token, kept as its hash.
type namedToken struct {
	name string
	sum  [sha256.Size]byte
}

func (t *TokenFile) load(fi os.FileInfo) error {
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	var tokens []namedToken
	names := map[string]int{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, token := DefaultTokenName, line
		switch f := strings.Fields(line); len(f) {
		case 1:
		case 2:
			name, token = f[0], f[1]
		default:
			return fmt.Errorf("token file %s: line %d: want TOKEN or NAME TOKEN", t.path, n+1)
		}
		if prev, dup := names[name]; dup {
			return fmt.Errorf("token file %s: line %d: name %q already on line %d", t.path, n+1, name, prev)
		}
		names[name] = n + 1
		tokens = append(tokens, namedToken{name: name, sum: sha256.Sum256([]byte(token))})
	}
	if len(tokens) == 0 {
		return fmt.Errorf("token file %s: empty", t.path)
	}
	t.tokens = tokens
	t.modTime, t.size = fi.ModTime(), fi.Size()
	return nil
}

// refresh re-reads the file if it changed. Called with t.mu held.
func (t *TokenFile) refresh() {
	now := t.now()
	if now.Sub(t.checked) < time.Second {
		return
	}
	t.checked = now
	fi, err := os.Stat(t.path)
	if err != nil || (fi.ModTime().Equal(t.modTime) && fi.Size() == t.size) {
		return
	}
	_ = t.load(fi) // on error the last good token stays
}

// Caller returns the name of token's caller, comparing it with every
// configured token in constant time; ok is false for an unknown token.
func (t *TokenFile) Caller(token string) (name string, ok bool) {
	got := sha256.Sum256([]byte(token))
	t.mu.Lock()
	t.refresh()
	tokens := t.tokens
	t.mu.Unlock()
	for _, want := range tokens {
		if subtle.ConstantTimeCompare(got[:], want.sum[:]) == 1 {
			name, ok = want.name, true
		}
	}
	return name, ok
}

// Valid reports whether token is one of the configured ones.
func (t *TokenFile) Valid(token string) bool {
	_, ok := t.Caller(token)
	return ok
}

// Authorizer decides whether a state-changing API request may proceed.
type Authorizer struct {
	// Token is the required bearer token; nil means none is configured.
	Token *TokenFile
	// AllowUnauthenticated lets every request through when Token is nil (local use only).
	AllowUnauthenticated bool
}

var errNoToken = errors.New("state-changing requests are disabled: the dispatcher has no --token-file (or --insecure-allow-unauthenticated for local use)")

// callerKey is the request context key of the authenticated caller's name.
type callerKey struct{}

// unauthenticatedCaller names callers let through by AllowUnauthenticated.
const unauthenticatedCaller = "unauthenticated"

// check returns the caller's name, or the status and message to refuse r with.
func (a Authorizer) check(r *http.Request) (caller string, code int, msg string) {
	if a.Token == nil {
		if a.AllowUnauthenticated {
			return unauthenticatedCaller, 0, ""
		}
		return "", http.StatusForbidden, errNoToken.Error()
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>"
	}
	name, ok := a.Token.Caller(strings.TrimSpace(token))
	if !ok {
		return "", http.StatusUnauthorized, "invalid bearer token"
	}
	return name, 0, ""
}

// wrap refuses requests that fail check, and calls h otherwise with the
// caller's name in the request context (see callerOf).
func (a Authorizer) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		caller, code, msg := a.check(r)
		if code != 0 {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="prowjob-dispatcher"`)
			}
			writeError(w, code, "%s", msg)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, caller)))
	}
}

// callerOf returns the name of the caller wrap authenticated.
func callerOf(r *http.Request) string {
	name, _ := r.Context().Value(callerKey{}).(string)
	return name
}
