package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// AdmissionRequest is what admission knows of a ProwJob being created.
type AdmissionRequest struct {
	// Job is the ProwJob's spec.job.
	Job string
	// Agent is its spec.agent; only "kubernetes" jobs are dispatched.
	Agent string
	// Cluster is its spec.cluster as created (the job config's cluster).
	Cluster string
	// Labels are its labels, which carry the job's requirements.
	Labels map[string]string
	// DryRun decides without recording anything: no admission is counted
	// and a job the table lacks is not added.
	DryRun bool
}

// Decision is what admission does with a ProwJob.
type Decision struct {
	// Cluster is where the job runs; empty when the ProwJob is left as created.
	Cluster string
	// Reason is the rule that chose Cluster, or why the ProwJob is left as
	// created: table.ReasonAgent (not a kubernetes job), table.ReasonManual
	// (created on a manual cluster) or table.ReasonUnplaceable (no usable
	// cluster meets its requirements, and it ran on none that does).
	Reason table.Reason
	// Detail says why, for table.ReasonUnplaceable.
	Detail string
	// Patch reports whether spec.cluster must be set to Cluster.
	Patch bool
}

// MaxJobNameBytes bounds the job name (ProwJob spec.job) that admission
// records. OpenShift CI's longest job names are about 70 bytes; a longer
// name than this is no real job, and recording it would make every row,
// placement and table shard holding it large enough to stop the shared
// table's publication. Such a ProwJob is admitted as created.
const MaxJobNameBytes = 1024

// Admit decides where a ProwJob being created runs: its row of the table,
// or, for a job the table lacks, a placement from its labels by every rule
// against the current loads, added to the table and saved within
// Options.PersistDelay. It counts the admission toward demand when demand is
// counted from admissions. A job the table lacks while there is no table yet
// wraps ErrNotReady; an empty job name or a job the engine refuses wraps
// ErrInvalid, as does a job name longer than MaxJobNameBytes, which is
// neither recorded nor counted. Lookups of known jobs take no lock and do
// not allocate.
func (d *Dispatcher) Admit(ctx context.Context, req AdmissionRequest) (Decision, error) {
	if req.Job == "" {
		return Decision{}, fmt.Errorf("admit: empty job name: %w", ErrInvalid)
	}
	if len(req.Job) > MaxJobNameBytes {
		d.metrics.notRecorded(notRecordedLongName)
		err := fmt.Errorf("admit: a job name of %d bytes (%.40q...), more than %d: left as created, not recorded: %w",
			len(req.Job), req.Job[:40], MaxJobNameBytes, ErrInvalid)
		d.log.Error(err, "Admission not recorded")
		return Decision{}, err
	}
	if req.Agent != jobs.Agent {
		return Decision{Reason: table.ReasonAgent}, nil
	}
	if d.admissions != nil && !req.DryRun {
		d.admissions.Record(req.Job, d.clock.Now())
	}
	if req.Cluster != "" && d.in.Load().manual[req.Cluster] {
		return Decision{Cluster: req.Cluster, Reason: table.ReasonManual}, nil
	}
	a, ok := d.cache.Lookup(req.Job)
	switch {
	case !ok:
		var err error
		a, err = d.placeNew(ctx, req)
		if errors.Is(err, engine.ErrUnplaceable) {
			d.metrics.unplaceableAdmission()
			return Decision{Reason: table.ReasonUnplaceable, Detail: err.Error()}, nil
		}
		if err != nil {
			return Decision{}, err
		}
	case a.File == "" && !req.DryRun: // a job only admission knows: provisional
		d.touchProvisional(req.Job)
	}
	return Decision{Cluster: a.Cluster, Reason: a.Reason, Patch: a.Cluster != req.Cluster}, nil
}

