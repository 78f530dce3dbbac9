package dispatch

import (
	"context"
	"errors"
	"fmt"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// What-ifs (plans) and drain previews compute an engine run on a snapshot
// without any lock that admissions or operations take, so a costly one
// delays nothing but itself. Each is bounded in time
// (Options.PreviewTimeout) and at most maxPreviews compute at once, so
// that previews cannot take every core from admissions; the others wait
// for a slot within their deadline.

// maxPreviews bounds the previews computing at once.
const maxPreviews = 1

// startPreview bounds ctx by Options.PreviewTimeout and waits for a
// preview slot; done frees the slot and the context. what names the
// preview in errors; a deadline passed waiting wraps ErrTimedOut.
func (d *Dispatcher) startPreview(ctx context.Context, what string) (_ context.Context, done func(), _ error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.PreviewTimeout)
	select {
	case d.previews <- struct{}{}:
		return ctx, func() { <-d.previews; cancel() }, nil
	case <-ctx.Done():
		err := d.previewError(ctx, what, ctx.Err())
		cancel()
		return nil, nil, err
	}
}

// previewError wraps a preview's error: one of its deadline wraps
// ErrTimedOut with what to do about it.
func (d *Dispatcher) previewError(ctx context.Context, what string, err error) error {
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() == nil {
		return err
	}
	return fmt.Errorf("%s: gave up after the preview timeout of %s (another preview may hold the only slot): "+
		"retry later, or propose fewer group path regexes and job config files: %w: %w", what, d.opts.PreviewTimeout, ErrTimedOut, err)
}

// planDrain computes the plan of the drain or cap o on s, and the engine
// run (operation, in engine_runs_total) that commits it: the jobs that
// move, those that stay on a drained cluster, and those that would need
// what no usable cluster has once o applies and did not before. It changes
// nothing and takes no lock.
func (s *Snapshot) planDrain(ctx context.Context, operation string, o table.Drain) (*DrainPlan, *engineRun, error) {
	st := s.withDrain(o).st
	run, err := s.compute(ctx, operation, s.in, st)
	if err != nil {
		return nil, nil, err
	}
	plan := &DrainPlan{Override: o, To: map[string]Flow{}}
	before := st.prev.ByJob()
	for _, a := range run.table.Assignments {
		if b, ok := before[a.Job]; ok && b.Cluster != a.Cluster {
			plan.Moves = append(plan.Moves, engine.Move{Job: a.Job, From: b.Cluster, To: a.Cluster, Reason: a.Reason})
			addFlow(plan.To, a.Cluster, a.Demand)
		}
		if o.Drain() && a.Cluster == o.Cluster {
			plan.Staying = append(plan.Staying, StayingJob{Job: a.Job, Reason: a.Reason, Detail: a.Detail})
		}
	}
	was := map[string]bool{}
	for _, u := range st.unplaceable {
		was[u.Job] = true
	}
	for _, u := range run.report.Unplaceable {
		if !was[u.Job] {
			plan.Stranded = append(plan.Stranded, u)
		}
	}
	return plan, run, nil
}
