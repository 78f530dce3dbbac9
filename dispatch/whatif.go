package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// DefaultWhatIfMaxMoves bounds the moves and unplaceable jobs a WhatIf lists
// when WhatIfRequest.MaxMoves is 0; the totals always count them all.
const DefaultWhatIfMaxMoves = 200

// WhatIfRequest proposes new contents for the config files and the Prow
// job config files, as a pull request would change them. A nil config file
// and a job config file not listed are the ones in force.
type WhatIfRequest struct {
	// DispatcherConfig and ClusterConfig are the proposed files' contents.
	DispatcherConfig, ClusterConfig []byte
	// DispatcherConfigPath and ClusterConfigPath name the files in
	// validation errors (the paths in the repository, e.g.
	// core-services/sanitize-prow-jobs/_clusters.yaml); empty: the base
	// names of the files the dispatcher loads.
	DispatcherConfigPath, ClusterConfigPath string
	// JobConfigFiles are proposed Prow job config files, by path relative
	// to the job config dir with forward slashes
	// ("openshift/origin/openshift-origin-main-presubmits.yaml"): the new
	// content (gzipped or not), or nil for a deleted file. A path must be
	// clean, relative and name a .yaml or .yml file that the job config
	// loader reads (no folder or file named "..*"); others are refused
	// with ErrInvalid.
	JobConfigFiles map[string][]byte
	// JobConfigDirPath names the job config dir in validation errors (its
	// path in the repository, e.g. ci-operator/jobs, so that a file is
	// ci-operator/jobs/org/repo/x.yaml); empty: the base name of the dir
	// the dispatcher loads.
	JobConfigDirPath string
	// MaxMoves bounds the moves, unplaceable, added and removed jobs
	// listed; 0 is DefaultWhatIfMaxMoves.
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
	// Added are the jobs the proposed job config files define that the job
	// config in force lacks, sorted by job, at most WhatIfRequest.MaxMoves
	// of them, each with the cluster it would get; AddedJobs counts them
	// all and AddedTo sums them by that cluster. A job admitted before its
	// file is in force has a provisional row: it is added, and also a move
	// when its cluster changes.
	Added     []JobChange     `json:"added,omitempty"`
	AddedJobs int             `json:"addedJobs"`
	AddedTo   map[string]Flow `json:"addedTo,omitempty"`
	// Removed are the jobs of the job config in force that the proposed
	// files no longer define, sorted by job, at most WhatIfRequest.MaxMoves
	// of them, each with the cluster it is on; RemovedJobs counts them all
	// and RemovedFrom sums them by that cluster.
	Removed     []JobChange     `json:"removed,omitempty"`
	RemovedJobs int             `json:"removedJobs"`
	RemovedFrom map[string]Flow `json:"removedFrom,omitempty"`
}

