package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
}

// dispatcherClient is what the plugin needs of the dispatcher's API; *api.Client satisfies it.
type dispatcherClient interface {
	Assignment(ctx context.Context, job string) (*api.Assignment, error)
	Dispatch(ctx context.Context) (*api.DispatchResponse, error)
	Reschedule(ctx context.Context, req api.RescheduleRequest) (*api.RescheduleResponse, error)
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
}

// Plugin handles the /dispatch and /reschedule commands.
type Plugin struct {
	opts Options
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
	return &Plugin{opts: opts}, nil
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
		message, err := p.run(ctx, log, ic, c)
		if err != nil {
			log.WithError(err).WithField("command", c.kind.String()).Info("Command failed.")
		}
		if len(unique) > 1 {
			message = "**" + code(c.typed()) + "**: " + message
		}
		sections = append(sections, message)
	}
	return reply(p.opts.GitHub, ic, strings.Join(sections, "\n\n"))
}

// run runs one command and returns the reply, and the error behind a failure for the log.
func (p *Plugin) run(ctx context.Context, log *logrus.Entry, ic github.IssueCommentEvent, c command) (string, error) {
	switch c.kind {
	case cmdDispatch:
		return p.dispatchTable(ctx, ic)
	case cmdDispatchUsage:
		return fmt.Sprintf("I did not understand that. Usage: %s", code(dispatchUsage)), errors.New("malformed /dispatch")
	case cmdRescheduleUsage:
		return fmt.Sprintf("I did not understand that. Usage: %s (the cluster is optional: without it the dispatcher picks the best other eligible cluster).", code(rescheduleUsage)), errors.New("malformed /reschedule")
	}
	login := ic.Comment.User.Login
	ok, err := trusted(p.opts.GitHub, p.opts.Config, login)
	if err != nil {
		return "I could not check whether you may use this command (GitHub did not answer). Nothing was changed; please try again later.", err
	}
	if !ok {
		log.WithField("user", login).WithField("command", c.kind.String()).Info("Untrusted user; command refused.")
		return fmt.Sprintf("sorry, only %s may use %s. Nothing was changed. %s is open to everyone.",
			whoMayUse(p.opts.Config), code(c.kind.word()), code("/dispatch")), nil
	}
	switch c.kind {
	case cmdRefresh:
		return p.refresh(ctx)
	default:
		return p.reschedule(ctx, ic, c)
	}
}

// String names the command for logs.
func (k commandKind) String() string {
	switch k {
	case cmdDispatch:
		return "dispatch"
	case cmdRefresh:
		return "dispatch refresh"
	case cmdReschedule:
		return "reschedule"
	case cmdDispatchUsage:
		return "malformed dispatch"
	default:
		return "malformed reschedule"
	}
}

// typed is the command as typed, for section headings.
func (c command) typed() string {
	switch c.kind {
	case cmdDispatch:
		return "/dispatch"
	case cmdRefresh:
		return "/dispatch refresh"
	case cmdReschedule:
		return strings.TrimSpace("/reschedule " + c.job + " " + c.cluster)
	case cmdDispatchUsage:
		return "/dispatch ..."
	default:
		return "/reschedule ..."
	}
}

// word is the command as typed.
func (k commandKind) word() string {
	if k == cmdRefresh {
		return "/dispatch refresh"
	}
	return "/reschedule"
}
