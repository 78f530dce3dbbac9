package dispatch

import (
	"fmt"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
)

// inputs are the files a dispatch reads: both configs and the job config.
// They are immutable once loaded; a reload makes new inputs.
type inputs struct {
	config   *config.Dispatcher
	clusters *config.Clusters
	jobs     []jobs.Job
	byName   map[string]*jobs.Job
	manual   map[string]bool
}

// loadInputs loads and validates the two configs and loads the job config.
func loadInputs(o *Options) (*inputs, error) {
	cfg, err := config.LoadDispatcher(o.DispatcherConfigPath)
	if err != nil {
		return nil, err
	}
	clusters, err := config.LoadClusters(o.ClusterConfigPath)
	if err != nil {
		return nil, err
	}
	if err := config.Validate(cfg, clusters); err != nil {
		return nil, err
	}
	js, err := jobs.Load(o.JobConfigDir, o.Labels)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckPathOverlaps(jobs.Files(js)); err != nil {
		return nil, err
	}
	in := &inputs{config: cfg, clusters: clusters, jobs: js, byName: make(map[string]*jobs.Job, len(js)), manual: map[string]bool{}}
	for i := range js {
		if _, dup := in.byName[js[i].Name]; !dup {
			in.byName[js[i].Name] = &js[i]
		}
	}
	for _, c := range cfg.ManualClusters {
		in.manual[c] = true
	}
	return in, nil
}

// usable checks that a dispatch on these inputs can give a table worth
// replacing the current one with: some cluster can take balanced jobs, and
// the job config holds jobs.
func (in *inputs) usable(o *Options) error {
	n := 0
	for _, cs := range in.clusters.Providers {
		for _, c := range cs {
			if !c.Blocked && !in.manual[c.Name] {
				n++
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("cluster config %s: no usable cluster (every cluster is blocked or manual, or none is listed)", o.ClusterConfigPath)
	}
	if len(in.jobs) == 0 {
		return fmt.Errorf("job config %s: no jobs", o.JobConfigDir)
	}
	return nil
}
