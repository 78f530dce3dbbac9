package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/robfig/cron/v3"
	"k8s.io/utils/clock"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Dispatcher keeps the job -> cluster table in force: it answers lookups from
// memory, assigns jobs it has not seen, applies operators' overrides, and
// recomputes the whole table on a schedule, on config change and on demand.
// All methods are safe for concurrent use.
type Dispatcher struct {
	opts       Options
	log        logr.Logger
	clock      clock.PassiveClock
	store      *store.Store // nil: state is kept in memory only
	cache      *table.Cache
	metrics    *metrics
	source     demand.Source
	admissions *demand.Admissions // the embedded demand source; nil when Options.Demand is set
	schedule   cron.Schedule
	trigger    chan struct{}

	in atomic.Pointer[inputs] // the inputs in force; IsManual reads them without locking

	// opMu serializes the operations that rebuild the engine: Dispatch,
	// Reschedule, DeleteOverride and override expiry.
	opMu sync.Mutex

	mu           sync.Mutex // guards the fields below; Lookup never takes it
	eng          *engine.Engine
	overrides    map[string]table.Override
	deltaJobs    map[string]jobs.Job         // jobs assigned at admission that the job config lacked
	unsaved      map[string]table.Assignment // rows set since the state file was written: the journal's
	lastDemand   map[string]float64          // the last good demand; nil before the first
	lastDispatch time.Time
	lastError    string
	demandError  string

	saveMu     sync.Mutex // serializes snapshot + write, so an older snapshot never overwrites a newer one
	timerMu    sync.Mutex
	saveTimer  *time.Timer // a pending coalesced save
	saveFailed atomic.Bool
}

// New loads and validates the configs and the job config (errors are fatal)
// and the persisted state (a missing or corrupt state file is logged, counted
// and ignored). The table of the state file, if any, is in force at once.
func New(ctx context.Context, opts Options) (*Dispatcher, error) {
	switch {
	case opts.DispatcherConfigPath == "":
		return nil, errors.New("dispatcher: no dispatcher config path")
	case opts.ClusterConfigPath == "":
		return nil, errors.New("dispatcher: no cluster config path")
	case opts.JobConfigDir == "":
		return nil, errors.New("dispatcher: no job config dir")
	}
	opts = opts.withDefaults()
	sched, err := cron.ParseStandard(opts.Schedule)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: schedule %q: %w", opts.Schedule, err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{
		opts: opts, log: opts.Logger, clock: opts.Clock, cache: table.NewCache(), metrics: m,
		source: opts.Demand, schedule: sched, trigger: make(chan struct{}, 1),
		overrides: map[string]table.Override{}, deltaJobs: map[string]jobs.Job{},
		unsaved: map[string]table.Assignment{},
	}
	if d.source == nil {
		d.admissions = demand.NewAdmissions(demand.DefaultWindow, opts.Clock)
		d.source = d.admissions
	}
	in, err := loadInputs(&d.opts)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	d.in.Store(in)
	if opts.StateDir != "" {
		if d.store, err = store.New(opts.StateDir); err != nil {
			return nil, fmt.Errorf("dispatcher: %w", err)
		}
		d.restore()
	}
	if d.admissions != nil {
		if d.lastDemand, err = d.admissions.Demand(ctx); err != nil {
			return nil, fmt.Errorf("dispatcher: %w", err)
		}
	}
	var prev *table.Table
	if d.cache.Len() > 0 {
		prev = d.cache.Snapshot()
	}
	if d.eng, err = d.newEngine(in, prev); err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	d.metrics.setTableSize(d.cache.Len())
	return d, nil
}

// restore loads the state file, if there is a good one.
func (d *Dispatcher) restore() {
	st, err := d.store.Load()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.log.Info("No state file: starting without a table", "path", d.store.Path())
		return
	case err != nil && st == nil:
		d.metrics.stateLoadError()
		d.log.Error(err, "Ignoring the state file: the table will be rebuilt", "path", d.store.Path())
		return
	case err != nil:
		d.metrics.stateLoadError()
		d.log.Error(err, "Ignoring the journal: what it recorded since the state file was written is lost", "path", d.store.JournalPath())
	}
	now := d.clock.Now()
	for _, o := range st.Overrides {
		if o.Job != "" && o.Active(now) {
			d.overrides[o.Job] = o
		}
	}
	for _, j := range st.DeltaJobs {
		if j.Name != "" {
			d.deltaJobs[j.Name] = j
		}
	}
	if d.admissions != nil {
		d.admissions.Restore(st.Admissions)
	}
	d.lastDispatch = st.LastDispatch
	if st.Table != nil && len(st.Table.Assignments) > 0 {
		d.cache.Replace(st.Table)
	}
	d.log.Info("Loaded state", "path", d.store.Path(), "jobs", d.cache.Len(), "overrides", len(d.overrides), "deltaJobs", len(d.deltaJobs),
		"journalRows", st.JournalRows, "lastDispatch", st.LastDispatch)
	if st.JournalRows > 0 {
		_ = d.save() // fold the journal into a new state file: the journal to come starts empty
	}
}

// newEngine builds an engine on the inputs, the last good demand, prev as
// the table in force and the active overrides. Callers hold mu or own d.
func (d *Dispatcher) newEngine(in *inputs, prev *table.Table) (*engine.Engine, error) {
	if prev != nil && len(prev.Assignments) == 0 {
		prev = nil // the engine then starts from the dispatcher config's buildFarm
	}
	now := d.clock.Now()
	overrides := make(map[string]table.Override, len(d.overrides))
	for job, o := range d.overrides {
		if o.Active(now) {
			overrides[job] = o
		}
	}
	return engine.New(engine.Input{
		Jobs: in.jobs, Config: in.config, Clusters: in.clusters, Demand: d.lastDemand,
		Previous: prev, Overrides: overrides, Now: now, Options: d.opts.Engine,
	})
}

// Status reports readiness and the last errors.
func (d *Dispatcher) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Status{
		TableSize: d.cache.Len(), LastDispatch: d.lastDispatch,
		LastError: d.lastError, DemandError: d.demandError,
	}
	s.Ready = s.TableSize > 0
	if !s.Ready {
		s.Reason = "no assignment table yet: waiting for the first successful dispatch"
		if d.lastError != "" {
			s.Reason += " (last error: " + d.lastError + ")"
		}
	}
	return s
}

// job returns the engine's view of a job by name: from the job config, from
// an admission, or from its table row. ok is false for a job unknown to all three.
// Callers hold mu.
func (d *Dispatcher) job(name string) (jobs.Job, bool) {
	if j, ok := d.in.Load().byName[name]; ok {
		return *j, true
	}
	if j, ok := d.deltaJobs[name]; ok {
		return j, true
	}
	if a, ok := d.cache.Lookup(name); ok {
		return jobs.Job{Name: name, File: a.File, Agent: jobs.Agent}, true
	}
	return jobs.Job{}, false
}
