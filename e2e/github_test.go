package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
)

// fakeGitHub is the part of GitHub's REST API the plugin uses: the bot's
// identity, org membership (nobody is a member; the plugin config lists the
// trusted users), pull requests, and issue comments, which it records.
type fakeGitHub struct {
	*httptest.Server
	t        *testing.T
	mu       sync.Mutex
	comments map[string][]string // "org/repo#n" -> bodies
}

// ghComment is what the plugin posts.
type ghComment struct {
	Body string `json:"body"`
}

var ghCommentsRE = regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$`)

func newFakeGitHub(t *testing.T) *fakeGitHub {
	g := &fakeGitHub{t: t, comments: map[string][]string{}}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Close)
	return g
}

func (g *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	g.t.Logf("fake GitHub: %s %s", r.Method, r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/user":
		writeJSON(w, http.StatusOK, map[string]any{"login": "ci-robot", "id": 1, "email": "ci-robot@example.com"})
	case r.Method == http.MethodPost && ghCommentsRE.MatchString(r.URL.Path):
		m := ghCommentsRE.FindStringSubmatch(r.URL.Path)
		var c ghComment
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &c); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
			return
		}
		g.mu.Lock()
		key := m[1] + "/" + m[2] + "#" + m[3]
		g.comments[key] = append(g.comments[key], c.Body)
		n := len(g.comments[key])
		g.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"id": 1000 + n, "body": c.Body, "user": map[string]string{"login": "ci-robot"}})
	case r.Method == http.MethodGet && r.URL.Path == "/repos/openshift/origin/pulls/1":
		writeJSON(w, http.StatusOK, map[string]any{
			"number": 1, "state": "open", "html_url": "https://github.com/openshift/origin/pull/1",
			"user": map[string]string{"login": "alice"},
			"base": map[string]any{"ref": "main", "repo": map[string]any{"name": "origin", "full_name": "openshift/origin", "owner": map[string]string{"login": "openshift"}}},
			"head": map[string]any{"ref": "feature", "sha": "0123456789abcdef0123456789abcdef01234567"},
		})
	case r.Method == http.MethodGet && r.URL.Path == "/repos/openshift/origin/issues/1/comments":
		writeJSON(w, http.StatusOK, []any{})
	default:
		// Memberships, permissions and anything else: not found.
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
	}
}

// commentsOn returns the comments posted on org/repo#n.
func (g *fakeGitHub) commentsOn(key string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.comments[key]...)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
