package gitbackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	git "sigs.k8s.io/prow/pkg/git/v2"
	"sigs.k8s.io/prow/pkg/github"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
)

// Defaults of Options.
const (
	DefaultBaseBranch     = "master"
	DefaultHeadBranch     = "prowjob-dispatcher-buildfarm"
	DefaultPath           = "core-services/sanitize-prow-jobs/_config.yaml"
	DefaultTitle          = "Update the buildFarm from prowjob-dispatcher's table"
	DefaultMinInterval    = 24 * time.Hour
	DefaultInitialBackoff = time.Minute
	DefaultMaxBackoff     = time.Hour
)

// DefaultBody is the pull request's default description.
const DefaultBody = "prowjob-dispatcher rewrote the `buildFarm` section of this file from its live table " +
	"(`GET /api/v1/buildfarm`), so that ProwJobs its admission webhook does not see (failurePolicy Ignore) " +
	"run on the cluster it would choose. Every other key is unchanged. This pull request is opened and " +
	"updated automatically, at most once per period, after a dispatch that moved jobs."

// GitHubClient is the part of prow's github.Client the backup uses; prow's
// fakegithub.FakeClient implements it.
type GitHubClient interface {
	BotUser() (*github.UserData, error)
	FindIssues(query, sort string, asc bool) ([]github.Issue, error)
	GetIssue(org, repo string, number int) (*github.Issue, error)
	CreatePullRequest(org, repo, title, body, head, base string, canModify bool) (int, error)
	UpdatePullRequest(org, repo string, number int, title, body *string, open *bool, branch *string, canModify *bool) error
	AddLabel(org, repo string, number int, label string) error
}

// Options configure a Backup. Org, Repo, Git and BuildFarm are required,
// and GitHub unless DryRun.
type Options struct {
	// Org and Repo name the release repository.
	Org, Repo string
	// BaseBranch is the branch the pull request merges into; default DefaultBaseBranch.
	BaseBranch string
	// HeadBranch is the branch the backup force-pushes; default DefaultHeadBranch.
	HeadBranch string
	// Path is the dispatcher config file in the repository; default DefaultPath.
	Path string
	// Title and Body are the pull request's and the commit's; defaults DefaultTitle and DefaultBody.
	Title, Body string
	// Labels are added to the pull request.
	Labels []string
	// MinInterval is the least time between two pushes: a dispatch within it
	// is backed up at its end. Default DefaultMinInterval.
	MinInterval time.Duration
	// InitialBackoff and MaxBackoff bound the wait before retrying a failed
	// run: it doubles from InitialBackoff up to MaxBackoff, and retries go on
	// until a run succeeds. Defaults DefaultInitialBackoff and DefaultMaxBackoff.
	InitialBackoff, MaxBackoff time.Duration
	// PushToFork pushes the head branch to the bot's fork (the pull request's
	// head is then "<bot>:<branch>"); otherwise to the repository itself.
	PushToFork bool
	// DryRun computes the new file and writes its unified diff to DiffOut
	// (or the log), and pushes and opens nothing.
	DryRun bool
	// DiffOut receives the dry run's diffs; nil logs them.
	DiffOut io.Writer
	// GitHub opens and updates the pull request.
	GitHub GitHubClient
	// Git clones the repository and pushes the head branch.
	Git git.ClientFactory
	// GitUser names the committer; nil uses the GitHub bot's login.
	GitUser git.GitUserGetter
	// BuildFarm returns the buildFarm of the live table
	// ((*dispatch.Dispatcher).BuildFarm).
	BuildFarm func() map[string]map[string]*config.BuildFarmCluster
	// Logger logs each run; default discards.
	Logger logr.Logger
	// Clock is the time source; default the real clock.
	Clock clock.Clock
	// Registerer registers the metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.BaseBranch == "" {
		o.BaseBranch = DefaultBaseBranch
	}
	if o.HeadBranch == "" {
		o.HeadBranch = DefaultHeadBranch
	}
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.Title == "" {
		o.Title = DefaultTitle
	}
	if o.Body == "" {
		o.Body = DefaultBody
	}
	if o.MinInterval == 0 {
		o.MinInterval = DefaultMinInterval
	}
	if o.InitialBackoff == 0 {
		o.InitialBackoff = DefaultInitialBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.Org == "" || o.Repo == "" || strings.Contains(o.Org+o.Repo, "/") {
		errs = append(errs, fmt.Errorf("repository %q/%q: want an org and a repo", o.Org, o.Repo))
	}
	if o.HeadBranch == o.BaseBranch {
		errs = append(errs, fmt.Errorf("head branch %q is the base branch", o.HeadBranch))
	}
	if p := path.Clean(o.Path); p != o.Path || path.IsAbs(p) || p == "." || strings.HasPrefix(p, "../") {
		errs = append(errs, fmt.Errorf("path %q: want a clean path relative to the repository root", o.Path))
	}
	if o.MinInterval < 0 || o.InitialBackoff < 0 || o.MaxBackoff < o.InitialBackoff {
		errs = append(errs, fmt.Errorf("min interval %s, backoff %s..%s: want durations >= 0, the max backoff not below the initial one", o.MinInterval, o.InitialBackoff, o.MaxBackoff))
	}
	if o.Git == nil {
		errs = append(errs, errors.New("no git client factory"))
	}
	if o.GitHub == nil && !o.DryRun {
		errs = append(errs, errors.New("no GitHub client (required unless dry run)"))
	}
	if o.BuildFarm == nil {
		errs = append(errs, errors.New("no BuildFarm func"))
	}
	return errors.Join(errs...)
}

