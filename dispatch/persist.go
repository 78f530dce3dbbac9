package dispatch

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// minCompactRows is the journal size, in rows, below which a journal save
// never turns into a full save; above it, a journal of more than a
// twentieth of the table does.
const minCompactRows = 1000

// save writes the state file now (the table in force, the overrides, the
// provisional jobs and the last dispatch time; the journal starts over),
// then the overrides and the admission counts. A failure is logged, counted,
// shown by Status and returned wrapping ErrNotSaved; the in-memory state
// stays authoritative and the next save retries.
func (d *Dispatcher) save() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	return d.saveLocked()
}

// saveLocked is save; callers hold saveMu.
func (d *Dispatcher) saveLocked() error {
	d.mu.Lock()
	overrides := d.overridesLocked()
	d.mu.Unlock()
	var folded map[string]table.Assignment
	if err := d.state.Save(func() *state.State {
		// The copy of 50k rows is made outside mu (a drain's save held up new
		// jobs' admissions for it); unsaved rows are folded with the copy
		// that holds them.
		var st *state.State
		d.copyTable(func(t *table.Table) {
			st = &state.State{Table: t, Overrides: overrides, Provisional: d.provisionalLocked(), LastDispatch: d.lastDispatch}
			folded = d.unsaved
			d.unsaved = map[string]table.Assignment{}
		})
		return st
	}); err != nil {
		d.mu.Lock()
		for job, a := range folded { // still unsaved, unless set again meanwhile
			if _, newer := d.unsaved[job]; !newer {
				d.unsaved[job] = a
			}
		}
		d.mu.Unlock()
		return d.saveFailedWith(err)
	}
	if err := d.state.SaveOverrides(overrides); err != nil {
		return d.saveFailedWith(err)
	}
	if err := d.saveAdmissionsLocked(); err != nil {
		return err
	}
	d.savedOK()
	return nil
}

// saveOverrides writes the overrides' file now: what makes a reschedule,
// an override deletion or an expiry durable.
func (d *Dispatcher) saveOverrides() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	d.mu.Lock()
	overrides := d.overridesLocked()
	d.mu.Unlock()
	if err := d.state.SaveOverrides(overrides); err != nil {
		return d.saveFailedWith(err)
	}
	d.savedOK()
	return nil
}

// saveDemand writes the last good demand, so a restart places new jobs with
// it before its first query.
func (d *Dispatcher) saveDemand(dm map[string]float64) {
	if d.admissions != nil { // admission counts are saved as such
		return
	}
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	if err := d.state.SaveDemand(&state.Demand{At: d.clock.Now(), Jobs: dm}); err != nil {
		_ = d.saveFailedWith(err)
		return
	}
	d.savedOK()
}

// saveAdmissions saves the admission counts, when demand is counted from
// admissions, in their own file.
func (d *Dispatcher) saveAdmissions() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	if err := d.saveAdmissionsLocked(); err != nil {
		return err
	}
	d.savedOK()
	return nil
}

// saveAdmissionsLocked is saveAdmissions; callers hold saveMu.
func (d *Dispatcher) saveAdmissionsLocked() error {
	if d.admissions == nil {
		return nil
	}
	if err := d.state.SaveAdmissions(d.admissions.Snapshot); err != nil {
		return d.saveFailedWith(err)
	}
	return nil
}

// saveJournal saves what changed since the state file was written (the rows
// set since, the overrides, the admission-time jobs) by writing the journal
// alone, which costs a few rows rather than the whole table. When the
// journal has grown to a twentieth of the table, or there is no state file
// to extend yet, it saves the state file instead.
func (d *Dispatcher) saveJournal() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	d.mu.Lock()
	if n := len(d.unsaved); n > minCompactRows && n > d.cache.Len()/20 {
		d.mu.Unlock()
		return d.saveLocked()
	}
	d.mu.Unlock()
	err := d.state.SaveJournal(func() ([]table.Assignment, []state.Provisional) {
		d.mu.Lock()
		defer d.mu.Unlock()
		rows := make([]table.Assignment, 0, len(d.unsaved))
		for _, job := range slices.Sorted(maps.Keys(d.unsaved)) {
			rows = append(rows, d.unsaved[job])
		}
		return rows, d.provisionalLocked()
	})
	if errors.Is(err, state.ErrNoBase) {
		return d.saveLocked()
	}
	if err != nil {
		return d.saveFailedWith(err)
	}
	d.savedOK()
	return nil
}

// saveFailedWith logs, counts and records (for Status) a failed save and
// returns err wrapping ErrNotSaved.
func (d *Dispatcher) saveFailedWith(err error) error {
	d.metrics.stateSaveError()
	d.saveFailed.Store(true)
	d.mu.Lock()
	d.saveError = err.Error()
	d.mu.Unlock()
	d.log.Error(err, "Saving state failed", "path", d.state.Where())
	return fmt.Errorf("%w: %w", ErrNotSaved, err)
}

// savedOK notes a save that worked, logging the recovery after failures.
func (d *Dispatcher) savedOK() {
	if d.saveFailed.Swap(false) {
		d.mu.Lock()
		d.saveError = ""
		d.mu.Unlock()
		d.log.Info("Saving state works again", "path", d.state.Where())
	}
}

// saveSoon saves the journal within Options.PersistDelay, merging the
// requests made meanwhile.
func (d *Dispatcher) saveSoon() {
	d.timerMu.Lock()
	defer d.timerMu.Unlock()
	if d.saveTimer != nil {
		return
	}
	d.saveTimer = time.AfterFunc(d.opts.PersistDelay, func() {
		d.timerMu.Lock()
		d.saveTimer = nil
		d.timerMu.Unlock()
		_ = d.saveJournal()
	})
}

// flush cancels a pending coalesced save and saves the state file now,
// folding the journal in.
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

// saveDrains writes the cluster overrides' file now: what makes a
// drain survive a restart.
func (d *Dispatcher) saveDrains() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	d.mu.Lock()
	overrides := d.drainsLocked()
	d.mu.Unlock()
	if err := d.state.SaveDrains(overrides); err != nil {
		return d.saveFailedWith(err)
	}
	d.savedOK()
	return nil
}
