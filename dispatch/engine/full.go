package engine

import (
	"context"
	"fmt"
	"sort"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Dispatch computes the whole table from the input: the rules decide each
// job, balancing places the rest starting from the previous table, and the
// report lists loads, moves and unplaceable jobs. Afterwards the engine's
// loads are those of the new table. Dispatch depends only on the Input, so
// calling it again gives the same table. It fails when a job has nowhere to
// go (no usable cluster and no default).
func (e *Engine) Dispatch() (*table.Table, *Report, error) {
	return e.DispatchContext(context.Background())
}

// Unplaceable lists, by job, the jobs that need what no usable cluster has,
// as Dispatch would report them on the engine's previous table, without
// computing a table.
func (e *Engine) Unplaceable() []Unplaceable {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Unplaceable
	for _, j := range sortedJobs(e.in.Jobs) {
		if d := e.decide(j, e.previous[j.Name]); d.kind == unplaceable {
			out = append(out, Unplaceable{Job: j.Name, Problem: d.problem, Cluster: d.cluster})
		}
	}
	return out
}

// ctxCheckEvery is how many jobs DispatchContext decides between two looks at its context.
const ctxCheckEvery = 256

// DispatchContext is Dispatch, given up with ctx's error once ctx is done;
// the engine's loads are then unchanged.
func (e *Engine) DispatchContext(ctx context.Context) (*table.Table, *Report, error) {
	e.mu.Lock()
	defer e.mu.Unlock()

	js := sortedJobs(e.in.Jobs)
	rows := make([]table.Assignment, 0, len(js))
	unitOf := map[unitKey]int{}
	var units []unit
	var unplaced []Unplaceable
	forced := make([]float64, len(e.clusters)) // demand rules place on each usable cluster
	forcedJobs := make([]int, len(e.clusters))
	for k, j := range js {
		if k%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, fmt.Errorf("dispatch given up after %d of %d jobs: %w", k, len(js), err)
			}
		}
		d := e.decide(j, e.previous[j.Name])
		if d.kind == skipJob {
			continue
		}
		if d.kind == unplaceable {
			unplaced = append(unplaced, Unplaceable{Job: j.Name, Problem: d.problem, Cluster: d.cluster})
			if d.cluster == "" {
				continue // no row: its ProwJobs keep their job config's cluster
			}
		}
		a := table.Assignment{Job: j.Name, Reason: d.reason, Detail: d.detail, File: j.File, Demand: e.demandOf(j.Name)}
		switch d.kind {
		case fixedJob, unplaceable:
			if d.cluster == "" {
				return nil, nil, fmt.Errorf("job %q: %s, and the dispatcher config names no default cluster: %w", j.Name, d.detail, ErrNoCluster)
			}
			a.Cluster = d.cluster
			if c, ok := e.byName[d.cluster]; ok && e.usable.has(c) {
				forced[c] += a.Demand
				forcedJobs[c]++
			}
		case balanceJob:
			key := unitKey{file: j.File, set: d.set}
			if j.File == "" {
				key.file = "\x00" + j.Name // a job without a file is a unit of its own
			}
			u, ok := unitOf[key]
			if !ok {
				u = len(units)
				unitOf[key] = u
				units = append(units, unit{file: key.file, set: d.set, cluster: -1})
			}
			units[u].demand += a.Demand
			units[u].jobs++
			units[u].members = append(units[u].members, len(rows))
		}
		rows = append(rows, a)
	}

	b := newBalancer(e, units, forced, forcedJobs)
	b.keepPrevious(func(r int) (int, bool) {
		p, ok := e.previous[rows[r].Job]
		if !ok {
			return 0, false
		}
		c, ok := e.byName[p.cluster]
		return c, ok
	}, func(r int) float64 { return rows[r].Demand })
	b.placeGreedy()
	b.rebalance(e.opts.Tolerance, int(e.opts.MaxMoveFraction*float64(len(rows))))
	for u := range b.units {
		name := e.clusters[b.units[u].cluster].name
		for _, r := range b.units[u].members {
			rows[r].Cluster = name
		}
	}

	report := &Report{Jobs: len(rows), Unplaceable: unplaced}
	for r := range rows {
		a := &rows[r]
		a.AssignedAt = e.in.Now
		p, ok := e.previous[a.Job]
		if !ok {
			continue
		}
		if p.cluster == a.Cluster {
			if !p.at.IsZero() {
				a.AssignedAt = p.at
			}
			continue
		}
		report.Moves = append(report.Moves, Move{Job: a.Job, From: p.cluster, To: a.Cluster, Reason: a.Reason})
		if report.MovedByReason == nil {
			report.MovedByReason = map[table.Reason]int{}
		}
		report.MovedByReason[a.Reason]++
	}

	e.setRows(rows)
	report.Clusters = e.loadsLocked()
	report.Imbalance = imbalance(report.Clusters)
	t := &table.Table{GeneratedAt: e.in.Now, Assignments: append([]table.Assignment(nil), rows...)}
	return t, report, nil
}

// setRows makes rows the current table and recounts the loads.
func (e *Engine) setRows(rows []table.Assignment) {
	e.rows = make([]table.Assignment, 0, len(rows))
	e.rowIndex = make(map[string]int, len(rows))
	for i := range e.loads {
		e.loads[i] = load{}
	}
	e.total = 0
	e.files = nil
	for _, a := range rows {
		e.addRow(a)
	}
}

// sortedJobs returns the jobs sorted by name, the first of duplicates only.
func sortedJobs(in []jobs.Job) []*jobs.Job {
	out := make([]*jobs.Job, len(in))
	for i := range in {
		out[i] = &in[i]
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].File < out[j].File
	})
	k := 0
	for i, j := range out {
		if i > 0 && j.Name == out[k-1].Name {
			continue
		}
		out[k] = j
		k++
	}
	return out[:k]
}
