package plugin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"sigs.k8s.io/prow/pkg/github"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// planMarker is the hidden line that finds the plan comment of a PR again,
// so that each push edits it instead of adding one.
const planMarker = "<!-- prowjob-dispatcher:plan -->"

// maxPlanItems bounds each list of a plan comment (moves, unplaceable jobs,
// validation errors); the totals always count them all.
const maxPlanItems = 50

// Default paths of the config files in the release repository.
const (
	DefaultDispatcherConfigPath = "core-services/sanitize-prow-jobs/_config.yaml"
	DefaultClusterConfigPath    = "core-services/sanitize-prow-jobs/_clusters.yaml"
)

// HandlePullRequest comments, on a PR opened, reopened or pushed to that
// changes the dispatcher config, the cluster config or Prow job config
// files, what a dispatch on the PR's head content would do. The plan
// comment is edited on each push, so a PR has one. Other actions and PRs
// changing none of these files are ignored. The returned error is for the
// log only.
func (p *Plugin) HandlePullRequest(ctx context.Context, log *logrus.Entry, pe github.PullRequestEvent) error {
	switch pe.Action {
	case github.PullRequestActionOpened, github.PullRequestActionReopened, github.PullRequestActionSynchronize:
	default:
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	_, err := p.plan(ctx, log, pe.Repo.Owner.Login, pe.Repo.Name, pe.Number, pe.PullRequest.Head.SHA, "")
	return err
}

// runPlan is /dispatch plan: it re-runs the plan of the comment's PR and
// returns a reply only when there is nothing to plan or it failed (the plan
// comment itself is the answer otherwise).
func (p *Plugin) runPlan(ctx context.Context, log *logrus.Entry, ic github.IssueCommentEvent) (string, error) {
	org, repo, number := ic.Repo.Owner.Login, ic.Repo.Name, ic.Issue.Number
	pr, err := p.opts.GitHub.GetPullRequest(org, repo, number)
	if err != nil {
		return "I could not read this PR from GitHub; please try again later.", fmt.Errorf("getting %s/%s#%d: %w", org, repo, number, err)
	}
	planned, err := p.plan(ctx, log, org, repo, number, pr.Head.SHA, ic.Comment.User.Login)
	switch {
	case err != nil:
		return "I could not update the plan comment: " + err.Error(), err
	case !planned:
		return fmt.Sprintf("this PR changes neither %s nor %s nor a job config file under %s: there is nothing to plan.",
			code(p.opts.Config.DispatcherConfigPath), code(p.opts.Config.ClusterConfigPath), code(p.opts.Config.JobConfigDir)), nil
	}
	return "", nil
}

// limitPlan returns the reply refusing a /dispatch plan asked for too
// often on the PR or by the user (PlanLimits), or "" to run it. Trusted
// users are never refused; trust is looked up only for a refusal.
func (p *Plugin) limitPlan(log *logrus.Entry, ic github.IssueCommentEvent) string {
	login := ic.Comment.User.Login
	pr := fmt.Sprintf("%s/%s#%d", ic.Repo.Owner.Login, ic.Repo.Name, ic.Issue.Number)
	ok, wait := p.planLimits.allow(pr, github.NormLogin(login))
	if ok {
		return ""
	}
	if trusted, err := trusted(p.opts.GitHub, p.opts.Config, login); err == nil && trusted {
		return ""
	}
	wait = wait.Round(time.Second)
	log.WithField("user", login).WithField("retryIn", wait).Info("/dispatch plan asked for too often; refused.")
	lim := p.planLimits.limits
	return fmt.Sprintf("the plan was asked for too often (at most %d at once, then one every %s per PR, and %d, then one every %s per user). "+
		"Nothing was computed; retry %s in %s (after %s). The plan comment is updated on each push anyway.",
		lim.PerPR.Burst, lim.PerPR.Every, lim.PerUser.Burst, lim.PerUser.Every,
		code("/dispatch plan"), wait, p.planLimits.now().Add(wait).UTC().Format("15:04:05 UTC"))
}

// plan computes the plan of a PR at head sha and writes the plan comment.
// It reports false when the PR changes no config file and no job config
// file. by, when set, is who asked for the re-run.
func (p *Plugin) plan(ctx context.Context, log *logrus.Entry, org, repo string, number int, sha, by string) (bool, error) {
	ghc, cfg := p.opts.GitHub, p.opts.Config
	defer p.prs.lock(fmt.Sprintf("%s/%s#%d", org, repo, number))()
	// A push handled after a newer one (deliveries race) must not overwrite
	// the newer plan: only the PR's head is planned.
	if pr, err := ghc.GetPullRequest(org, repo, number); err == nil && pr.Head.SHA != "" && pr.Head.SHA != sha {
		log.WithField("sha", sha).WithField("head", pr.Head.SHA).Info("Not planning a push the PR's head has moved past.")
		return true, nil
	}
	changes, err := ghc.GetPullRequestChanges(org, repo, number)
	if err != nil {
		return false, fmt.Errorf("listing the files of %s/%s#%d: %w", org, repo, number, err)
	}
	var req api.PlanRequest
	var changed []string
	for _, c := range changes {
		for _, path := range []string{c.Filename, c.PreviousFilename} {
			if path == "" || slices.Contains(changed, path) {
				continue
			}
			switch path {
			case cfg.DispatcherConfigPath, cfg.ClusterConfigPath:
				changed = append(changed, path)
			}
		}
	}
	jobGroups := jobFileChanges(cfg.JobConfigDir, changes)
	if len(changed) == 0 && len(jobGroups) == 0 {
		return false, nil
	}
	slices.Sort(changed)
	for _, path := range changed {
		data, err := ghc.GetFile(org, repo, path, sha)
		var notFound *github.FileNotFound
		if errors.As(err, &notFound) {
			data, err = []byte{}, nil // deleted: an empty file, which the dispatcher refuses
		}
		if err != nil {
			return true, fmt.Errorf("reading %s at %s: %w", path, sha, err)
		}
		s := string(data)
		if path == cfg.DispatcherConfigPath {
			req.DispatcherConfig, req.DispatcherConfigPath = &s, path
		} else {
			req.ClusterConfig, req.ClusterConfigPath = &s, path
		}
	}
	jobFiles, leftOut, err := p.addJobFiles(org, repo, sha, &req, jobGroups)
	if err != nil {
		return true, err
	}
	resp, planErr := p.opts.Dispatcher.Plan(ctx, req)
	body := renderPlan(planSubject{sha: sha, configs: changed, jobDir: cfg.JobConfigDir, jobFiles: jobFiles, leftOut: leftOut, by: by}, resp, planErr)
	if planErr != nil {
		log.WithError(planErr).Info("Plan not computed.")
	}
	if err := p.writePlanComment(org, repo, number, body); err != nil {
		return true, err
	}
	return true, nil
}

// writePlanComment edits the bot's plan comment of the PR, or creates it.
func (p *Plugin) writePlanComment(org, repo string, number int, body string) error {
	ghc := p.opts.GitHub
	isBot, err := ghc.BotUserChecker()
	if err != nil {
		return fmt.Errorf("getting the bot's login: %w", err)
	}
	comments, err := ghc.ListIssueComments(org, repo, number)
	if err != nil {
		return fmt.Errorf("listing the comments of %s/%s#%d: %w", org, repo, number, err)
	}
	for _, c := range comments {
		if isBot(c.User.Login) && strings.Contains(c.Body, planMarker) {
			if err := ghc.EditComment(org, repo, c.ID, body); err != nil {
				return fmt.Errorf("editing the plan comment of %s/%s#%d: %w", org, repo, number, err)
			}
			return nil
		}
	}
	if err := ghc.CreateComment(org, repo, number, body); err != nil {
		return fmt.Errorf("commenting the plan on %s/%s#%d: %w", org, repo, number, err)
	}
	return nil
}

// planSubject is what a plan comment is about: the PR's head, the config
// files and the number of job config files planned, the job config files
// left out of the request, and who asked for the re-run.
type planSubject struct {
	sha      string
	configs  []string
	jobDir   string
	jobFiles int
	leftOut  []string
	by       string
}

// renderPlan renders the plan comment: the marker, the files left out, then
// validation errors, the dispatcher's failure, or the totals, flows, loads
// after, moves, added, removed and unplaceable jobs. Lists are bounded;
// totals come first and always show.
func renderPlan(s planSubject, resp *api.PlanResponse, planErr error) string {
	var b strings.Builder
	b.WriteString(planMarker + "\n")
	var what []string
	for _, f := range s.configs {
		what = append(what, code(f))
	}
	if s.jobFiles > 0 || len(s.leftOut) > 0 {
		what = append(what, fmt.Sprintf("%d job config file(s) under %s", s.jobFiles+len(s.leftOut), code(s.jobDir)))
	}
	fmt.Fprintf(&b, "**prowjob-dispatcher plan** for %s at %s", joinAnd(what), code(shortSHA(s.sha)))
	if s.by != "" {
		fmt.Fprintf(&b, " (re-run by @%s)", s.by)
	}
	b.WriteString("\n\n")
	if len(s.leftOut) > 0 {
		fmt.Fprintf(&b, ":warning: **%d of the %d changed job config file(s) were left out** (a plan sends at most %d files and %d MiB): "+
			"this plan shows what the others do, with these as they are in force.\n\n",
			len(s.leftOut), s.jobFiles+len(s.leftOut), maxPlanJobFiles, planRequestBudget>>20)
		for _, f := range s.leftOut[:min(len(s.leftOut), maxPlanItems)] {
			fmt.Fprintf(&b, "- %s\n", code(f))
		}
		more(&b, len(s.leftOut))
		b.WriteString("\n")
	}
	var se *api.StatusError
	switch {
	case errors.As(planErr, &se) && len(se.Problems) > 0:
		fmt.Fprintf(&b, ":x: **The proposed config does not load: %d validation error(s).** The dispatcher would refuse it and keep the table in force.\n\n", len(se.Problems))
		for _, pr := range se.Problems[:min(len(se.Problems), maxPlanItems)] {
			fmt.Fprintf(&b, "- %s\n", code(pr))
		}
		more(&b, len(se.Problems))
	case planErr != nil:
		fmt.Fprintf(&b, ":warning: The dispatcher could not compute the plan: %s\n", cell(planErr.Error()))
	default:
		writePlanResult(&b, resp, s.jobFiles > 0)
	}
	b.WriteString("\n_Computed by the dispatcher's engine on the PR's files and the job config, demand, table and overrides in force. " +
		"`/dispatch plan` re-runs this; it changes nothing._\n")
	out := b.String()
	if len(out) > maxReplyBytes {
		out = out[:maxReplyBytes] + "\n\n_(truncated)_\n"
	}
	return out
}

// writePlanResult renders a computed plan; jobFiles says whether job config
// files were planned, so that jobs can be added or removed.
func writePlanResult(b *strings.Builder, resp *api.PlanResponse, jobFiles bool) {
	fmt.Fprintf(b, "**%d job(s) move** (demand %.1f); **%d job(s) would become unplaceable**.\n", resp.Moved, resp.MovedDemand, resp.Unplaceable)
	if jobFiles {
		fmt.Fprintf(b, "The job config files **add %d job(s)** and **remove %d job(s)**.\n", resp.Added, resp.Removed)
	}
	if resp.Moved > 0 {
		b.WriteString("\n| Cluster | Jobs in | Demand in | Jobs out | Demand out |\n| --- | --: | --: | --: | --: |\n")
		for _, c := range flowClusters(resp.To, resp.From) {
			in, out := resp.To[c], resp.From[c]
			fmt.Fprintf(b, "| %s | %d | %.1f | %d | %.1f |\n", code(c), in.Jobs, in.Demand, out.Jobs, out.Demand)
		}
	}
	if len(resp.AddedTo)+len(resp.RemovedFrom) > 0 {
		b.WriteString("\n| Cluster | Jobs added | Demand added | Jobs removed | Demand removed |\n| --- | --: | --: | --: | --: |\n")
		for _, c := range flowClusters(resp.AddedTo, resp.RemovedFrom) {
			in, out := resp.AddedTo[c], resp.RemovedFrom[c]
			fmt.Fprintf(b, "| %s | %d | %.1f | %d | %.1f |\n", code(c), in.Jobs, in.Demand, out.Jobs, out.Demand)
		}
	}
	b.WriteString("\nLoad after the change:\n\n| Cluster | State | Capacity | Jobs | Load | Balanced | Target | Load/target |\n| --- | --- | --: | --: | --: | --: | --: | --: |\n")
	for _, c := range resp.Clusters {
		state := "usable"
		switch {
		case c.Blocked:
			state = "blocked"
		case c.Override != nil && c.Override.Capacity == 0:
			state = "drained"
		case c.Manual || c.Role == "manual":
			state = "manual"
		case c.Role == "service":
			state = "service"
		}
		fmt.Fprintf(b, "| %s | %s | %d | %d | %.1f | %.1f | %.1f | %.2f |\n", code(c.Name), state, c.Capacity, c.Jobs, c.Demand, c.BalancedDemand, c.Target, c.Ratio)
	}
	if len(resp.Moves) > 0 {
		fmt.Fprintf(b, "\nMoves (%d):\n\n| Job | From | To | Reason |\n| --- | --- | --- | --- |\n", resp.Moved)
		for _, m := range resp.Moves[:min(len(resp.Moves), maxPlanItems)] {
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", code(m.Job), code(m.From), code(m.To), cell(m.Reason))
		}
		more(b, resp.Moved)
	}
	if len(resp.AddedJobs) > 0 {
		fmt.Fprintf(b, "\nJobs added (%d):\n\n| Job | File | Cluster | Reason |\n| --- | --- | --- | --- |\n", resp.Added)
		for _, j := range resp.AddedJobs[:min(len(resp.AddedJobs), maxPlanItems)] {
			fmt.Fprintf(b, "| %s | %s | %s |\n", code(j.Job), code(j.File), jobChangeCells(j))
		}
		more(b, resp.Added)
	}
	if len(resp.RemovedJobs) > 0 {
		fmt.Fprintf(b, "\nJobs removed (%d):\n\n| Job | File | Was on | Reason |\n| --- | --- | --- | --- |\n", resp.Removed)
		for _, j := range resp.RemovedJobs[:min(len(resp.RemovedJobs), maxPlanItems)] {
			fmt.Fprintf(b, "| %s | %s | %s |\n", code(j.Job), code(j.File), jobChangeCells(j))
		}
		more(b, resp.Removed)
	}
	if len(resp.UnplaceableJobs) > 0 {
		fmt.Fprintf(b, "\nJobs that would become unplaceable (%d): none is sent to a cluster that lacks what it needs.\n\n", resp.Unplaceable)
		for _, u := range resp.UnplaceableJobs[:min(len(resp.UnplaceableJobs), maxPlanItems)] {
			where := "left on the cluster its job config gives"
			if u.Cluster != "" {
				where = "kept on its last eligible cluster " + code(u.Cluster)
			}
			fmt.Fprintf(b, "- %s: %s; %s\n", code(u.Job), cell(u.Problem), where)
		}
		more(b, resp.Unplaceable)
	}
}

// jobChangeCells are the cluster and reason cells of an added or removed
// job; a job without a cluster says why.
func jobChangeCells(j api.JobChange) string {
	if j.Cluster == "" {
		return "none | " + cell(j.Detail)
	}
	return code(j.Cluster) + " | " + cell(j.Reason)
}

// flowClusters are the clusters of two flow maps, sorted.
func flowClusters(a, b map[string]api.Flow) []string {
	names := slices.Collect(maps.Keys(a))
	for c := range b {
		if _, ok := a[c]; !ok {
			names = append(names, c)
		}
	}
	slices.Sort(names)
	return names
}

// joinAnd joins items as "a, b and c".
func joinAnd(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// more says how many of total a bounded list left out.
func more(b *strings.Builder, total int) {
	if total > maxPlanItems {
		fmt.Fprintf(b, "- ... and %d more\n", total-maxPlanItems)
	}
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
