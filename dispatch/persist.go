package dispatch

import (
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// save writes the state now: the table in force, the overrides, the
// admission counts and the last dispatch time. A failure is logged and
// counted; the in-memory state stays authoritative and the next save retries.
func (d *Dispatcher) save() error {
	if d.store == nil {
		return nil
	}
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	d.mu.Lock()
	st := &store.State{Table: d.cache.Snapshot(), Overrides: d.overridesLocked(), DeltaJobs: d.deltaJobsLocked(), LastDispatch: d.lastDispatch}
	d.mu.Unlock()
	if d.admissions != nil {
		st.Admissions = d.admissions.Snapshot()
	}
	if err := d.store.Save(st); err != nil {
		d.metrics.stateSaveError()
		d.saveFailed.Store(true)
		d.log.Error(err, "Saving state failed")
		return err
	}
	if d.saveFailed.Swap(false) {
		d.log.Info("Saving state works again", "path", d.store.Path())
	}
	return nil
}

// saveSoon saves within Options.PersistDelay, merging the requests made meanwhile.
func (d *Dispatcher) saveSoon() {
	if d.store == nil {
		return
	}
	d.timerMu.Lock()
	defer d.timerMu.Unlock()
	if d.saveTimer != nil {
		return
	}
	d.saveTimer = time.AfterFunc(d.opts.PersistDelay, func() {
		d.timerMu.Lock()
		d.saveTimer = nil
		d.timerMu.Unlock()
		_ = d.save()
	})
}

// flush cancels a pending coalesced save and saves now.
func (d *Dispatcher) flush() error {
	d.timerMu.Lock()
	if d.saveTimer != nil {
		d.saveTimer.Stop()
		d.saveTimer = nil
	}
	d.timerMu.Unlock()
	return d.save()
}

// overridesLocked returns the overrides sorted by job. Callers hold mu.
func (d *Dispatcher) overridesLocked() []table.Override {
	out := make([]table.Override, 0, len(d.overrides))
	for _, o := range d.overrides {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Job < out[j].Job })
	return out
}

// deltaJobsLocked returns the jobs assigned at admission, sorted by name. Callers hold mu.
func (d *Dispatcher) deltaJobsLocked() []jobs.Job {
	out := make([]jobs.Job, 0, len(d.deltaJobs))
	for _, name := range slices.Sorted(maps.Keys(d.deltaJobs)) {
		out = append(out, d.deltaJobs[name])
	}
	return out
}