// placeNew places a job the table lacks and, unless req.DryRun, adds it to
// the table: a job of the job config as it is, any other as provisional,
// while there are fewer than Options.MaxProvisional (beyond, it is placed
// by the same rules but not recorded, and a balanced one is spread over the
// eligible clusters by a capacity-weighted hash of its name: see
// engine.Spread).
func (d *Dispatcher) placeNew(ctx context.Context, req AdmissionRequest) (table.Assignment, error) {
	if d.cache.Len() == 0 {
		return table.Assignment{}, fmt.Errorf("admit job %q: no assignment table yet: %w", req.Job, ErrNotReady)
	}
	if err := ctx.Err(); err != nil {
		return table.Assignment{}, fmt.Errorf("admit job %q: %w", req.Job, err)
	}
	if err := d.needInputs(fmt.Sprintf("admit job %q", req.Job)); err != nil {
		return table.Assignment{}, err
	}
	j := jobs.Job{Name: req.Job, Agent: jobs.Agent, Requirements: d.opts.Labels.Requirements(req.Labels)}
	known, inConfig := d.in.Load().byName[req.Job]
	if inConfig {
		j = *known
	}
	d.mu.Lock()
	a, provisional, recorded, err := d.placeNewLocked(req, j, inConfig)
	d.mu.Unlock()
	if err != nil || !recorded {
		return a, err
	}
	return d.claim(ctx, a, provisional), nil
}

// claimTimeout bounds how long an admission waits for the shared state to
// record a new job's row; past it, the replica's own row is used and the
// claim is retried in the background.
const claimTimeout = time.Second

// claim records a new job's row in the state unless another replica
// recorded one first, and returns the row in force cluster-wide: the
// winner's, which replaces this replica's. When the state cannot be
// reached, this replica's row is used and the state retries the claim.
func (d *Dispatcher) claim(ctx context.Context, a table.Assignment, provisional *jobs.Job) table.Assignment {
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	won, err := d.state.Claim(ctx, a, provisional)
	if err != nil {
		d.log.Error(err, "Recording a new job's row in the shared state failed: using this replica's row, retrying in the background", "job", a.Job, "cluster", a.Cluster)
		return a
	}
	if won.Cluster == a.Cluster {
		return a
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cache.Set(won)
	return won
}

// placeNewLocked is placeNew's placement: it returns the row, whether it
// was recorded in the table (not for a dry run, a job placed meanwhile or
// one over the provisional limit) and, for a recorded job the job config
// lacks, its provisional record. Callers hold mu.
func (d *Dispatcher) placeNewLocked(req AdmissionRequest, j jobs.Job, inConfig bool) (a table.Assignment, provisional *jobs.Job, recorded bool, err error) {
	if a, ok := d.cache.Lookup(req.Job); ok { // placed while we waited
		return a, nil, false, nil
	}
	overLimit := !inConfig && len(d.provisional) >= d.opts.MaxProvisional
	if req.DryRun || overLimit {
		preview := d.eng.Preview
		if overLimit {
			d.metrics.provisionalOverLimit()
			preview = d.eng.Spread // the loads never count it: spread, not all on the least-loaded
		}
		a, err := preview(j)
		if err != nil {
			return table.Assignment{}, nil, false, fmt.Errorf("admit job %q: %w: %w", req.Job, ErrInvalid, err)
		}
		return a, nil, false, nil
	}
	if inConfig {
		a, err = d.eng.Place(j)
	} else {
		a, err = d.eng.PlaceProvisional(j, 1)
	}
	if err != nil {
		switch {
		case errors.Is(err, engine.ErrUnplaceable):
			return table.Assignment{}, nil, false, err
		case errors.Is(err, engine.ErrNoCluster) || errors.Is(err, engine.ErrNotDispatched):
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return table.Assignment{}, nil, false, fmt.Errorf("admit: %w", err)
	}
	d.cache.Set(a)
	d.unsaved[a.Job] = a
	if !inConfig {
		d.provisional[req.Job] = &provisionalJob{job: j, lastAdmitted: d.clock.Now(), admissions: 1}
		d.metrics.setProvisional(len(d.provisional))
		provisional = &j
	}
	d.metrics.delta()
	d.metrics.setTableSize(d.cache.Len())
	d.saveSoon()
	return a, provisional, true, nil
}

// Lookup returns the job's row of the table in force. It reads only the
// in-memory table, takes no lock and does not allocate.
func (d *Dispatcher) Lookup(job string) (table.Assignment, bool) {
	return d.cache.Lookup(job)
}