// Status is the backup's state, for an operator (/readyz can fold it in).
type Status struct {
	// Repo is "org/repo:path" of the backed-up file.
	Repo string `json:"repo"`
	// DryRun is true when nothing is pushed.
	DryRun bool `json:"dryRun,omitempty"`
	// Pending is true while a dispatch that moved jobs waits to be backed up.
	Pending bool `json:"pending"`
	// NextAttempt is when a pending backup runs (end of the interval, or of a retry's backoff).
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	// LastAttempt is when the last run ended; LastResult is its result.
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	LastResult  string    `json:"lastResult,omitempty"`
	// LastSuccess is when a run last succeeded; LastPush when one last pushed.
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastPush    time.Time `json:"lastPush,omitzero"`
	// LastError is the last run's error, empty once a run succeeds.
	LastError string `json:"lastError,omitempty"`
	// ConsecutiveFailures counts the failed runs since the last success.
	ConsecutiveFailures int `json:"consecutiveFailures,omitempty"`
	// PullRequest is the number of the pull request last opened or updated.
	PullRequest int `json:"pullRequest,omitempty"`
}

// Backup opens or updates the backup pull request. Notify asks for a run;
// Run does the runs.
type Backup struct {
	opts    Options
	metrics *metrics
	notify  chan struct{}

	mu     sync.Mutex
	status Status
}

// New checks opts and returns a Backup; call Run to start it.
func New(opts Options) (*Backup, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("git backup: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Backup{
		opts:    opts,
		metrics: m,
		notify:  make(chan struct{}, 1),
		status:  Status{Repo: opts.Org + "/" + opts.Repo + ":" + opts.Path, DryRun: opts.DryRun},
	}, nil
}

// Notify asks for a backup after a full dispatch; it never blocks. A report
// that moved no job asks for nothing. Requests coalesce: those made while
// one waits or runs give one more run, with the table as it is then.
// Call it from dispatch.Options.OnDispatched.
func (b *Backup) Notify(r *engine.Report) {
	if r == nil || len(r.Moves) == 0 {
		return
	}
	select {
	case b.notify <- struct{}{}:
	default: // one is already queued
	}
}

// Status returns the backup's state.
func (b *Backup) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// Run backs up the table when notified until ctx is done; it returns nil
// then. A notification within MinInterval of the last push waits for the
// interval's end; a failed run is retried after a backoff that doubles up
// to MaxBackoff. A run in progress finishes before Run returns.
func (b *Backup) Run(ctx context.Context) error {
	log := b.opts.Logger
	var (
		pending   bool
		retryAt   time.Time // after a failure: not before this
		failures  int
		lastPush  time.Time
		timer     clock.Timer
		stopTimer = func() {
			if timer != nil {
				timer.Stop()
				timer = nil
			}
		}
	)
	defer stopTimer()
	for {
		var fire <-chan time.Time
		due := false
		if pending {
			next := retryAt
			if !lastPush.IsZero() {
				if end := lastPush.Add(b.opts.MinInterval); end.After(next) {
					next = end
				}
			}
			now := b.opts.Clock.Now()
			b.setPending(true, next)
			if due = !next.After(now); !due {
				stopTimer()
				timer = b.opts.Clock.NewTimer(next.Sub(now))
				fire = timer.C()
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if !due {
			select {
			case <-ctx.Done():
				return nil
			case <-b.notify:
				if !pending {
					log.V(1).Info("A dispatch moved jobs: backing up the buildFarm")
				}
				pending = true
				continue
			case <-fire:
			}
		}
		stopTimer()
		select { // a request queued before the run reads the table is served by it
		case <-b.notify:
		default:
		}
		result, pr, err := b.safeRunOnce(ctx)
		if ctx.Err() != nil { // shutting down: the run may have been cut short
			return nil
		}
		now := b.opts.Clock.Now()
		if err != nil {
			failures++
			backoff := b.opts.InitialBackoff
			for i := 1; i < failures && backoff < b.opts.MaxBackoff; i++ {
				backoff *= 2
			}
			backoff = min(backoff, b.opts.MaxBackoff)
			retryAt = now.Add(backoff)
			log.Error(err, "Git backup failed: retrying", "failures", failures, "retryIn", backoff.String())
		} else {
			failures, retryAt, pending = 0, time.Time{}, false
			if result == ResultPushed || result == ResultDryRun {
				lastPush = now
			}
		}
		b.ran(now, result, pr, failures, err, lastPush)
	}
}

// safeRunOnce is runOnce with a panic (of a client) turned into a failed
// run: the backup never takes the process down.
func (b *Backup) safeRunOnce(ctx context.Context) (result string, pr int, err error) {
	defer func() {
		if p := recover(); p != nil {
			result, pr, err = ResultError, 0, fmt.Errorf("git backup: panic: %v", p)
		}
	}()
	return b.runOnce(ctx)
}

func (b *Backup) setPending(p bool, next time.Time) {
	b.mu.Lock()
	b.status.Pending, b.status.NextAttempt = p, next
	b.mu.Unlock()
	b.metrics.setPending(p)
}

// ran records one run's outcome.
func (b *Backup) ran(now time.Time, result string, pr, failures int, err error, lastPush time.Time) {
	b.mu.Lock()
	st := &b.status
	st.LastAttempt, st.LastResult, st.ConsecutiveFailures, st.LastPush = now, result, failures, lastPush
	if pr > 0 {
		st.PullRequest = pr
	}
	if err != nil {
		st.LastError = err.Error()
	} else {
		st.LastError, st.LastSuccess, st.Pending, st.NextAttempt = "", now, false, time.Time{}
	}
	b.mu.Unlock()
	b.metrics.ran(result, now, pr, failures)
	if err == nil {
		b.metrics.setPending(false)
	}
}
