package plugin

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/prow/pkg/github"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// maxTableRows bounds the /dispatch table so the reply fits in one comment.
const maxTableRows = 250

// dispatchTable answers /dispatch: the PR's presubmits, their clusters and why.
func (p *Plugin) dispatchTable(ctx context.Context, ic github.IssueCommentEvent) (string, error) {
	org, repo, num := ic.Repo.Owner.Login, ic.Repo.Name, ic.Issue.Number
	pr, err := p.opts.GitHub.GetPullRequest(org, repo, num)
	if err != nil {
		return "I could not read this pull request from GitHub; please try again later.", fmt.Errorf("getting %s/%s#%d: %w", org, repo, num, err)
	}
	branch := pr.Base.Ref
	names, err := p.opts.Presubmits(org, repo, branch)
	if err != nil {
		return "I could not read the Prow job config; please tell the CI operators.", err
	}
	if len(names) == 0 {
		return fmt.Sprintf("no presubmits of %s run against branch %s.", code(org+"/"+repo), code(branch)), nil
	}
	shown := names
	if len(shown) > maxTableRows {
		shown = shown[:maxTableRows]
	}
	assignments, err := p.lookup(ctx, shown)
	if err != nil {
		return describeError(err), err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d presubmit(s) of %s could run against %s:\n\n", len(names), code(org+"/"+repo), code(branch))
	b.WriteString("| Job | Cluster | Reason |\n| --- | --- | --- |\n")
	for i, name := range shown {
		a := assignments[i]
		if a == nil {
			fmt.Fprintf(&b, "| %s | _not yet assigned_ | the dispatcher places it when it first runs |\n", code(name))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", code(name), code(a.Cluster), cell(assignmentReason(a)))
	}
	if len(names) > len(shown) {
		fmt.Fprintf(&b, "\n…and %d more not shown.\n", len(names)-len(shown))
	}
	return b.String(), nil
}

// lookup fetches the assignments of jobs, at most Concurrency at a time. A job
// the dispatcher does not know is nil. The first other error stops the rest
// and is returned.
func (p *Plugin) lookup(ctx context.Context, jobs []string) ([]*api.Assignment, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]*api.Assignment, len(jobs))
	sem := make(chan struct{}, p.opts.Concurrency)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for i, job := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a, err := p.opts.Dispatcher.Assignment(ctx, job)
			switch {
			case err == nil:
				out[i] = a
			case isNotFound(err):
			default:
				once.Do(func() { firstErr = fmt.Errorf("assignment of %s: %w", job, err); cancel() })
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// assignmentReason is the Reason cell: the rule, its detail and the override in force.
func assignmentReason(a *api.Assignment) string {
	s := a.Reason
	if a.Detail != "" {
		s += ": " + a.Detail
	}
	if o := a.Override; o != nil {
		s += "; override"
		if o.By != "" {
			s += " by @" + o.By
		}
		if o.Expires.IsZero() {
			s += ", no expiry"
		} else {
			s += ", expires " + o.Expires.UTC().Format(time.RFC3339)
		}
		if o.Reason != "" {
			s += " (" + o.Reason + ")"
		}
	}
	return s
}

// refresh answers /dispatch refresh: a full dispatch now.
func (p *Plugin) refresh(ctx context.Context) (string, error) {
	if p.opts.DryRun {
		return "dry run: I would have asked the dispatcher for a full dispatch now.", nil
	}
	r, err := p.opts.Dispatcher.Dispatch(ctx)
	if err != nil {
		return describeError(err), fmt.Errorf("dispatch: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dispatched %d jobs; %d moved (largest load/target ratio %.2f).\n", r.Jobs, r.Moved, r.Imbalance)
	writeMovedTo(&b, r.MovedTo)
	writeUnplaceable(&b, *r)
	return b.String(), nil
}

// writeMovedTo writes a dispatch's moves per cluster, if any.
func writeMovedTo(b *strings.Builder, movedTo map[string]int) {
	if len(movedTo) == 0 {
		return
	}
	b.WriteString("\n| Cluster | Jobs moved in |\n| --- | --- |\n")
	for _, c := range slices.Sorted(maps.Keys(movedTo)) {
		fmt.Fprintf(b, "| %s | %d |\n", code(c), movedTo[c])
	}
}

// maxUnplaceableLines bounds the unplaceable jobs a reply lists.
const maxUnplaceableLines = 10

// writeUnplaceable lists the jobs no usable cluster can run, if any.
func writeUnplaceable(b *strings.Builder, r api.DispatchResponse) {
	if r.Unplaceable == 0 {
		return
	}
	fmt.Fprintf(b, "\n%d job(s) need what no usable cluster has; none was sent to a cluster that lacks it:\n", r.Unplaceable)
	for i, u := range r.UnplaceableJobs {
		if i == maxUnplaceableLines {
			break
		}
		where := "left on the cluster its job config gives"
		if u.Cluster != "" {
			where = "kept on its last eligible cluster " + code(u.Cluster)
		}
		fmt.Fprintf(b, "- %s: %s; %s\n", code(u.Job), u.Problem, where)
	}
	if r.Unplaceable > min(len(r.UnplaceableJobs), maxUnplaceableLines) {
		fmt.Fprintf(b, "- ... and %d more (see /readyz)\n", r.Unplaceable-min(len(r.UnplaceableJobs), maxUnplaceableLines))
	}
}
