package plugin

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/prow/pkg/github"
)

// The outcomes of prowjob_dispatcher_plugin_commands_total.
const (
	outcomeOK        = "ok"        // answered (a refusal by the dispatcher, such as a stranding drain, included)
	outcomeError     = "error"     // GitHub or the dispatcher failed
	outcomeRefused   = "refused"   // the user may not use the command
	outcomeLimited   = "limited"   // /dispatch plan asked too often
	outcomeMalformed = "malformed" // not understood: usage given
)

// metrics are the plugin's collectors. A nil *metrics records nothing.
type metrics struct {
	commands     *prometheus.CounterVec
	githubErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prowjob_dispatcher_plugin_commands_total",
			Help: "Commands the plugin ran, by command (dispatch, dispatch_refresh, dispatch_plan, dispatch_drain, dispatch_cap, dispatch_undrain, reschedule) and outcome (ok, error, refused, limited, malformed).",
		}, []string{"command", "outcome"}),
		githubErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prowjob_dispatcher_plugin_github_errors_total",
			Help: "GitHub API calls of the plugin that failed, by operation.",
		}, []string{"operation"}),
	}
	for _, c := range []prometheus.Collector{m.commands, m.githubErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the plugin's metrics: %w", err)
		}
	}
	// Every series from 0, so that increase() sees the first of each.
	for k := cmdDispatch; k <= cmdUndrain; k++ {
		for _, o := range []string{outcomeOK, outcomeError, outcomeRefused, outcomeLimited, outcomeMalformed} {
			m.commands.WithLabelValues(commandLabel(k), o)
		}
	}
	for _, op := range githubOperations {
		m.githubErrors.WithLabelValues(op)
	}
	return m, nil
}

// commandLabel is a command kind's label: its log name, malformed forms
// under the command they meant.
func commandLabel(k commandKind) string {
	return strings.ReplaceAll(strings.TrimPrefix(k.String(), "malformed "), " ", "_")
}

func (m *metrics) command(k commandKind, outcome string) {
	if m != nil {
		m.commands.WithLabelValues(commandLabel(k), outcome).Inc()
	}
}

// githubOperations are the operation labels of countingGitHub.
var githubOperations = []string{"create_comment", "get_pull_request", "is_member", "team_has_member", "bot_user",
	"get_pull_request_changes", "get_file", "list_issue_comments", "edit_comment"}

// countingGitHub counts the failed calls of a githubClient.
type countingGitHub struct {
	githubClient
	errors *prometheus.CounterVec
}

// countErrors wraps gh so that its failures are counted; with nil m, gh itself.
func (m *metrics) countErrors(gh githubClient) githubClient {
	if m == nil {
		return gh
	}
	return countingGitHub{githubClient: gh, errors: m.githubErrors}
}

func (c countingGitHub) count(op string, err error) {
	if err != nil {
		c.errors.WithLabelValues(op).Inc()
	}
}

func (c countingGitHub) CreateComment(org, repo string, number int, comment string) error {
	err := c.githubClient.CreateComment(org, repo, number, comment)
	c.count("create_comment", err)
	return err
}

func (c countingGitHub) GetPullRequest(org, repo string, number int) (*github.PullRequest, error) {
	pr, err := c.githubClient.GetPullRequest(org, repo, number)
	c.count("get_pull_request", err)
	return pr, err
}

func (c countingGitHub) IsMember(org, user string) (bool, error) {
	ok, err := c.githubClient.IsMember(org, user)
	c.count("is_member", err)
	return ok, err
}

func (c countingGitHub) TeamBySlugHasMember(org, teamSlug, memberLogin string) (bool, error) {
	ok, err := c.githubClient.TeamBySlugHasMember(org, teamSlug, memberLogin)
	c.count("team_has_member", err)
	return ok, err
}

func (c countingGitHub) BotUserChecker() (func(candidate string) bool, error) {
	f, err := c.githubClient.BotUserChecker()
	c.count("bot_user", err)
	return f, err
}

func (c countingGitHub) GetPullRequestChanges(org, repo string, number int) ([]github.PullRequestChange, error) {
	ch, err := c.githubClient.GetPullRequestChanges(org, repo, number)
	c.count("get_pull_request_changes", err)
	return ch, err
}

func (c countingGitHub) GetFile(org, repo, filepath, commit string) ([]byte, error) {
	b, err := c.githubClient.GetFile(org, repo, filepath, commit)
	c.count("get_file", err)
	return b, err
}

func (c countingGitHub) ListIssueComments(org, repo string, number int) ([]github.IssueComment, error) {
	cs, err := c.githubClient.ListIssueComments(org, repo, number)
	c.count("list_issue_comments", err)
	return cs, err
}

func (c countingGitHub) EditComment(org, repo string, id int, comment string) error {
	err := c.githubClient.EditComment(org, repo, id, comment)
	c.count("edit_comment", err)
	return err
}
