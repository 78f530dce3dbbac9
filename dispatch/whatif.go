package dispatch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
)

// DefaultWhatIfMaxMoves bounds the moves and unplaceable jobs a WhatIf lists
// when WhatIfRequest.MaxMoves is 0; the totals always count them all.
const DefaultWhatIfMaxMoves = 200

// WhatIfRequest proposes new contents for the config files, as a pull
// request would change them. A nil file is the one in force.
type WhatIfRequest struct {
	// DispatcherConfig and ClusterConfig are the proposed files' contents.
	DispatcherConfig, ClusterConfig []byte
	// DispatcherConfigPath and ClusterConfigPath name the files in
	// validation errors (the paths in the repository, e.g.
	// core-services/sanitize-prow-jobs/_clusters.yaml); empty: the base
	// names of the files the dispatcher loads.
	DispatcherConfigPath, ClusterConfigPath string
	// MaxMoves bounds the moves and unplaceable jobs listed; 0 is
	// DefaultWhatIfMaxMoves.
	MaxMoves int
}

// WhatIf is what a dispatch on the proposed configs would do to the table
// in force, computed without changing anything.
type WhatIf struct {
	// Moves are the jobs whose cluster would change, sorted by job, at most
	// WhatIfRequest.MaxMoves of them.
	Moves []engine.Move `json:"moves,omitempty"`
	// MovedJobs and MovedDemand count every move.
	MovedJobs   int     `json:"movedJobs"`
	MovedDemand float64 `json:"movedDemand"`
	// To sums every move by the cluster it goes to.
	To map[string]Flow `json:"to,omitempty"`
	// From sums every move by the cluster it leaves.
	From map[string]Flow `json:"from,omitempty"`
	// Clusters are the clusters' loads after the dispatch.
	Clusters []engine.ClusterLoad `json:"clusters"`
	// Unplaceable are the jobs that would become unplaceable (they are not
	// now), at most WhatIfRequest.MaxMoves of them; UnplaceableJobs counts
	// them all.
	Unplaceable     []engine.Unplaceable `json:"unplaceable,omitempty"`
	UnplaceableJobs int                  `json:"unplaceableJobs"`
}

// ConfigError is a proposed config that does not load: every validation
// error, each naming the file, the field and the value. It wraps ErrInvalid.
type ConfigError struct {
	// Problems are the validation errors, one message each.
	Problems []string
}

// Error joins the problems, one a line.
func (e *ConfigError) Error() string {
	return "invalid config: " + strings.Join(e.Problems, "\n")
}

// Is makes a ConfigError match ErrInvalid.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalid }

// newConfigError splits err (errors joined by the config loader) into problems.
func newConfigError(err error) *ConfigError {
	var problems []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			problems = append(problems, line)
		}
	}
	return &ConfigError{Problems: problems}
}

// WhatIf computes what a dispatch would do with the proposed configs: it
// parses and validates them exactly as loading does (a failure is a
// *ConfigError), then runs the engine on the job config in force, the last
// good demand, the table in force as the previous one and the overrides in
// force. It changes nothing. Before the first table it wraps ErrNotReady.
func (d *Dispatcher) WhatIf(ctx context.Context, req WhatIfRequest) (*WhatIf, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.needInputs("plan"); err != nil {
		return nil, err
	}
	in := d.in.Load()
	proposed, err := d.proposedInputs(in, req)
	if err != nil {
		return nil, err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cache.Len() == 0 {
		return nil, fmt.Errorf("what-if: no assignment table yet: %w", ErrNotReady)
	}
	run, err := d.recompute(proposed, d.clusterOverrides)
	if err != nil {
		return nil, fmt.Errorf("what-if: %w", err)
	}
	max := req.MaxMoves
	if max <= 0 {
		max = DefaultWhatIfMaxMoves
	}
	out := &WhatIf{To: map[string]Flow{}, From: map[string]Flow{}, Clusters: run.report.Clusters}
	before := d.cache.Snapshot().ByJob()
	for _, a := range run.table.Assignments {
		b, ok := before[a.Job]
		if !ok || b.Cluster == a.Cluster {
			continue
		}
		out.MovedJobs++
		out.MovedDemand += a.Demand
		if len(out.Moves) < max {
			out.Moves = append(out.Moves, engine.Move{Job: a.Job, From: b.Cluster, To: a.Cluster, Reason: a.Reason})
		}
		addFlow(out.To, a.Cluster, a.Demand)
		addFlow(out.From, b.Cluster, a.Demand)
	}
	was := map[string]bool{}
	for _, u := range d.unplaceable {
		was[u.Job] = true
	}
	for _, u := range run.report.Unplaceable {
		if was[u.Job] {
			continue
		}
		out.UnplaceableJobs++
		if len(out.Unplaceable) < max {
			out.Unplaceable = append(out.Unplaceable, u)
		}
	}
	return out, nil
}

func addFlow(m map[string]Flow, cluster string, demand float64) {
	f := m[cluster]
	f.Jobs++
	f.Demand += demand
	m[cluster] = f
}

// proposedInputs are in with the proposed configs in place of the ones in
// force, validated as loadInputs validates.
func (d *Dispatcher) proposedInputs(in *inputs, req WhatIfRequest) (*inputs, error) {
	if in == nil {
		return nil, fmt.Errorf("what-if: no inputs loaded yet: %w", ErrNotReady)
	}
	cfg, clusters := in.config, in.clusters
	var errs []error
	if req.DispatcherConfig != nil {
		name := req.DispatcherConfigPath
		if name == "" {
			name = filepath.Base(d.opts.DispatcherConfigPath)
		}
		c, err := config.ParseDispatcher(name, req.DispatcherConfig)
		if err != nil {
			errs = append(errs, err)
		}
		cfg = c
	}
	if req.ClusterConfig != nil {
		name := req.ClusterConfigPath
		if name == "" {
			name = filepath.Base(d.opts.ClusterConfigPath)
		}
		c, err := config.ParseClusters(name, req.ClusterConfig)
		if err != nil {
			errs = append(errs, err)
		}
		clusters = c
	}
	if len(errs) > 0 {
		return nil, newConfigError(errors.Join(errs...))
	}
	if err := config.Validate(cfg, clusters); err != nil {
		return nil, newConfigError(err)
	}
	if err := cfg.CheckPathOverlaps(jobs.Files(in.jobs)); err != nil {
		return nil, newConfigError(err)
	}
	out := &inputs{config: cfg, clusters: clusters, jobs: in.jobs, byName: in.byName, manual: map[string]bool{}}
	for _, c := range cfg.ManualClusters {
		out.manual[c] = true
	}
	if err := out.usable(&Options{ClusterConfigPath: clusters.File, JobConfigDir: d.opts.JobConfigDir}); err != nil {
		return nil, newConfigError(err)
	}
	return out, nil
}
