package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/prow/pkg/github"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// reschedule answers /reschedule: an override moving the job to the named
// cluster, or to the best other eligible one, for the configured TTL.
func (p *Plugin) reschedule(ctx context.Context, ic github.IssueCommentEvent, c command) (string, error) {
	login := ic.Comment.User.Login
	req := api.RescheduleRequest{
		Job:     c.job,
		Cluster: c.cluster,
		TTL:     p.opts.Config.TTL.String(),
		Reason:  fmt.Sprintf("requested by @%s in %s", login, ic.Issue.HTMLURL),
		By:      login,
	}
	target := "the best other eligible cluster"
	if c.cluster != "" {
		target = code(c.cluster)
	}
	if p.opts.DryRun {
		return fmt.Sprintf("dry run: I would have moved %s to %s for %s.", code(c.job), target, p.opts.Config.TTL), nil
	}
	r, err := p.opts.Dispatcher.Reschedule(ctx, req)
	if err != nil {
		return fmt.Sprintf("I could not move %s to %s: %s", code(c.job), target, describeError(err)), fmt.Errorf("reschedule %s to %q: %w", c.job, c.cluster, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "moved %s: %s → %s.\n\n", code(c.job), code(r.From), code(r.To))
	fmt.Fprintf(&b, "Reason: %s", r.Override.Reason)
	if r.Override.Expires.IsZero() {
		b.WriteString(". The override has no expiry.")
	} else {
		fmt.Fprintf(&b, ". The override expires %s.", r.Override.Expires.UTC().Format(time.RFC3339))
	}
	return b.String(), nil
}
