package webhook

import (
	"bytes"
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

// TokenFile is the bearer token that state-changing API requests must carry,
// read from a file. The file is re-read when its size or modification time
// changes (a rotated Secret), checked at most once a second; if a re-read
// fails, the last good token stays in force.
type TokenFile struct {
	path string

	mu      sync.Mutex
	sum     [sha256.Size]byte // of the token; compared in constant time
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

func (t *TokenFile) load(fi os.FileInfo) error {
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	token := bytes.TrimSpace(data)
	if len(token) == 0 {
		return fmt.Errorf("token file %s: empty", t.path)
	}
	t.sum = sha256.Sum256(token)
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

// Valid reports whether token is the configured one, in constant time.
func (t *TokenFile) Valid(token string) bool {
	got := sha256.Sum256([]byte(token))
	t.mu.Lock()
	t.refresh()
	want := t.sum
	t.mu.Unlock()
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// Authorizer decides whether a state-changing API request may proceed.
type Authorizer struct {
	// Token is the required bearer token; nil means none is configured.
	Token *TokenFile
	// AllowUnauthenticated lets every request through when Token is nil (local use only).
	AllowUnauthenticated bool
}

var errNoToken = errors.New("state-changing requests are disabled: the dispatcher has no --token-file (or --insecure-allow-unauthenticated for local use)")

// check returns the status and message to refuse r with, or 0 when r may proceed.
func (a Authorizer) check(r *http.Request) (int, string) {
	if a.Token == nil {
		if a.AllowUnauthenticated {
			return 0, ""
		}
		return http.StatusForbidden, errNoToken.Error()
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>"
	}
	if !a.Token.Valid(strings.TrimSpace(token)) {
		return http.StatusUnauthorized, "invalid bearer token"
	}
	return 0, ""
}

// wrap refuses requests that fail check, and calls h otherwise.
func (a Authorizer) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if code, msg := a.check(r); code != 0 {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="prowjob-dispatcher"`)
			}
			writeError(w, code, "%s", msg)
			return
		}
		h(w, r)
	}
}
