package jobs

import (
	"fmt"

	prowconfig "sigs.k8s.io/prow/pkg/config"
)

// loadWithProwReader is Load as it was before the fast reader: prow's
// ReadJobConfig decodes every job in full, then the same Jobs are built,
// sorted and checked for duplicates. Tests compare Load with it.
func loadWithProwReader(dir string, labels Labels) ([]Job, error) {
	if labels == (Labels{}) {
		labels = DefaultLabels()
	}
	jc, err := prowconfig.ReadJobConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("job config %s: %w", dir, err)
	}
	var all []Job
	add := func(t Type, base prowconfig.JobBase) {
		agent := base.Agent
		if agent == "" {
			agent = Agent
		}
		all = append(all, Job{
			Name:         base.Name,
			File:         relativeFile(dir, base.SourcePath),
			Type:         t,
			Agent:        agent,
			Cluster:      base.Cluster,
			Requirements: labels.Requirements(base.Labels),
		})
	}
	for _, ps := range jc.PresubmitsStatic {
		for _, p := range ps {
			add(Presubmit, p.JobBase)
		}
	}
	for _, ps := range jc.PostsubmitsStatic {
		for _, p := range ps {
			add(Postsubmit, p.JobBase)
		}
	}
	for _, p := range jc.Periodics {
		add(Periodic, p.JobBase)
	}
	sortJobs(all)
	if err := duplicates(dir, all); err != nil {
		return nil, err
	}
	return all, nil
}
