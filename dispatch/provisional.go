package dispatch

import (
	"maps"
	"slices"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
)

// Jobs first seen at admission that the job config lacks (rehearsals, jobs
// of a config change not loaded yet, or names anyone who reaches the
// webhook can make up) are provisional: their rows are bounded in number
// (Options.MaxProvisional), weigh on balance only by the admissions seen of
// them, and are dropped once the job config still lacks them and none was
// admitted for Options.ProvisionalTTL.

// provisionalJob is one provisional job. Guarded by Dispatcher.mu.
type provisionalJob struct {
	job          jobs.Job
	lastAdmitted time.Time
	admissions   int
}

// touchProvisional counts one more admission of a provisional job.
func (d *Dispatcher) touchProvisional(job string) {
	now := d.clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.provisional[job]; ok {
		p.lastAdmitted = now
		p.admissions++
	}
}

// provisionalLocked returns the provisional jobs for the store, sorted by
// name. Callers hold mu.
func (d *Dispatcher) provisionalLocked() []state.Provisional {
	out := make([]state.Provisional, 0, len(d.provisional))
	for _, name := range slices.Sorted(maps.Keys(d.provisional)) {
		p := d.provisional[name]
		out = append(out, state.Provisional{Job: p.job, LastAdmitted: p.lastAdmitted, Admissions: p.admissions})
	}
	return out
}

// expireProvisional drops the rows of the provisional jobs not admitted for
// Options.ProvisionalTTL, and saves the state file (a journal cannot record
// a row's removal). It reports how many it dropped.
func (d *Dispatcher) expireProvisional() (int, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	cutoff := d.clock.Now().Add(-d.opts.ProvisionalTTL)
	dropped := map[string]bool{}
	for name, p := range d.provisional {
		if p.lastAdmitted.Before(cutoff) {
			dropped[name] = true
			delete(d.provisional, name)
		}
	}
	if len(dropped) == 0 {
		d.mu.Unlock()
		return 0, nil
	}
	eng, err := d.newEngine(d.in.Load(), d.snapshotWithout(dropped))
	if err != nil {
		d.mu.Unlock()
		return 0, err
	}
	d.eng = eng
	for name := range dropped {
		d.cache.Delete(name)
		delete(d.unsaved, name)
	}
	d.metrics.setProvisional(len(d.provisional))
	d.metrics.setTableSize(d.cache.Len())
	d.mu.Unlock()
	d.log.Info("Dropped provisional jobs not admitted for a while", "jobs", len(dropped), "ttl", d.opts.ProvisionalTTL)
	return len(dropped), d.save()
}
