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
			"and lets trusted people move a job to another cluster or re-run the dispatch.",
		Config: map[string]string{
			"": fmt.Sprintf("Trusted commands may be used by %s. A /reschedule lasts %s.", who, p.opts.Config.TTL),
		},
	}
	h.AddCommand(pluginhelp.Command{
		Usage:       "/dispatch",
		Description: "Lists the presubmits that could run on this PR, the build cluster each is assigned to, and the reason (with the override's expiry when there is one).",
		Featured:    true,
		WhoCanUse:   "Anyone.",
		Examples:    []string{"/dispatch"},
	})
	h.AddCommand(pluginhelp.Command{
		Usage:       "/dispatch refresh",
		Description: "Runs a full dispatch now and reports how many jobs moved to each cluster.",
		WhoCanUse:   who,
		Examples:    []string{"/dispatch refresh"},
	})
	h.AddCommand(pluginhelp.Command{
		Usage: rescheduleUsage,
		Description: fmt.Sprintf("Moves a job (any job, not only this PR's) to the named cluster, or to the best other eligible cluster when none is named, for %s. "+
			"The dispatcher refuses unknown jobs and unknown, blocked or incapable clusters.", p.opts.Config.TTL),
		Featured:  true,
		WhoCanUse: who,
		Examples:  []string{"/reschedule pull-ci-openshift-origin-main-e2e-aws build03", "/reschedule periodic-ci-openshift-release-master-nightly-4.18-e2e-aws"},
	})
	return h, nil
}
