// Package gitjobs keeps the job config (and optionally the dispatcher and
// cluster configs) in a shallow, sparse checkout of a Git repository, such
// as OpenShift CI's openshift/release, whose ci-operator/jobs tree is far
// over a ConfigMap's 1 MiB. It refreshes the checkout on an interval and on
// request, and swaps a new tree in atomically; a failing fetch keeps the
// last good tree.
package gitjobs

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/internal/gitclone"
)

// CurrentLink is the name, under Options.Dir, of the symlink to the tree in
// force: paths of the job config and configs read from Git go through it.
const CurrentLink = "current"

// DefaultUsername goes with Options.TokenPath when Options.Username is
// empty.
const DefaultUsername = gitclone.DefaultUsername

// Options configure a Source.
type Options struct {
	// URL is the repository (https://github.com/openshift/release) and
	// Branch what is checked out.
	URL, Branch string
	// TokenPath and Username authenticate to an HTTPS repository: the token
	// file is re-read at each fetch (see gitclone.ShallowOptions).
	TokenPath, Username string
	// Paths are the repository paths read (dirs or files); the checkout is
	// sparse on them, and a tree lacking one of them is refused.
	Paths []string
	// Dir holds the Git store, the trees and the CurrentLink symlink.
	Dir string
	// Interval is how often Run fetches.
	Interval time.Duration
	// OnChange is called after a new revision is in force (a dispatch).
	OnChange func()
	// Logger, Registerer (nil: no metrics) and Clock (nil: the real one).
	Logger     logr.Logger
	Registerer prometheus.Registerer
	Clock      clock.PassiveClock
}

// ParseURL splits a repository URL (https://github.com/openshift/release,
// http://127.0.0.1:8080/org/repo.git) into what prow's git client takes: the
// host (with port), org, repo, and whether it is plain HTTP.
func ParseURL(raw string) (host, org, repo string, insecure bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", false, fmt.Errorf("repository URL %q: %w", raw, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", "", "", false, fmt.Errorf("repository URL %q: want https:// or http://", raw)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if u.Host == "" || len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", "", false, fmt.Errorf("repository URL %q: want SCHEME://HOST/ORG/REPO", raw)
	}
	return u.Host, parts[0], strings.TrimSuffix(parts[1], ".git"), u.Scheme == "http", nil
}

// Status is the checkout's part of /readyz (under "jobConfig").
type Status struct {
	// Repository is ORG/REPO@BRANCH.
	Repository string `json:"repository"`
	// Revision is the commit in force; empty before the first good fetch.
	Revision string `json:"revision,omitempty"`
	// LastFetch is the last successful fetch; LastChange when the revision in force last changed.
	LastFetch  time.Time `json:"lastFetch,omitzero"`
	LastChange time.Time `json:"lastChange,omitzero"`
	// Error is the last fetch's error, empty once one works: while it is
	// set, the last good tree stays in force.
	Error string `json:"error,omitempty"`
	// Failures counts the fetches failed in a row.
	Failures int `json:"failures,omitempty"`
}

// Source is a Git checkout of the job config kept up to date.
type Source struct {
	opts    Options
	log     logr.Logger
	clock   clock.PassiveClock
	metrics *metrics
	refresh chan struct{}

	syncMu sync.Mutex        // serializes Sync
	git    *gitclone.Shallow // the store the trees come from
	trees  []string          // the tree in force last; the one before is kept for loads still reading it
	seq    int               // numbers the trees

	mu     sync.Mutex
	status Status
}

// New validates the options and removes the trees a previous run left;
// it does not fetch.
func New(opts Options) (*Source, error) {
	_, org, repo, _, err := ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("git job config: %w", err)
	}
	g, err := gitclone.NewShallow(gitclone.ShallowOptions{URL: opts.URL, Branch: opts.Branch, Paths: opts.Paths,
		Dir: opts.Dir, TokenPath: opts.TokenPath, Username: opts.Username})
	if err != nil {
		return nil, fmt.Errorf("git job config: %w", err)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	trees := filepath.Join(opts.Dir, "trees")
	if err := os.RemoveAll(trees); err != nil {
		return nil, fmt.Errorf("git job config: %w", err)
	}
	if err := os.MkdirAll(trees, 0o755); err != nil {
		return nil, fmt.Errorf("git job config: %w", err)
	}
	return &Source{opts: opts, log: opts.Logger, clock: opts.Clock, metrics: m, refresh: make(chan struct{}, 1), git: g,
		status: Status{Repository: org + "/" + repo + "@" + opts.Branch}}, nil
}

