package plugin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"sigs.k8s.io/prow/pkg/github"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// maxListedJobs bounds the moved, staying and stranded jobs a drain's reply lists.
const maxListedJobs = 20

// drain answers /dispatch drain and /dispatch cap: the drain or cap applied,
// or with --dry-run previewed; a drain that would strand jobs is refused by
// the dispatcher, and the reply names the jobs and how to force it.
func (p *Plugin) drain(ctx context.Context, ic github.IssueCommentEvent, c command) (string, error) {
	login := ic.Comment.User.Login
	what := "drain " + code(c.cluster)
	if c.kind == cmdCap {
		what = fmt.Sprintf("cap %s to capacity %d", code(c.cluster), c.capacity)
	}
	if p.opts.DryRun && !c.dryRun {
		return fmt.Sprintf("dry run: I would have asked the dispatcher to %s for %s (%s).", what, c.ttl, c.reason), nil
	}
	req := api.DrainRequest{
		Capacity: c.capacity,
		TTL:      c.ttl,
		Reason:   fmt.Sprintf("%s (@%s in %s)", c.reason, login, ic.Issue.HTMLURL),
		By:       login,
		Force:    c.force,
		DryRun:   c.dryRun,
	}
	plan, err := p.opts.Dispatcher.Drain(ctx, c.cluster, req)
	var se *api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusConflict {
		return strandedReply(c, se), fmt.Errorf("%s: %w", c.kind, err)
	}
	if err != nil {
		return fmt.Sprintf("I could not %s: %s", what, describeError(err)), fmt.Errorf("%s %s: %w", c.kind, c.cluster, err)
	}
	var b strings.Builder
	expires := plan.Override.Expires.UTC().Format(time.RFC3339)
	switch {
	case plan.DryRun:
		fmt.Fprintf(&b, "dry run, nothing was changed: to %s for %s would move %d job(s).\n", what, c.ttl, plan.Moved)
	case c.kind == cmdCap:
		fmt.Fprintf(&b, "capped %s to capacity %d until %s: %d job(s) moved.\n", code(c.cluster), plan.Override.Capacity, expires, plan.Moved)
	default:
		fmt.Fprintf(&b, "drained %s until %s: %d job(s) moved.\n", code(c.cluster), expires, plan.Moved)
	}
	fmt.Fprintf(&b, "\nReason: %s\n", plan.Override.Reason)
	writeFlows(&b, plan)
	writeMoves(&b, plan)
	writeStaying(&b, c.cluster, plan)
	if plan.Stranded > 0 {
		if plan.DryRun {
			fmt.Fprintf(&b, "\n%d job(s) need what no other usable cluster has, so the drain would be refused unless forced (%s); forced, they stay on %s:\n",
				plan.Stranded, code("--force"), code(c.cluster))

			writeJobList(&b, plan.Stranded, plan.StrandedJobs, func(u api.UnplaceableJob) string { return code(u.Job) + ": " + u.Problem })
		} else {
			fmt.Fprintf(&b, "\nForced: %d of them need what no other usable cluster has, and stay stranded on %s.\n", plan.Stranded, code(c.cluster))
		}
	}
	if !plan.DryRun {
		fmt.Fprintf(&b, "\nJobs flow back after it expires, or after %s.", code(undrainUsageFor(c.cluster)))
	}
	return b.String(), nil
}

// undrainUsageFor is the undrain command for cluster.
func undrainUsageFor(cluster string) string { return "/dispatch undrain " + cluster }

// strandedReply answers a drain the dispatcher refused because it would
// strand jobs: which, and the command that forces it.
func strandedReply(c command, se *api.StatusError) string {
	var b strings.Builder
	n := max(se.Stranded, len(se.StrandedJobs))
	if n == 0 {
		fmt.Fprintf(&b, "I did not drain %s: %s. Nothing was changed.\n", code(c.cluster), truncate(se.Message))
	} else {
		fmt.Fprintf(&b, "I did not drain %s: %d job(s) need what no other usable cluster has, and the drain would strand them. Nothing was changed.\n\n",
			code(c.cluster), n)
		writeJobList(&b, n, se.StrandedJobs, func(u api.UnplaceableJob) string { return code(u.Job) + ": " + u.Problem })
	}
	forced := c
	forced.force, forced.dryRun = true, false
	fmt.Fprintf(&b, "\nTo drain it anyway (those jobs then stay on %s), comment:\n\n```\n%s\n```\n", code(c.cluster), strings.ReplaceAll(forced.typed(), "`", ""))
	return b.String()
}

// writeFlows writes the moves per target cluster.
func writeFlows(b *strings.Builder, plan *api.DrainPlan) {
	if len(plan.Flows) == 0 {
		return
	}
	b.WriteString("\n| To cluster | Jobs | Demand |\n| --- | --- | --- |\n")
	for _, c := range slices.Sorted(maps.Keys(plan.Flows)) {
		f := plan.Flows[c]
		fmt.Fprintf(b, "| %s | %d | %.0f |\n", code(c), f.Jobs, f.Demand)
	}
}

