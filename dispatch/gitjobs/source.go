// Package gitjobs keeps the job config (and optionally the dispatcher and
// cluster configs) in a sparse checkout of a Git repository, such as
// OpenShift CI's openshift/release, whose ci-operator/jobs tree is far over
// a ConfigMap's 1 MiB. It refreshes the checkout on an interval and on
// request, and swaps a new tree in atomically; a failing fetch keeps the
// last good tree.
package gitjobs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	git "sigs.k8s.io/prow/pkg/git/v2"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/internal/gitclone"
)

// CurrentLink is the name, under Options.Dir, of the symlink to the tree in
// force: paths of the job config and configs read from Git go through it.
const CurrentLink = "current"

// Options configure a Source.
type Options struct {
	// Git clones and fetches the repository (prow's git client factory).
	Git git.ClientFactory
	// Org, Repo and Branch name what is checked out.
	Org, Repo, Branch string
	// Paths are the repository paths read (dirs or files); the checkout is
	// sparse on their dirs, and a tree lacking one of them is refused.
	Paths []string
	// Dir holds the CurrentLink symlink; the trees live in the git
	// factory's dirs.
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

	syncMu sync.Mutex       // serializes Sync
	trees  []git.RepoClient // the tree in force last; the one before is kept for loads still reading it

	mu     sync.Mutex
	status Status
}

// New validates the options; it does not fetch.
func New(opts Options) (*Source, error) {
	switch {
	case opts.Git == nil:
		return nil, errors.New("git job config: no git client")
	case opts.Org == "" || opts.Repo == "" || opts.Branch == "":
		return nil, errors.New("git job config: org, repo and branch are required")
	case len(opts.Paths) == 0:
		return nil, errors.New("git job config: no path")
	case opts.Dir == "":
		return nil, errors.New("git job config: no dir")
	}
	for _, p := range opts.Paths {
		if p == "" || path.IsAbs(p) || strings.HasPrefix(path.Clean(p), "..") {
			return nil, fmt.Errorf("git job config: path %q: want a path inside the repository", p)
		}
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("git job config: %w", err)
	}
	return &Source{opts: opts, log: opts.Logger, clock: opts.Clock, metrics: m, refresh: make(chan struct{}, 1),
		status: Status{Repository: opts.Org + "/" + opts.Repo + "@" + opts.Branch}}, nil
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
	o := s.opts
	sparse := make([]string, 0, len(o.Paths))
	for _, p := range o.Paths {
		sparse = append(sparse, sparseDir(p))
	}
	rc, err := gitclone.Checkout(o.Git, o.Org, o.Repo, o.Branch, sparse)
	if err != nil {
		return false, "", err
	}
	keep := false
	defer func() {
		if !keep {
			_ = rc.Clean()
		}
	}()
	if rev, err = rc.RevParse("HEAD"); err != nil {
		return false, "", fmt.Errorf("%s/%s: %w", o.Org, o.Repo, err)
	}
	if rev == s.Status().Revision {
		return false, rev, nil
	}
	for _, p := range o.Paths {
		if _, err := os.Stat(filepath.Join(rc.Directory(), filepath.FromSlash(p))); err != nil {
			return false, "", fmt.Errorf("%s/%s at %s (%.12s): %s: %w", o.Org, o.Repo, o.Branch, rev, p, err)
		}
	}
	// A new symlink renamed over the old one: a reader sees the old tree or
	// the new one, never a mix or nothing.
	tmp := filepath.Join(o.Dir, "."+CurrentLink+".new")
	_ = os.Remove(tmp)
	if err := os.Symlink(rc.Directory(), tmp); err != nil {
		return false, "", fmt.Errorf("git job config: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(o.Dir, CurrentLink)); err != nil {
		return false, "", fmt.Errorf("git job config: %w", err)
	}
	keep = true
	s.trees = append(s.trees, rc)
	for len(s.trees) > 2 { // the one before stays for loads still reading it
		if err := s.trees[0].Clean(); err != nil {
			s.log.Error(err, "Removing an old job config tree", "dir", s.trees[0].Directory())
		}
		s.trees = s.trees[1:]
	}
	return true, rev, nil
}

// Close removes the trees.
func (s *Source) Close() {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for _, t := range s.trees {
		_ = t.Clean()
	}
	s.trees = nil
}

// sparseDir is the dir to check out for p: p itself when it has no
// extension (a dir such as ci-operator/jobs), else the dir holding it (a file
// such as core-services/sanitize-prow-jobs/_config.yaml).
func sparseDir(p string) string {
	p = path.Clean(p)
	if path.Ext(p) == "" {
		return p
	}
	return path.Dir(p)
}
