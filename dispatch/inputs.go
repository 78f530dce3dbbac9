package dispatch

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// inputs are the files a dispatch reads: both configs and the job config.
// They are immutable once loaded; a reload makes new inputs.
type inputs struct {
	config   *config.DispatcherConfig
	clusters *config.Clusters
	jobs     []jobs.Job
	byName   map[string]*jobs.Job
	manual   map[string]bool
	// flatPaths are the group path regexes a flat job config can never match.
	flatPaths []string
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
	// Resolve the job config dir once, so that a load reads one tree even
	// when a symlink to it is swapped meanwhile (the job config from Git, a
	// ConfigMap's ..data).
	dir, err := filepath.EvalSymlinks(o.JobConfigDir)
	if err != nil {
		return nil, fmt.Errorf("job config %s: %w", o.JobConfigDir, err)
	}
	js, err := jobs.Load(dir, o.Labels)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckPathOverlaps(jobs.Files(js)); err != nil {
		return nil, err
	}
	in := &inputs{config: cfg, clusters: clusters, jobs: js, byName: make(map[string]*jobs.Job, len(js)), manual: map[string]bool{},
		flatPaths: cfg.FlatPathProblems(jobs.Files(js))}
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

// PlanResult is what Plan computed.
type PlanResult struct {
	// Table is the table a dispatch would put in force.
	Table *table.Table
	// Report lists loads, moves against the previous table and unplaceable jobs.
	Report *engine.Report
	// Config and Clusters are the configs the plan read.
	Config   *config.DispatcherConfig
	Clusters *config.Clusters
}

// Plan computes, offline, the table a full dispatch would make: it loads and
// validates the inputs of opts exactly as the Dispatcher does, gets demand
// from opts.Demand (nil: every job gets the default demand) and runs the
// engine from previous (nil: the dispatcher config's buildFarm). It keeps no
// state and changes nothing.
func Plan(ctx context.Context, opts Options, previous *table.Table) (*PlanResult, error) {
	opts = opts.withDefaults()
	in, err := loadInputs(&opts)
	if err != nil {
		return nil, err
	}
	var dm map[string]float64
	if opts.Demand != nil {
		if dm, err = opts.Demand.Demand(ctx); err != nil {
			return nil, fmt.Errorf("demand: %w", err)
		}
		if err := demand.Check(dm); err != nil {
			return nil, fmt.Errorf("demand: %w", err)
		}
	}
	if previous != nil && len(previous.Assignments) == 0 {
		previous = nil
	}
	eng, err := engine.New(engine.Input{
		Jobs: in.jobs, Config: in.config, Clusters: in.clusters, Demand: dm, Previous: previous,
		Now: opts.Clock.Now().UTC(), Options: opts.Engine,
	})
	if err != nil {
		return nil, err
	}
	t, report, err := eng.Dispatch()
	if err != nil {
		return nil, err
	}
	return &PlanResult{Table: t, Report: report, Config: in.config, Clusters: in.clusters}, nil
}
