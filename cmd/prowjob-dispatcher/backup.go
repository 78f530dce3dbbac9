package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/prow/pkg/config/secret"
	prowflagutil "sigs.k8s.io/prow/pkg/flagutil"
	gitv2 "sigs.k8s.io/prow/pkg/git/v2"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/gitbackup"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// backupFlags are serve's flags of the Git backup of the table: a pull
// request to the release repository that rewrites the dispatcher config's
// buildFarm from the live table. Empty --backup-repo turns it off.
type backupFlags struct {
	repo                     string
	baseBranch, headBranch   string
	path, title              string
	labels                   string
	interval, retryDelay     time.Duration
	dryRun, pushToFork       bool
	cacheDir                 string
	gitInsecureHTTP          bool
	github                   prowflagutil.GitHubOptions
	org, repoName            string // split from repo by validate
	parsedLabels             []string
	githubValidated, enabled bool
}

func (f *backupFlags) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.repo, "backup-repo", "", "org/repo of the release repository whose dispatcher config the Git backup keeps in step with the table (empty: no backup)")
	fs.StringVar(&f.baseBranch, "backup-base-branch", gitbackup.DefaultBaseBranch, "branch the backup pull request merges into")
	fs.StringVar(&f.headBranch, "backup-branch", gitbackup.DefaultHeadBranch, "branch the backup force-pushes and opens its pull request from")
	fs.StringVar(&f.path, "backup-path", gitbackup.DefaultPath, "path of the dispatcher config in the repository; only its buildFarm section is rewritten")
	fs.StringVar(&f.title, "backup-title", gitbackup.DefaultTitle, "title of the backup pull request and its commit")
	fs.StringVar(&f.labels, "backup-labels", "", "comma-separated labels added to the backup pull request")
	fs.DurationVar(&f.interval, "backup-interval", gitbackup.DefaultMinInterval, "least time between two backup pushes; a dispatch within it is backed up at its end")
	fs.DurationVar(&f.retryDelay, "backup-retry-delay", gitbackup.DefaultInitialBackoff, "wait before retrying a failed backup; it doubles on each failure, up to an hour (or this, if longer)")
	fs.BoolVar(&f.dryRun, "backup-dry-run", false, "print the backup's diff on stdout instead of pushing and opening a pull request")
	fs.BoolVar(&f.pushToFork, "backup-push-to-fork", true, "push the backup branch to the bot's fork of --backup-repo (false: to --backup-repo itself)")
	fs.StringVar(&f.cacheDir, "backup-cache-dir", "", "dir keeping the git mirror of --backup-repo across restarts (empty: a temporary dir, cloned again at each start)")
	fs.BoolVar(&f.gitInsecureHTTP, "backup-git-insecure-http", false, "talk to the git host (--github-host) over plain HTTP (tests only)")
	f.github.AddFlags(fs)
}

func (f *backupFlags) Validate() error {
	if f.repo == "" {
		return nil
	}
	var errs []error
	org, repo, ok := strings.Cut(f.repo, "/")
	if !ok || org == "" || repo == "" || strings.Contains(repo, "/") {
		errs = append(errs, fmt.Errorf("--backup-repo %q: want org/repo", f.repo))
	}
	f.org, f.repoName = org, repo
	if f.baseBranch == "" || f.headBranch == "" || f.baseBranch == f.headBranch {
		errs = append(errs, fmt.Errorf("--backup-base-branch %q, --backup-branch %q: want two different branches", f.baseBranch, f.headBranch))
	}
	if f.interval <= 0 {
		errs = append(errs, fmt.Errorf("--backup-interval %s: want a positive duration", f.interval))
	}
	if f.retryDelay <= 0 {
		errs = append(errs, fmt.Errorf("--backup-retry-delay %s: want a positive duration", f.retryDelay))
	}
	if f.github.AppID != "" {
		errs = append(errs, errors.New("--backup-repo: GitHub App authentication is not supported; use --github-token-path"))
	}
	if f.github.TokenPath == "" && !f.dryRun {
		errs = append(errs, errors.New("--backup-repo needs --github-token-path (or --backup-dry-run)"))
	}
	if err := f.github.Validate(f.dryRun); err != nil {
		errs = append(errs, fmt.Errorf("--backup-repo: %w", err))
	}
	for _, l := range strings.Split(f.labels, ",") {
		if l = strings.TrimSpace(l); l != "" {
			f.parsedLabels = append(f.parsedLabels, l)
		}
	}
	f.enabled = len(errs) == 0
	return errors.Join(errs...)
}

