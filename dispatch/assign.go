package dispatch

import (
	"context"
	"errors"
	"fmt"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Lookup returns the job's row of the table in force. It reads only the
// in-memory table, takes no lock and does not allocate.
func (d *Dispatcher) Lookup(job string) (table.Assignment, bool) {
	return d.cache.Lookup(job)
}

// Assign returns the job's row, or places a job the table lacks from its
// labels (by every rule, against the current loads) and adds it to the
// table, which is saved within Options.PersistDelay. With dryRun the
// placement is computed but neither recorded nor saved. A job the engine
// refuses (no eligible cluster, agent not kubernetes) wraps ErrInvalid.
func (d *Dispatcher) Assign(ctx context.Context, job string, labels map[string]string, dryRun bool) (table.Assignment, error) {
	if a, ok := d.cache.Lookup(job); ok {
		return a, nil
	}
	if job == "" {
		return table.Assignment{}, fmt.Errorf("assign: empty job name: %w", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return table.Assignment{}, fmt.Errorf("assign job %q: %w", job, err)
	}
	j := jobs.Job{Name: job, Agent: jobs.Agent, Requirements: d.opts.Labels.Requirements(labels)}
	if known, ok := d.in.Load().byName[job]; ok {
		j.File, j.Type, j.Cluster = known.File, known.Type, known.Cluster
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.cache.Lookup(job); ok { // assigned while we waited
		return a, nil
	}
	if dryRun {
		x := d.eng.Explain(j)
		if x.Assignment.Cluster == "" {
			return table.Assignment{}, fmt.Errorf("assign job %q: no cluster: %w", job, ErrInvalid)
		}
		return x.Assignment, nil
	}
	a, err := d.eng.Place(j)
	if err != nil {
		if errors.Is(err, engine.ErrNoCluster) || errors.Is(err, engine.ErrNotDispatched) {
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return table.Assignment{}, fmt.Errorf("assign: %w", err)
	}
	d.cache.Set(a)
	d.unsaved[a.Job] = a
	d.deltaJobs[job] = j
	d.metrics.delta()
	d.metrics.setTableSize(d.cache.Len())
	d.saveSoon()
	return a, nil
}

// IsManual reports whether cluster is one of the dispatcher config's manualClusters.
func (d *Dispatcher) IsManual(cluster string) bool {
	return d.in.Load().manual[cluster]
}

// RecordAdmission counts one admitted run of job toward its demand when the
// demand is counted from admissions (no Options.Demand); otherwise it does nothing.
func (d *Dispatcher) RecordAdmission(job string) {
	if d.admissions != nil {
		d.admissions.Record(job, d.clock.Now())
	}
}
