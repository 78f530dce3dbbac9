package plugin

import (
	"fmt"

	"sigs.k8s.io/prow/pkg/config"
	"sigs.k8s.io/prow/pkg/pluginhelp"
)

// HelpProvider documents the plugin's commands for Prow's /help page. It has
// the externalplugins.ExternalPluginHelpProvider signature.
func (p *Plugin) HelpProvider(_ []config.OrgRepo) (*pluginhelp.PluginHelp, error) {
	who := whoMayUse(p.opts.Config)
	h := &pluginhelp.PluginHelp{
		Description: "The prowjob-dispatcher plugin shows which build cluster runs each job of a pull request and why, " +
			"and lets trusted people move a job to another cluster, drain or cap a cluster for a while, or re-run the dispatch.",
		Config: map[string]string{
			"": fmt.Sprintf("Trusted commands may be used by %s. A /reschedule lasts %s.", who, p.opts.Config.TTL),
		},
	}
	if p.opts.Config.JobConfigRepo != "" {
		h.Config[""] += fmt.Sprintf(" A push to %s@%s makes the dispatcher fetch its job config and dispatch at once.",
			p.opts.Config.JobConfigRepo, p.opts.Config.jobConfigBranch())
	}
	h.AddCommand(pluginhelp.Command{
		Usage: "/dispatch",
		Description: "Lists the presubmits that could run on this PR, the build cluster each is assigned to, and the reason (with the override's expiry when there is one), " +
			"then the cluster drains and capacity caps in force.",
		Featured:  true,
		WhoCanUse: "Anyone.",
		Examples:  []string{"/dispatch"},
	})
	h.AddCommand(pluginhelp.Command{
		Usage:       "/dispatch refresh",
		Description: "Runs a full dispatch now and reports how many jobs moved to each cluster, and the cluster drains and capacity caps in force.",
		WhoCanUse:   who,
		Examples:    []string{"/dispatch refresh"},
	})
	h.AddCommand(pluginhelp.Command{
		Usage: "/dispatch plan",
		Description: fmt.Sprintf("On a PR that changes %s, %s or job config files under %s, re-runs the plan comment: what a dispatch on the PR's head content would do "+
			"(validation errors, or the jobs and demand moving per cluster, the jobs added and removed with their clusters, the loads against target after, "+
			"the jobs that would become unplaceable). "+
			"The plan comment is also written when such a PR is opened and edited on each push. Changes nothing. "+
			"Limited to %d at once, then one every %s, per PR, and %d, then one every %s, per user; a refusal says when to retry.",
			code(p.opts.Config.DispatcherConfigPath), code(p.opts.Config.ClusterConfigPath), code(p.opts.Config.JobConfigDir),
			p.planLimits.limits.PerPR.Burst, p.planLimits.limits.PerPR.Every, p.planLimits.limits.PerUser.Burst, p.planLimits.limits.PerUser.Every),
		WhoCanUse: "Anyone (" + who + " without the limits).",
		Examples:  []string{"/dispatch plan"},
	})
	h.AddCommand(pluginhelp.Command{
		Usage: rescheduleUsage,
		Description: fmt.Sprintf("Moves a job (any job, not only this PR's) to the named cluster, or to the best other eligible cluster when none is named, for %s. "+
			"The dispatcher refuses unknown jobs and unknown, blocked or incapable clusters.", p.opts.Config.TTL),
		Featured:  true,
		WhoCanUse: who,
		Examples:  []string{"/reschedule pull-ci-openshift-origin-main-e2e-aws build03", "/reschedule periodic-ci-openshift-release-master-nightly-4.18-e2e-aws"},
	})
	h.AddCommand(pluginhelp.Command{
		Usage: drainUsage,
		Description: "Drains a build cluster for the TTL (at most the dispatcher's --max-drain-ttl): every job that can move leaves it, and no job is balanced onto it. " +
			"The reply lists the jobs moved per target cluster and the jobs that stay, with why. " +
			"Draining the last cluster with a capability some jobs need is refused, naming those jobs, unless --force is given (they then stay on the cluster). " +
			"--dry-run previews and changes nothing. When the drain expires or is cancelled, jobs flow back as balance requires, within the move budget.",
		WhoCanUse: who,
		Examples: []string{"/dispatch drain build03 4h node pool upgrade", "/dispatch drain build03 4h node pool upgrade --dry-run",
			"/dispatch drain build01 2h arm64 nodes replaced --force"},
	})
	h.AddCommand(pluginhelp.Command{
		Usage: capUsage,
		Description: "Caps a build cluster's capacity (its share of the load, 1 to 100) for the TTL; jobs move off it within the move budget. " +
			"--dry-run previews and changes nothing.",
		WhoCanUse: who,
		Examples:  []string{"/dispatch cap build02 40 12h half the nodes are cordoned", "/dispatch cap build02 40 12h half the nodes are cordoned --dry-run"},
	})
	h.AddCommand(pluginhelp.Command{
		Usage:       undrainUsage,
		Description: "Cancels a cluster's drain or capacity cap now; jobs flow back as balance requires, within the move budget.",
		WhoCanUse:   who,
		Examples:    []string{"/dispatch undrain build03"},
	})
	return h, nil
}