// JobChange is a job that proposed job config files add or remove.
type JobChange struct {
	Job string `json:"job"`
	// File is the job's file, relative to the job config dir: the proposed
	// one for an added job, the one in force for a removed job.
	File string `json:"file,omitempty"`
	// Cluster is the cluster an added job would get, or the one a removed
	// job is on; empty when it has no row: a job of another agent, or an
	// unplaceable job with no cluster to stay on.
	Cluster string `json:"cluster,omitempty"`
	// Reason is the rule that chose Cluster; ReasonAgent or
	// ReasonUnplaceable for a job without a row.
	Reason table.Reason `json:"reason"`
	// Detail explains it for people.
	Detail string `json:"detail,omitempty"`
	// Demand is the job's demand in its row.
	Demand float64 `json:"demand"`
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

// WhatIf computes what a dispatch would do with the proposed configs and
// job config files (see Snapshot.WhatIf) on a snapshot of the core, without
// the locks that admissions and operations take, within
// Options.PreviewTimeout (past it, the error wraps ErrTimedOut). Before the
// first table it wraps ErrNotReady.
func (d *Dispatcher) WhatIf(ctx context.Context, req WhatIfRequest) (*WhatIf, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.needInputs("plan"); err != nil {
		return nil, err
	}
	if d.cache.Len() == 0 {
		return nil, fmt.Errorf("what-if: no assignment table yet: %w", ErrNotReady)
	}
	ctx, done, err := d.startPreview(ctx, "what-if")
	if err != nil {
		return nil, err
	}
	defer done()
	out, err := d.Snapshot().WhatIf(ctx, req)
	return out, d.previewError(ctx, "what-if", err)
}

// WhatIf computes what a dispatch would do with the proposed configs and
// job config files: it parses and validates them exactly as loading does
// (a failure is a *ConfigError), then runs the engine on the snapshot's job
// config with the proposed files in place, its demand, its table as the
// previous one and its overrides. It changes nothing and gives up with
// ctx's error once ctx is done. Before the first table it wraps ErrNotReady.
func (s *Snapshot) WhatIf(ctx context.Context, req WhatIfRequest) (*WhatIf, error) {
	if !s.loaded {
		return nil, fmt.Errorf("plan: the configs and the job config are still loading: %w", ErrNotReady)
	}
	if len(s.st.prev.Assignments) == 0 {
		return nil, fmt.Errorf("what-if: no assignment table yet: %w", ErrNotReady)
	}
	in, st := s.in, s.st
	proposed, err := proposedInputs(ctx, s.opts, in, req)
	if err != nil {
		return nil, err
	}
	run, err := s.compute(ctx, "what-if", proposed, st)
	if err != nil {
		return nil, fmt.Errorf("what-if: %w", err)
	}
	max := req.MaxMoves
	if max <= 0 {
		max = DefaultWhatIfMaxMoves
	}
	out := &WhatIf{To: map[string]Flow{}, From: map[string]Flow{}, Clusters: run.report.Clusters}
	before := st.prev.ByJob()
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
	for _, u := range st.unplaceable {
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
	if len(req.JobConfigFiles) > 0 {
		out.addJobChanges(in, proposed, before, run, st.unplaceable, max)
	}
	return out, nil
}

// addJobChanges fills the added and removed jobs of out: the jobs of the
// proposed job config the one in force lacks, with their rows in the run,
// and the jobs of the one in force the proposed one lacks, with their rows
// in before.
func (out *WhatIf) addJobChanges(in, proposed *inputs, before map[string]table.Assignment, run *engineRun, unplaceableBefore []engine.Unplaceable, max int) {
	after := run.table.ByJob()
	out.AddedTo, out.RemovedFrom = map[string]Flow{}, map[string]Flow{}
	for i := range proposed.jobs {
		j := &proposed.jobs[i]
		if _, known := in.byName[j.Name]; known {
			continue
		}
		c := jobChangeOf(j, after, run.report.Unplaceable)
		out.AddedJobs++
		if c.Cluster != "" {
			addFlow(out.AddedTo, c.Cluster, c.Demand)
		}
		if len(out.Added) < max {
			out.Added = append(out.Added, c)
		}
	}
	for i := range in.jobs {
		j := &in.jobs[i]
		if _, kept := proposed.byName[j.Name]; kept {
			continue
		}
		c := jobChangeOf(j, before, unplaceableBefore)
		out.RemovedJobs++
		if c.Cluster != "" {
			addFlow(out.RemovedFrom, c.Cluster, c.Demand)
		}
		if len(out.Removed) < max {
			out.Removed = append(out.Removed, c)
		}
	}
}

// jobChangeOf is j with its row in rows or, without one, why it has none.
func jobChangeOf(j *jobs.Job, rows map[string]table.Assignment, unplaceable []engine.Unplaceable) JobChange {
	c := JobChange{Job: j.Name, File: j.File}
	if a, ok := rows[j.Name]; ok {
		c.Cluster, c.Reason, c.Detail, c.Demand = a.Cluster, a.Reason, a.Detail, a.Demand
		return c
	}
	if j.Agent != "" && j.Agent != jobs.Agent {
		c.Reason, c.Detail = table.ReasonAgent, fmt.Sprintf("agent %q: not dispatched, left alone", j.Agent)
		return c
	}
	c.Reason = table.ReasonUnplaceable
	for _, u := range unplaceable {
		if u.Job == j.Name {
			c.Detail = "unplaceable: " + u.Problem + ": left on the cluster its job config gives"
			break
		}
	}
	return c
}

func addFlow(m map[string]Flow, cluster string, demand float64) {
	f := m[cluster]
	f.Jobs++
	f.Demand += demand
	m[cluster] = f
}

// proposedInputs are in with the proposed configs and job config files in
// place of the ones in force, validated as loadInputs validates.
func proposedInputs(ctx context.Context, opts *Options, in *inputs, req WhatIfRequest) (*inputs, error) {
	if in == nil {
		return nil, fmt.Errorf("what-if: no inputs loaded yet: %w", ErrNotReady)
	}
	for p := range req.JobConfigFiles {
		if err := checkJobFilePath(p); err != nil {
			return nil, fmt.Errorf("what-if: job config file %q: %s: %w", p, err, ErrInvalid)
		}
	}
	cfg, clusters := in.config, in.clusters
	dir := req.JobConfigDirPath
	if dir == "" {
		dir = filepath.Base(opts.JobConfigDir)
	}
	var errs []error
	if req.DispatcherConfig != nil {
		name := req.DispatcherConfigPath
		if name == "" {
			name = filepath.Base(opts.DispatcherConfigPath)
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
			name = filepath.Base(opts.ClusterConfigPath)
		}
		c, err := config.ParseClusters(name, req.ClusterConfig)
		if err != nil {
			errs = append(errs, err)
		}
		clusters = c
	}
	if len(errs) == 0 {
		if err := config.Validate(cfg, clusters); err != nil {
			errs = append(errs, err)
		}
	}
	js := in.jobs
	if len(req.JobConfigFiles) > 0 {
		kept, parsed, jobErrs := proposedJobFiles(in.jobs, dir, req.JobConfigFiles, opts.Labels)
		if len(jobErrs) == 0 {
			merged, err := jobs.Merge(dir, append(parsed, kept)...)
			if err != nil {
				jobErrs = append(jobErrs, err)
			}
			js = merged
		}
		errs = append(errs, jobErrs...)
	}
	if len(errs) > 0 {
		return nil, newConfigError(errors.Join(errs...))
	}
	if err := cfg.CheckPathOverlapsContext(ctx, jobs.Files(js)); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("what-if: checking the group path regexes: %w", err)
		}
		return nil, newConfigError(err)
	}
	out := &inputs{config: cfg, clusters: clusters, jobs: js, byName: in.byName, manual: map[string]bool{}}
	if len(req.JobConfigFiles) > 0 {
		out.byName = make(map[string]*jobs.Job, len(js))
		for i := range js {
			out.byName[js[i].Name] = &js[i]
		}
	}
	for _, c := range cfg.ManualClusters {
		out.manual[c] = true
	}
	if err := out.usable(&Options{ClusterConfigPath: clusters.File, JobConfigDir: dir}); err != nil {
		return nil, newConfigError(err)
	}
	return out, nil
}

