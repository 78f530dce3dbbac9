// Package gittest serves a Git repository over HTTP with git http-backend
// for tests, optionally behind basic auth, and commits to it.
package gittest

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is ORG/REPO served over smart HTTP by git http-backend, with the
// partial clone filters allowed, as GitHub serves a repository.
type Server struct {
	// URL is the repository's URL (no trailing .git).
	URL string

	work, bare string
	requests   atomic.Int64

	mu         sync.Mutex
	down       bool
	user, pass string // required basic auth when pass is set
}

// NewServer makes an empty repository with branch master and serves it
// until the test ends.
func NewServer(t testing.TB, org, repo string) *Server {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Skipf("no git: %v", err)
	}
	root := t.TempDir()
	s := &Server{work: filepath.Join(root, "work"), bare: filepath.Join(root, "git", org, repo)}
	Run(t, "", "init", "--quiet", "--initial-branch", "master", s.work)
	Run(t, "", "init", "--quiet", "--bare", "--initial-branch", "master", s.bare)
	Run(t, s.bare, "config", "uploadpack.allowFilter", "true")
	Run(t, s.bare, "config", "uploadpack.allowAnySHA1InWant", "true")
	backend := &cgi.Handler{Path: gitPath, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Join(root, "git"), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		down, user, pass := s.down, s.user, s.pass
		s.mu.Unlock()
		if down {
			http.Error(w, "the git server is down", http.StatusServiceUnavailable)
			return
		}
		if pass != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/" + org + "/" + repo
	return s
}

// Commit writes files (an empty content removes the file), commits them
// on master and pushes; it returns the commit.
func (s *Server) Commit(t testing.TB, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(s.work, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Run(t, s.work, "add", "--all")
	Run(t, s.work, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "--quiet", "--allow-empty", "-m", "test")
	Run(t, s.work, "push", "--quiet", s.bare, "HEAD:master")
	return strings.TrimSpace(Run(t, s.work, "rev-parse", "HEAD"))
}

// SetDown makes the server answer 503 (true) or serve again (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// RequireBasicAuth makes the server answer 401 to a request without this
// username and password; an empty password turns the check off.
func (s *Server) RequireBasicAuth(user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, pass
}

// Requests is how many HTTP requests the server got.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Run runs git in dir and returns its output; it fails the test on error.
func Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