// attach builds the Git backup (build) and has every dispatch in opts
// notify it.
func (f *backupFlags) attach(opts *dispatch.Options, buildFarm func() map[string]map[string]*config.BuildFarmCluster, reg prometheus.Registerer, log logr.Logger, diffOut, logOut io.Writer) (*gitbackup.Backup, func(), error) {
	b, cleanup, err := f.build(buildFarm, reg, log, diffOut, logOut)
	if b != nil {
		opts.OnDispatched = func(_ *table.Table, r *engine.Report) { b.Notify(r) }
	}
	return b, cleanup, err
}

// build returns the Git backup, nil when --backup-repo is empty, and a func
// that removes its temporary git cache. It makes no network call: the
// GitHub bot's login and the token are read when a backup runs, so a
// failing GitHub cannot keep the dispatcher from starting.
func (f *backupFlags) build(buildFarm func() map[string]map[string]*config.BuildFarmCluster, reg prometheus.Registerer, log logr.Logger, diffOut, logOut io.Writer) (*gitbackup.Backup, func(), error) {
	noop := func() {}
	if f.repo == "" {
		return nil, noop, nil
	}
	if !f.enabled {
		return nil, noop, errors.New("--backup-repo: flags not validated")
	}
	// prow's git and GitHub clients log with logrus' standard logger, which
	// logFlags.setUp routes into the process's log; git's log lines can carry
	// the remote's URL with the token, which the log's writer censors.

	opts := gitbackup.Options{
		Org: f.org, Repo: f.repoName, BaseBranch: f.baseBranch, HeadBranch: f.headBranch, Path: f.path,
		Title: f.title, Labels: f.parsedLabels, MinInterval: f.interval,
		InitialBackoff: f.retryDelay, MaxBackoff: max(time.Hour, f.retryDelay),
		PushToFork: f.pushToFork, DryRun: f.dryRun, DiffOut: diffOut,
		BuildFarm: buildFarm, Logger: log, Registerer: reg,
	}
	persist := f.cacheDir != ""
	gitOpts := gitv2.ClientFactoryOpts{
		Host:            f.github.Host,
		UseInsecureHTTP: &f.gitInsecureHTTP,
		Persist:         &persist,
		Censor:          secret.Censor,
	}
	if persist {
		if err := os.MkdirAll(f.cacheDir, 0o755); err != nil {
			return nil, noop, fmt.Errorf("--backup-cache-dir: %w", err)
		}
		gitOpts.CacheDirBase = &f.cacheDir
	}
	if f.github.TokenPath != "" {
		ghc, err := f.github.GitHubClient(false)
		if err != nil {
			return nil, noop, fmt.Errorf("--backup-repo: GitHub client: %w", err)
		}
		opts.GitHub = ghc
		token := secret.GetTokenGenerator(f.github.TokenPath)
		gitOpts.Username = func() (string, error) {
			u, err := ghc.BotUser()
			if err != nil {
				return "", fmt.Errorf("the GitHub bot: %w", err)
			}
			return u.Login, nil
		}
		gitOpts.Token = func(string) (string, error) { return string(token()), nil }
		gitOpts.GitUser = func() (string, string, error) {
			u, err := ghc.BotUser()
			if err != nil {
				return "", "", fmt.Errorf("the GitHub bot: %w", err)
			}
			return gitbackup.BotIdentity(u)
		}
		opts.GitUser = gitOpts.GitUser
	}
	factory, err := gitv2.NewClientFactory(gitOpts.Apply)
	if err != nil {
		return nil, noop, fmt.Errorf("--backup-repo: git client: %w", err)
	}
	cleanup := func() {
		if !persist {
			_ = factory.Clean()
		}
	}
	opts.Git = factory
	b, err := gitbackup.New(opts)
	if err != nil {
		cleanup()
		return nil, noop, err
	}
	return b, cleanup, nil
}