// writeMoves lists the first moved jobs.
func writeMoves(b *strings.Builder, plan *api.DrainPlan) {
	if plan.Moved == 0 {
		return
	}
	b.WriteString("\nMoves:\n")
	writeJobList(b, plan.Moved, plan.Moves, func(m api.Move) string {
		return fmt.Sprintf("%s: %s → %s (%s)", code(m.Job), code(m.From), code(m.To), m.Reason)
	})
}

// writeStaying lists the jobs that stay on a drained cluster, with why.
func writeStaying(b *strings.Builder, cluster string, plan *api.DrainPlan) {
	if plan.Staying == 0 {
		return
	}
	fmt.Fprintf(b, "\n%d job(s) stay on %s:\n", plan.Staying, code(cluster))
	writeJobList(b, plan.Staying, plan.StayingJobs, func(s api.StayingJob) string {
		line := code(s.Job) + ": " + s.Reason
		if s.Detail != "" {
			line += ": " + s.Detail
		}
		return line
	})
}

// writeJobList writes one line per listed item, at most maxListedJobs,
// then how many of total are not shown.
func writeJobList[T any](b *strings.Builder, total int, listed []T, line func(T) string) {
	shown := listed[:min(len(listed), maxListedJobs)]
	for _, x := range shown {
		fmt.Fprintf(b, "- %s\n", strings.Join(strings.Fields(line(x)), " "))
	}
	if total > len(shown) {
		fmt.Fprintf(b, "- ... and %d more\n", total-len(shown))
	}
}

// undrain answers /dispatch undrain: the drain or cap cancelled, and what
// the dispatch that followed moved.
func (p *Plugin) undrain(ctx context.Context, ic github.IssueCommentEvent, c command) (string, error) {
	if p.opts.DryRun {
		return fmt.Sprintf("dry run: I would have cancelled the drain or cap of %s.", code(c.cluster)), nil
	}
	r, err := p.opts.Dispatcher.Undrain(ctx, c.cluster, ic.Comment.User.Login)
	if err != nil {
		return fmt.Sprintf("I could not cancel the drain or cap of %s: %s", code(c.cluster), describeError(err)), fmt.Errorf("undrain %s: %w", c.cluster, err)
	}
	var b strings.Builder
	what := "drain or cap"
	if o := r.Cancelled; o != nil {
		what = "drain"
		if o.Capacity > 0 {
			what = fmt.Sprintf("capacity cap (%d)", o.Capacity)
		}
		var about []string
		if o.Reason != "" {
			about = append(about, o.Reason)
		}
		if o.By != "" {
			about = append(about, "by "+o.By)
		}
		if len(about) > 0 {
			what += " (" + strings.Join(about, ", ") + ")"
		}
	}
	d := r.Dispatch
	fmt.Fprintf(&b, "cancelled the %s of %s. The dispatch that followed moved %d job(s), within the move budget; more flow back at later dispatches as balance requires.\n",
		what, code(c.cluster), d.Moved)
	writeMovedTo(&b, d.MovedTo)
	writeUnplaceable(&b, d)
	return b.String(), nil
}

// drainsSection lists the drains and caps in force and the
// unhealthy clusters, for the /dispatch and /dispatch refresh replies;
// empty when there is none. A
// failing look-up is noted, not fatal: the reply's main answer stands.
func (p *Plugin) drainsSection(ctx context.Context, log *logrus.Entry) string {
	clusters, err := p.opts.Dispatcher.Clusters(ctx)
	if err != nil {
		log.WithError(err).Info("Listing the clusters for their drains and caps failed.")
		return fmt.Sprintf("\n\n_I could not list the drains and caps in force (%s)._", strings.TrimSuffix(describeError(err), "."))
	}
	var b strings.Builder
	for _, cl := range clusters {
		o := cl.Override
		if o == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\n\nDrains and capacity caps in force:\n\n| Cluster | Capacity | Expires | By | Reason |\n| --- | --- | --- | --- | --- |\n")
		}
		capacity := "drained"
		if o.Capacity > 0 {
			capacity = fmt.Sprintf("capped to %d", o.Capacity)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", code(cl.Name), capacity, o.Expires.UTC().Format(time.RFC3339), cell(o.By), cell(o.Reason))
	}
	b.WriteString(unhealthySection(clusters))
	return strings.TrimSuffix(b.String(), "\n")
}

// unhealthySection lists the clusters the dispatcher's last health
// evaluation judged unhealthy, with the numbers and what was (or, in report
// mode, would be) done; empty when there is none.
func unhealthySection(clusters []api.ClusterStatus) string {
	var b strings.Builder
	for _, cl := range clusters {
		h := cl.Health
		if h == nil || h.State != "unhealthy" {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\n\nUnhealthy clusters:\n\n| Cluster | Since | Mode | Why | Action |\n| --- | --- | --- | --- | --- |\n")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", code(cl.Name), h.Since.UTC().Format(time.RFC3339), cell(h.Mode), cell(h.Reason), cell(h.Action))
	}
	return b.String()
}
