package plugin

import (
	"context"
	"strings"

	"github.com/sirupsen/logrus"
	"sigs.k8s.io/prow/pkg/github"
)

// HandlePush asks the dispatcher for a full dispatch when the push is to
// the branch the dispatcher reads its job config from in Git
// (job_config_repo, job_config_branch): the dispatch fetches the
// repository first, so the pushed job config is in force at once rather
// than at the next interval. Other pushes, and all of them without
// job_config_repo, are ignored. The returned error is for the log only.
func (p *Plugin) HandlePush(ctx context.Context, log *logrus.Entry, pe github.PushEvent) error {
	cfg := p.opts.Config
	if cfg.JobConfigRepo == "" || !strings.EqualFold(pe.Repo.FullName, cfg.JobConfigRepo) || pe.Ref != "refs/heads/"+cfg.jobConfigBranch() {
		return nil
	}
	if p.opts.DryRun {
		log.Info("Dry run: a push to the job config's branch would ask the dispatcher for a dispatch.")
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	resp, err := p.opts.Dispatcher.Dispatch(ctx)
	if err != nil {
		return err
	}
	log.WithField("moved", resp.Moved).WithField("after", pe.After).Info("A push to the job config's branch: the dispatcher fetched and dispatched.")
	return nil
}
