package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"sigs.k8s.io/prow/pkg/github"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// Name is the plugin's name in Prow's plugins.yaml.
const Name = "prowjob-dispatcher"

// githubClient is what the plugin needs of GitHub; prow's github.Client and
// fakegithub.FakeClient satisfy it.
type githubClient interface {
	CreateComment(org, repo string, number int, comment string) error
	GetPullRequest(org, repo string, number int) (*github.PullRequest, error)
	IsMember(org, user string) (bool, error)
	TeamBySlugHasMember(org, teamSlug, memberLogin string) (bool, error)
	BotUserChecker() (func(candidate string) bool, error)
	GetPullRequestChanges(org, repo string, number int) ([]github.PullRequestChange, error)
	GetFile(org, repo, filepath, commit string) ([]byte, error)
	ListIssueComments(org, repo string, number int) ([]github.IssueComment, error)
	EditComment(org, repo string, id int, comment string) error
}

// dispatcherClient is what the plugin needs of the dispatcher's API; *api.Client satisfies it.
type dispatcherClient interface {
	Assignment(ctx context.Context, job string) (*api.Assignment, error)
	Dispatch(ctx context.Context) (*api.DispatchResponse, error)
	Reschedule(ctx context.Context, req api.RescheduleRequest) (*api.RescheduleResponse, error)
	Clusters(ctx context.Context) ([]api.ClusterStatus, error)
	Drain(ctx context.Context, cluster string, req api.DrainRequest) (*api.DrainPlan, error)
	Undrain(ctx context.Context, cluster, by string) (*api.UndrainResponse, error)
	Plan(ctx context.Context, req api.PlanRequest) (*api.PlanResponse, error)
}

// Options configure a Plugin.
type Options struct {
	// GitHub posts replies and answers membership questions.
	GitHub githubClient
	// Dispatcher is the dispatcher's API.
	Dispatcher dispatcherClient
	// Presubmits lists a PR's presubmits for /dispatch.
	Presubmits PresubmitsFunc
	// Config is the plugin config (trust rules, default TTL).
	Config *Config
	// DryRun answers commands but makes no change in the dispatcher.
	DryRun bool
	// Concurrency bounds parallel assignment look-ups for /dispatch; 8 when zero.
	Concurrency int
	// Timeout bounds the handling of one comment; 2 minutes when zero.
	Timeout time.Duration
	// PlanLimits bound how often /dispatch plan runs, per PR and per user.
	PlanLimits PlanLimits
	// Registerer, if set, gets the plugin's metrics: commands by name and
	// outcome, failed GitHub calls.
	Registerer prometheus.Registerer
}

// Plugin handles the /dispatch (with its refresh, plan, drain, cap and
// undrain forms) and /reschedule commands, and comments the plan of PRs
// that change the config files.
type Plugin struct {
	opts Options
	// prs serializes the plan comments of each PR, so that two pushes
	// handled at once edit one comment rather than create two.
	prs keyedMutex
	// planLimits refuse /dispatch plan asked for too often.
	planLimits *planLimiter
	metrics    *metrics
}

