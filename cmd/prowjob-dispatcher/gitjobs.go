package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/gitjobs"
)

// gitJobsFlags read the job config (and optionally the two configs) from a
// Git repository instead of mounted files: OpenShift CI's job config is
// the ci-operator/jobs tree of openshift/release, far over a ConfigMap's
// 1 MiB, and a ConfigMap flattens its paths.
type gitJobsFlags struct {
	url, branch, dir    string
	tokenPath, username string
	interval            time.Duration
	configsFromGit      bool
}

func (f *gitJobsFlags) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "job-config-git-url", "", "read the job config from this Git repository (https://github.com/openshift/release); --job-config is then a path inside it (e.g. ci-operator/jobs)")
	fs.StringVar(&f.branch, "job-config-git-branch", "master", "branch of --job-config-git-url")
	fs.StringVar(&f.dir, "job-config-git-dir", "", "dir of the shallow Git store and the checked out trees (default: a dir under the system's temp dir)")
	fs.StringVar(&f.tokenPath, "job-config-git-token-path", "", "file holding a token (or password) for --job-config-git-url, re-read at each fetch and sent as HTTP basic auth to that host only (without it, git's credential helper or ~/.netrc apply)")
	fs.StringVar(&f.username, "job-config-git-username", "", "username sent with --job-config-git-token-path (default "+gitjobs.DefaultUsername+", which GitHub takes for app and personal tokens)")
	fs.DurationVar(&f.interval, "job-config-git-interval", 5*time.Minute, "how often the repository is fetched (the plugin asks for a fetch at once on a push to the branch)")
	fs.BoolVar(&f.configsFromGit, "configs-from-git", false, "with --job-config-git-url, --dispatcher-config and --cluster-config are paths inside the repository too (core-services/sanitize-prow-jobs/_config.yaml, _clusters.yaml)")
}

func (f *gitJobsFlags) Validate() error {
	if f.url == "" {
		if f.configsFromGit || f.tokenPath != "" {
			return errors.New("--configs-from-git and --job-config-git-token-path need --job-config-git-url")
		}
		return nil
	}
	if f.username != "" && f.tokenPath == "" {
		return errors.New("--job-config-git-username needs --job-config-git-token-path")
	}
	var errs []error
	if _, _, _, _, err := gitjobs.ParseURL(f.url); err != nil {
		errs = append(errs, fmt.Errorf("--job-config-git-url: %w", err))
	}
	if f.branch == "" {
		errs = append(errs, errors.New("--job-config-git-branch must not be empty"))
	}
	if f.interval < time.Second {
		errs = append(errs, fmt.Errorf("--job-config-git-interval %s: want at least 1s", f.interval))
	}
	return errors.Join(errs...)
}

// start fetches the repository once (a failure is logged, not fatal: the
// saved table serves until a later fetch works), points opts' paths into the checkout, makes every
// dispatch fetch first and returns the source, whose Run the caller starts.
// trigger is called when a fetch brings a new revision. Without
// --job-config-git-url it returns nil.
func (f *gitJobsFlags) start(ctx context.Context, opts *dispatch.Options, trigger func(), reg prometheus.Registerer, log logr.Logger) (*gitjobs.Source, func(), error) {
	noop := func() {}
	if f.url == "" {
		return nil, noop, nil
	}
	dir := f.dir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "prowjob-dispatcher-job-config")
	}
	paths := []string{opts.JobConfigDir}
	if f.configsFromGit {
		paths = append(paths, opts.DispatcherConfigPath, opts.ClusterConfigPath)
	}
	src, err := gitjobs.New(gitjobs.Options{
		URL: f.url, Branch: f.branch, TokenPath: f.tokenPath, Username: f.username, Paths: paths, Dir: dir,
		Interval: f.interval, OnChange: trigger, Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, noop, err
	}
	if f.tokenPath != "" && strings.HasPrefix(strings.ToLower(f.url), "http://") {
		log.Info("Warning: the Git token is sent over plain HTTP, readable by anyone on the path: use an https:// --job-config-git-url", "repository", f.url)
	}
	cleanup := src.Close
	start := time.Now()
	if _, err := src.Sync(ctx); err != nil {
		// Not fatal: the table saved before serves, /readyz shows the
		// error, the fetch is retried every interval and the inputs load
		// once a tree is in force.
		log.Error(err, "The first fetch of the job config failed: serving the saved table until a fetch works", "repository", f.url, "branch", f.branch)
		opts.DeferInputs = true // without a saved table, New still fails: there is nothing to serve
	} else {
		log.Info("Job config from Git", "repository", f.url, "branch", f.branch, "revision", src.Status().Revision, "paths", paths, "took", time.Since(start).Round(time.Millisecond))
	}
	opts.JobConfigDir = src.Path(opts.JobConfigDir)
	if f.configsFromGit {
		opts.DispatcherConfigPath, opts.ClusterConfigPath = src.Path(opts.DispatcherConfigPath), src.Path(opts.ClusterConfigPath)
	}
	opts.NoWatch = true // the trees never change; a new one comes with OnChange
	opts.Refresh = func(ctx context.Context) error {
		_, err := src.Sync(ctx)
		return err
	}
	return src, cleanup, nil
}