// proposedJobFiles parses the proposed job config files with the job
// labels: it returns the jobs in force of the files not proposed, the jobs
// of each proposed file that is not deleted, and every error, each naming the file under dir,
// the job config dir's name in errors. A proposed file whose base name
// another file has is refused, as the job config loader refuses it (only
// files with jobs are known of the job config in force).
func proposedJobFiles(inForce []jobs.Job, dir string, files map[string][]byte, labels jobs.Labels) (kept []jobs.Job, proposed [][]jobs.Job, errs []error) {
	kept = make([]jobs.Job, 0, len(inForce))
	for _, j := range inForce {
		if _, replaced := files[j.File]; !replaced {
			kept = append(kept, j)
		}
	}
	baseNames := map[string]string{}
	for _, f := range jobs.Files(kept) {
		baseNames[path.Base(f)] = f
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		data := files[p]
		if data == nil {
			continue // deleted
		}
		if other, dup := baseNames[path.Base(p)]; dup {
			errs = append(errs, fmt.Errorf("job config %s: %s: duplicated basename is not allowed: %s (%s has it)",
				dir, path.Join(dir, p), path.Base(p), path.Join(dir, other)))
			continue
		}
		baseNames[path.Base(p)] = p
		js, err := jobs.ParseFile(dir, p, data, labels)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		proposed = append(proposed, js)
	}
	return kept, proposed, errs
}

// checkJobFilePath says why the job config loader would not read p as a
// file of the job config dir, or returns nil.
func checkJobFilePath(p string) error {
	switch {
	case p == "" || path.IsAbs(p):
		return errors.New("not a path relative to the job config dir")
	case path.Clean(p) != p:
		return errors.New("not a clean path (want " + path.Clean(p) + ")")
	case path.Ext(p) != ".yaml" && path.Ext(p) != ".yml":
		return errors.New("not a .yaml or .yml file")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return errors.New("escapes the job config dir")
		}
		if strings.HasPrefix(part, "..") {
			return errors.New("a folder or file named ..* is not read by the job config loader")
		}
	}
	return nil
}
