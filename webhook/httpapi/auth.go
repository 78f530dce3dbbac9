package httpapi

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

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultTokenName is the caller's name for a token given without one.
const DefaultTokenName = "api"

// TokenFile holds the bearer tokens that state-changing API requests must
// carry, read from a file: "NAME TOKEN" per line, so each caller (the plugin,
// an operator, a CI job) has a token of its own and the API records who asked
// by the token used, never by what the request claims. A file of a single
// entry may hold the token alone (its caller is named DefaultTokenName).
// Empty lines and lines starting with # are skipped.
//
// A malformed line is an error naming the file and the line, never the
// secret: more or fewer than two fields in a file of several entries, a lone
// field followed by blanks (a name whose token is missing, as `NAME $TOKEN`
// with an empty variable gives), a name or a token given twice. A file with
// such a line holds no token at all until it is fixed: the state-changing API
// then answers 503 for every token, because keeping the previous tokens would
// keep revoked ones, and applying the well-formed lines alone could turn a
// name into a secret. The same holds for a file that becomes empty, unreadable
// or absent. Every failed load is logged (file and line), counted in
// prowjob_dispatcher_token_file_errors_total and shown by Status (/readyz).
//
// The file is re-read when its size or modification time changes (a rotated
// Secret), or while it is in error, checked at most once a second.
type TokenFile struct {
	path    string
	log     logr.Logger
	errors  prometheus.Counter
	inForce prometheus.Gauge

	mu       sync.Mutex
	tokens   []namedToken
	err      error // the last load's error; no token is in force while set
	errSince time.Time
	loadedAt time.Time
	modTime  time.Time
	size     int64
	checked  time.Time
	now      func() time.Time
}

// TokenFileOptions configure OpenTokenFile.
type TokenFileOptions struct {
	// Logger logs each load that fails or changes the tokens; default none.
	Logger logr.Logger
	// Registerer, when set, gets prowjob_dispatcher_token_file_errors_total
	// (failed loads) and prowjob_dispatcher_token_file_tokens (tokens in force).
	Registerer prometheus.Registerer
}

// NewTokenFile reads the tokens at path, without logs or metrics (see
// OpenTokenFile). An unreadable, empty or malformed file is an error.
func NewTokenFile(path string) (*TokenFile, error) {
	return OpenTokenFile(path, TokenFileOptions{})
}

// OpenTokenFile reads the tokens at path. An unreadable, empty or malformed
// file is an error naming the file and the line, so a bad file stops the
// start rather than leaving the API closed.
func OpenTokenFile(path string, opts TokenFileOptions) (*TokenFile, error) {
	t := &TokenFile{
		path: path,
		log:  opts.Logger,
		now:  time.Now,
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prowjob_dispatcher_token_file_errors_total",
			Help: "Refusals of the API token file (malformed, empty, unreadable or absent), each failing version once; no token is in force until a load succeeds.",
		}),
		inForce: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "prowjob_dispatcher_token_file_tokens",
			Help: "API tokens in force: 0 while the token file is in error.",
		}),
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if err := t.load(fi, nil); err != nil {
		return nil, err
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{t.errors, t.inForce} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("token file %s: registering metrics: %w", path, err)
			}
		}
	}
	return t, nil
}

// namedToken is one caller's token, kept as its hash.
type namedToken struct {
	name string
	sum  [sha256.Size]byte
}

// parseTokens reads a token file's content (see TokenFile). Its errors name
// path and the line, never a token.
func parseTokens(path string, data []byte) ([]namedToken, error) {
	type entry struct {
		line   int
		fields []string
		blanks bool // blanks around the line, a final \r aside
	}
	var entries []entry
	for n, raw := range strings.Split(string(data), "\n") {
		raw = strings.TrimSuffix(raw, "\r")
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		entries = append(entries, entry{line: n + 1, fields: strings.Fields(line), blanks: line != raw})
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("token file %s: empty", path)
	}
	var tokens []namedToken
	names, sums := map[string]int{}, map[[sha256.Size]byte]int{}
	for _, e := range entries {
		name, token := DefaultTokenName, e.fields[0]
		switch {
		case len(e.fields) == 2:
			name, token = e.fields[0], e.fields[1]
		case len(e.fields) > 2:
			return nil, fmt.Errorf("token file %s: line %d: %d fields, want NAME TOKEN", path, e.line, len(e.fields))
		case e.blanks:
			return nil, fmt.Errorf("token file %s: line %d: one field followed or preceded by blanks, want NAME TOKEN (a name without its token?)", path, e.line)
		case len(entries) > 1:
			return nil, fmt.Errorf("token file %s: line %d: one field in a file of %d entries, want NAME TOKEN (a token alone is only allowed as the file's single entry)", path, e.line, len(entries))
		}
		if prev, dup := names[name]; dup {
			return nil, fmt.Errorf("token file %s: line %d: name %q already on line %d", path, e.line, name, prev)
		}
		sum := sha256.Sum256([]byte(token))
		if prev, dup := sums[sum]; dup {
			return nil, fmt.Errorf("token file %s: line %d: the same token as line %d, want one token per caller", path, e.line, prev)
		}
		names[name], sums[sum] = e.line, e.line
		tokens = append(tokens, namedToken{name: name, sum: sum})
	}
	return tokens, nil
}

