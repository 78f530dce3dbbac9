package dispatch

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Snapshot is the core at one instant, immutable: the inputs in force (both
// configs and the job config), the table in force and what an engine run
// reads besides (the overrides, drains and caps, the provisional jobs, the
// last good demand). What-ifs, drain previews and the buildFarm views are
// functions over a Snapshot: they compute without any lock of the
// Dispatcher, so admissions and operations never wait for them.
type Snapshot struct {
	in       *inputs
	loaded   bool // the inputs are loaded, not still loading (Options.DeferInputs)
	st       *runState
	services []string // the service clusters of the engine in force
	opts     *Options
	// compute runs the engine on the snapshot's state (Dispatcher.compute):
	// it reads nothing of the Dispatcher but its options and metrics.
	compute func(ctx context.Context, operation string, in *inputs, st *runState) (*engineRun, error)
}

// Snapshot takes a snapshot of the core. It copies the table in force,
// holding the Dispatcher's lock only to copy the rest.
func (d *Dispatcher) Snapshot() *Snapshot {
	loaded := d.inputsLoaded.Load()
	s := &Snapshot{in: d.in.Load(), loaded: loaded, opts: &d.opts, compute: d.compute}
	s.st = d.snapshot(func() map[string]table.Drain { return d.drains })
	d.mu.Lock()
	eng := d.eng
	d.mu.Unlock()
	if eng != nil {
		s.services = eng.ServiceClusters()
	}
	return s
}

// Table returns the table in force when the snapshot was taken; callers must not modify it.
func (s *Snapshot) Table() *table.Table { return s.st.prev }

// Overrides returns the active job overrides, sorted by job.
func (s *Snapshot) Overrides() []table.Override {
	out := make([]table.Override, 0, len(s.st.overrides))
	for _, job := range slices.Sorted(maps.Keys(s.st.overrides)) {
		out = append(out, s.st.overrides[job])
	}
	return out
}

// Drains returns the drains and caps, sorted by cluster.
func (s *Snapshot) Drains() []table.Drain {
	out := make([]table.Drain, 0, len(s.st.drains))
	for _, c := range slices.Sorted(maps.Keys(s.st.drains)) {
		out = append(out, s.st.drains[c])
	}
	return out
}

// Taken is when the snapshot was taken.
func (s *Snapshot) Taken() time.Time { return s.st.now }

// withDrain is s with o among its drains and caps, in place of
// the cluster's own: the state a drain's engine run reads.
func (s *Snapshot) withDrain(o table.Drain) *Snapshot {
	out := *s
	st := *s.st
	st.drains = maps.Clone(s.st.drains)
	if st.drains == nil {
		st.drains = map[string]table.Drain{}
	}
	st.drains[o.Cluster] = o
	out.st = &st
	return &out
}