// New returns a Plugin.
func New(opts Options) (*Plugin, error) {
	if opts.GitHub == nil || opts.Dispatcher == nil || opts.Presubmits == nil || opts.Config == nil {
		return nil, errors.New("plugin: GitHub, Dispatcher, Presubmits and Config are required")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	opts.GitHub = m.countErrors(opts.GitHub)
	return &Plugin{opts: opts, planLimits: newPlanLimiter(opts.PlanLimits), metrics: m}, nil
}

// HandleIssueComment handles the commands of a newly created PR comment.
// Other actions, comments on issues and the bot's own comments are ignored.
// A comment gets one reply, whatever the number of its commands: a command
// repeated in the comment runs once, and the answers of different commands
// are sections of that reply. The returned error is for the log only.
func (p *Plugin) HandleIssueComment(ctx context.Context, log *logrus.Entry, ic github.IssueCommentEvent) error {
	if ic.Action != github.IssueCommentActionCreated || !ic.Issue.IsPullRequest() {
		return nil
	}
	cmds := parseCommands(ic.Comment.Body)
	if len(cmds) == 0 {
		return nil
	}
	isBot, err := p.opts.GitHub.BotUserChecker()
	if err != nil {
		return fmt.Errorf("getting the bot's login: %w", err)
	}
	if isBot(ic.Comment.User.Login) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	var unique []command
	for _, c := range cmds {
		if !slices.Contains(unique, c) {
			unique = append(unique, c)
		}
	}
	sections := make([]string, 0, len(unique))
	for _, c := range unique {
		message, outcome, err := p.run(ctx, log, ic, c)
		p.metrics.command(c.kind, outcome)
		if err != nil {
			log.WithError(err).WithField("command", c.kind.String()).Info("Command failed.")
		}
		if message == "" {
			continue // the command's answer is elsewhere (the plan comment)
		}
		if len(unique) > 1 {
			message = "**" + code(c.typed()) + "**: " + message
		}
		sections = append(sections, message)
	}
	if len(sections) == 0 {
		return nil
	}
	return reply(p.opts.GitHub, ic, strings.Join(sections, "\n\n"))
}

// run runs one command and returns the reply, its outcome for the metrics,
// and the error behind a failure for the log.
func (p *Plugin) run(ctx context.Context, log *logrus.Entry, ic github.IssueCommentEvent, c command) (string, string, error) {
	withOutcome := func(message string, err error) (string, string, error) {
		if err != nil {
			return message, outcomeError, err
		}
		return message, outcomeOK, nil
	}
	switch c.kind {
	case cmdDispatch:
		message, err := p.dispatchTable(ctx, ic)
		if err == nil {
			message += p.drainsSection(ctx, log)
		}
		return withOutcome(message, err)
	case cmdPlan:
		if refusal := p.limitPlan(log, ic); refusal != "" {
			return refusal, outcomeLimited, nil
		}
		return withOutcome(p.runPlan(ctx, log, ic))
	case cmdDispatchUsage, cmdRescheduleUsage, cmdDrainUsage, cmdCapUsage, cmdUndrainUsage:
		return "I did not understand that. Usage: " + usageHelp(c.kind), outcomeMalformed, errors.New(c.kind.String())
	}
	login := ic.Comment.User.Login
	ok, err := trusted(p.opts.GitHub, p.opts.Config, login)
	if err != nil {
		return "I could not check whether you may use this command (GitHub did not answer). Nothing was changed; please try again later.", outcomeError, err
	}
	if !ok {
		log.WithField("user", login).WithField("command", c.kind.String()).Info("Untrusted user; command refused.")
		return fmt.Sprintf("sorry, only %s may use %s. Nothing was changed. %s is open to everyone.",
			whoMayUse(p.opts.Config), code(c.kind.word()), code("/dispatch")), outcomeRefused, nil
	}
	switch c.kind {
	case cmdRefresh:
		message, err := p.refresh(ctx)
		if err == nil && !p.opts.DryRun {
			message += p.drainsSection(ctx, log)
		}
		return withOutcome(message, err)
	case cmdDrain, cmdCap:
		return withOutcome(p.drain(ctx, ic, c))
	case cmdUndrain:
		return withOutcome(p.undrain(ctx, ic, c))
	default:
		return withOutcome(p.reschedule(ctx, ic, c))
	}
}

// String names the command for logs.
func (k commandKind) String() string {
	switch k {
	case cmdDispatch:
		return "dispatch"
	case cmdRefresh:
		return "dispatch refresh"
	case cmdPlan:
		return "dispatch plan"
	case cmdReschedule:
		return "reschedule"
	case cmdDrain:
		return "dispatch drain"
	case cmdCap:
		return "dispatch cap"
	case cmdUndrain:
		return "dispatch undrain"
	case cmdDispatchUsage:
		return "malformed dispatch"
	case cmdDrainUsage:
		return "malformed dispatch drain"
	case cmdCapUsage:
		return "malformed dispatch cap"
	case cmdUndrainUsage:
		return "malformed dispatch undrain"
	default:
		return "malformed reschedule"
	}
}

// typed is the command as typed, for section headings and hints.
func (c command) typed() string {
	switch c.kind {
	case cmdDispatch:
		return "/dispatch"
	case cmdRefresh:
		return "/dispatch refresh"
	case cmdPlan:
		return "/dispatch plan"
	case cmdReschedule:
		return strings.TrimSpace("/reschedule " + c.job + " " + c.cluster)
	case cmdDrain, cmdCap:
		s := "/dispatch drain " + c.cluster + " " + c.ttl + " " + c.reason
		if c.kind == cmdCap {
			s = fmt.Sprintf("/dispatch cap %s %d %s %s", c.cluster, c.capacity, c.ttl, c.reason)
		}
		if c.force {
			s += " --force"
		}
		if c.dryRun {
			s += " --dry-run"
		}
		return s
	case cmdUndrain:
		return "/dispatch undrain " + c.cluster
	case cmdDispatchUsage:
		return "/dispatch ..."
	case cmdDrainUsage:
		return "/dispatch drain ..."
	case cmdCapUsage:
		return "/dispatch cap ..."
	case cmdUndrainUsage:
		return "/dispatch undrain ..."
	default:
		return "/reschedule ..."
	}
}

// word is the trusted command's name, for refusals.
func (k commandKind) word() string {
	switch k {
	case cmdRefresh:
		return "/dispatch refresh"
	case cmdDrain:
		return "/dispatch drain"
	case cmdCap:
		return "/dispatch cap"
	case cmdUndrain:
		return "/dispatch undrain"
	default:
		return "/reschedule"
	}
}