// load reads the file that fi describes and puts its tokens in force, or
// none when it fails (statErr is why the file could not be stat'ed, if so).
// Called with t.mu held, or before t is shared.
func (t *TokenFile) load(fi os.FileInfo, statErr error) error {
	var tokens []namedToken
	var data []byte
	err := statErr
	if err == nil {
		data, err = os.ReadFile(t.path)
	}
	if err != nil {
		err = fmt.Errorf("token file: %w", err) // os errors name the path
	} else {
		tokens, err = parseTokens(t.path, data)
	}
	now := t.now()
	if err != nil {
		if t.err == nil || t.err.Error() != err.Error() { // each refused version once, however often retried
			t.log.Error(err, "Token file refused: no API token is in force until it is fixed", "path", t.path)
			t.errors.Inc()
		}
		if t.err == nil {
			t.errSince = now
		}
		t.tokens, t.err = nil, err
		t.inForce.Set(0)
		return err
	}
	if t.err != nil || !t.loadedAt.IsZero() {
		t.log.Info("Token file loaded", "path", t.path, "tokens", len(tokens))
	}
	t.tokens, t.err, t.errSince, t.loadedAt = tokens, nil, time.Time{}, now
	t.modTime, t.size = fi.ModTime(), fi.Size()
	t.inForce.Set(float64(len(tokens)))
	return nil
}

// refresh re-reads the file if it changed or is in error. Called with t.mu held.
func (t *TokenFile) refresh() {
	now := t.now()
	if now.Sub(t.checked) < time.Second {
		return
	}
	t.checked = now
	fi, err := os.Stat(t.path)
	if err == nil && t.err == nil && fi.ModTime().Equal(t.modTime) && fi.Size() == t.size {
		return
	}
	_ = t.load(fi, err) // the error is logged, counted and kept for Status
}

// errTokenFile: the token file is in error, so no token is in force.
var errTokenFile = errors.New("the API's token file is in error: no token is accepted until it is fixed (see /readyz and the dispatcher's log)")

// caller is Caller, with errTokenFile while the file is in error.
func (t *TokenFile) caller(token string) (name string, ok bool, err error) {
	got := sha256.Sum256([]byte(token))
	t.mu.Lock()
	t.refresh()
	tokens, failed := t.tokens, t.err != nil
	t.mu.Unlock()
	if failed {
		return "", false, errTokenFile
	}
	for _, want := range tokens {
		if subtle.ConstantTimeCompare(got[:], want.sum[:]) == 1 {
			name, ok = want.name, true
		}
	}
	return name, ok, nil
}

// Caller returns the name of token's caller, comparing it with every
// configured token in constant time; ok is false for an unknown token and
// for every token while the file is in error.
func (t *TokenFile) Caller(token string) (name string, ok bool) {
	name, ok, _ = t.caller(token)
	return name, ok
}

// Valid reports whether token is one of the configured ones.
func (t *TokenFile) Valid(token string) bool {
	_, ok := t.Caller(token)
	return ok
}

// TokenFileStatus is the token file's part of /readyz (under "auth"). It
// names no token.
type TokenFileStatus struct {
	Path string `json:"path"`
	// Tokens is the number of tokens in force: 0 while Error is set.
	Tokens int `json:"tokens"`
	// LoadedAt is when the tokens in force were read.
	LoadedAt time.Time `json:"loadedAt,omitzero"`
	// Error is why the file was refused (file and line); no token is in
	// force meanwhile, and state-changing API requests answer 503.
	Error string `json:"error,omitempty"`
	// ErrorSince is when the file went into error.
	ErrorSince time.Time `json:"errorSince,omitzero"`
}

// Status re-reads the file if it changed and reports the tokens in force.
func (t *TokenFile) Status() TokenFileStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refresh()
	s := TokenFileStatus{Path: t.path, Tokens: len(t.tokens), LoadedAt: t.loadedAt}
	if t.err != nil {
		s.Error, s.ErrorSince = t.err.Error(), t.errSince
	}
	return s
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
	name, ok, err := a.Token.caller(strings.TrimSpace(token))
	if err != nil {
		return "", http.StatusServiceUnavailable, err.Error()
	}
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