// Path is where rel (a repository path) is read: through the CurrentLink.
func (s *Source) Path(rel string) string {
	return filepath.Join(s.opts.Dir, CurrentLink, filepath.FromSlash(rel))
}

// Status reports the revision in force and the last fetch's error.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Refresh asks Run to fetch now; it does not wait.
func (s *Source) Refresh() {
	select {
	case s.refresh <- struct{}{}:
	default:
	}
}

// Run fetches every Interval and on each Refresh until ctx is done. The
// first fetch is the caller's (Sync, before the dispatcher loads).
func (s *Source) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.refresh:
		}
		_, _ = s.Sync(ctx) // recorded in Status and the metrics
	}
}

// Sync fetches the branch and, when its revision is new and holds every
// path, puts its tree in force by replacing the CurrentLink in one rename
// and calls OnChange. It reports whether the tree changed. On error the
// tree in force stays, and the error shows in Status and the metrics.
func (s *Source) Sync(ctx context.Context) (bool, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	changed, rev, err := s.sync(ctx)
	now := s.clock.Now()
	s.mu.Lock()
	if err != nil {
		s.status.Error, s.status.Failures = err.Error(), s.status.Failures+1
	} else {
		s.status.Error, s.status.Failures, s.status.LastFetch = "", 0, now
		if changed {
			s.status.Revision, s.status.LastChange = rev, now
		}
	}
	st := s.status
	s.mu.Unlock()
	s.metrics.fetched(st, changed, err)
	if err != nil {
		s.log.Error(err, "Fetching the job config from Git: the last good tree stays in force", "repository", st.Repository, "revision", st.Revision)
		return false, err
	}
	if changed {
		s.log.Info("Job config from Git: a new revision is in force", "repository", st.Repository, "revision", rev)
		if s.opts.OnChange != nil {
			s.opts.OnChange()
		}
	}
	return changed, nil
}

func (s *Source) sync(ctx context.Context) (changed bool, rev string, err error) {
	if err := ctx.Err(); err != nil {
		return false, "", err
	}
	if rev, err = s.git.Fetch(ctx); err != nil {
		return false, "", err
	}
	if rev == s.Status().Revision {
		return false, rev, nil
	}
	s.seq++
	tree := filepath.Join(s.opts.Dir, "trees", fmt.Sprintf("%d-%.12s", s.seq, rev))
	if err := s.git.Checkout(ctx, rev, tree); err != nil {
		return false, "", err
	}
	// A new symlink renamed over the old one: a reader sees the old tree or
	// the new one, never a mix or nothing.
	tmp := filepath.Join(s.opts.Dir, "."+CurrentLink+".new")
	_ = os.Remove(tmp)
	if err := os.Symlink(tree, tmp); err == nil {
		err = os.Rename(tmp, filepath.Join(s.opts.Dir, CurrentLink))
	}
	if err != nil {
		_ = os.RemoveAll(tree)
		return false, "", fmt.Errorf("git job config: %w", err)
	}
	s.trees = append(s.trees, tree)
	for len(s.trees) > 2 { // the one before stays for loads still reading it
		if err := os.RemoveAll(s.trees[0]); err != nil {
			s.log.Error(err, "Removing an old job config tree", "dir", s.trees[0])
		}
		s.trees = s.trees[1:]
	}
	return true, rev, nil
}

// Close removes the trees; the store stays for the next run.
func (s *Source) Close() {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for _, t := range s.trees {
		_ = os.RemoveAll(t)
	}
	s.trees = nil
}
