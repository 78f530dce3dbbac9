package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/robfig/cron/v3"
	"k8s.io/utils/clock"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Dispatcher keeps the job -> cluster table in force: it answers lookups from
// memory, assigns jobs it has not seen, applies operators' overrides, and
// recomputes the whole table on a schedule, on config change and on demand.
// All methods are safe for concurrent use.
type Dispatcher struct {
	opts          Options
	log           logr.Logger
	clock         clock.PassiveClock
	state         state.Backend // where the state lives: loaded, written, saved and watched
	leading       atomic.Bool   // this replica leads (runs Run and publishes), as the state says
	inputsLoaded  atomic.Bool   // the configs and the job config are in force, and eng is built on them
	loadMu        sync.Mutex    // serializes LoadInputs
	cache         *table.Cache
	metrics       *metrics
	healthMonitor *healthFailover // health-driven failover, a client of d
	source        demand.Source
	admissions    *demand.Admissions // the embedded demand source; nil when Options.Demand is set
	schedule      cron.Schedule
	trigger       chan struct{}
	previews      chan struct{} // one slot per preview computing (maxPreviews)

	in atomic.Pointer[inputs] // the inputs in force; IsManual reads them without locking

	// dispatchMu serializes full dispatches, inputs and demand query
	// included; opMu serializes the operations that rebuild the engine: a
	// dispatch's engine run, Reschedule, DeleteOverride and expiries.
	dispatchMu sync.Mutex
	opMu       sync.Mutex

	mu        sync.Mutex // guards the fields below; Lookup never takes it
	eng       *engine.Engine
	overrides map[string]table.Override
	// drains are the drains and capacity caps, by cluster.
	drains       map[string]table.Drain
	provisional  map[string]*provisionalJob  // jobs first seen at admission that the job config lacks
	unsaved      map[string]table.Assignment // rows set since the state file was written: the journal's
	lastDemand   map[string]float64          // the last good demand; nil before the first
	lastDispatch time.Time
	lastMoves    *int          // moves of the last dispatch of this process
	lastMoveList []engine.Move // its first moves, at most maxStatusMoves
	lastError    string
	demandError  string
	saveError    string               // the last failed save's error, empty once a save works
	recovery     []string             // what the start did about bad state files
	unplaceable  []engine.Unplaceable // the last dispatch's
	refused      map[string]string    // the state's overrides refused (expiry out of bounds): why, by "override/JOB" or "drain/CLUSTER"

	saveMu     sync.Mutex // serializes snapshot + write, so an older snapshot never overwrites a newer one
	timerMu    sync.Mutex
	saveTimer  *time.Timer // a pending coalesced save
	saveFailed atomic.Bool

	loggedService  string // the service clusters last logged, comma-separated
	loggedUnknown  string // the unknown config keys last logged, newline-separated
	loggedFlat     string // the path regexes a flat job config cannot match, last logged
	unknownMetrics *unknownFieldMetrics

	onRun func(ctx context.Context) // tests: called as an engine run starts, with the run's context
}

// New loads and validates the configs and the job config (errors are fatal)
// and the state st keeps (a missing or damaged state is logged, counted and
// ignored; any other error of st is fatal), then watches st for changes
// made elsewhere. The table of the state, if any, is in force at once.
func New(ctx context.Context, opts Options, st state.Backend) (*Dispatcher, error) {
	switch {
	case opts.DispatcherConfigPath == "":
		return nil, errors.New("dispatcher: no dispatcher config path")
	case opts.ClusterConfigPath == "":
		return nil, errors.New("dispatcher: no cluster config path")
	case opts.JobConfigDir == "":
		return nil, errors.New("dispatcher: no job config dir")
	case st == nil:
		return nil, errors.New("dispatcher: no state backend")
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
	if opts.Health.enabled() {
		if err := opts.Health.Thresholds.Validate(); err != nil {
			return nil, fmt.Errorf("dispatcher: %w", err)
		}
		if opts.Health.DrainTTL > opts.MaxDrainTTL {
			return nil, fmt.Errorf("dispatcher: health drain TTL %s is over the maximum drain TTL %s", opts.Health.DrainTTL, opts.MaxDrainTTL)
		}
	}
	for name, ttl := range map[string]time.Duration{"health drain TTL": opts.Health.DrainTTL, "maximum drain TTL": opts.MaxDrainTTL, "maximum override TTL": opts.MaxOverrideTTL} {
		if ttl < MinTTL {
			return nil, fmt.Errorf("dispatcher: %s %s is under the minimum TTL %s", name, ttl, MinTTL)
		}
	}
	hm, err := newHealthMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	um, err := newUnknownFieldMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{
		opts: opts, log: opts.Logger, clock: opts.Clock, cache: table.NewCache(), metrics: m,
		source: opts.Demand, schedule: sched, trigger: make(chan struct{}, 1), previews: make(chan struct{}, maxPreviews),
		overrides: map[string]table.Override{}, drains: map[string]table.Drain{}, provisional: map[string]*provisionalJob{},
		refused: map[string]string{},
		unsaved: map[string]table.Assignment{}, unknownMetrics: um, state: st,
	}
	d.admissions = opts.Admissions
	d.healthMonitor = &healthFailover{core: d, opts: opts.Health, clock: opts.Clock, log: opts.Logger, metrics: hm}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newStateCollector(d)); err != nil {
			return nil, fmt.Errorf("dispatcher: registering the state metrics: %w", err)
		}
	}
	if d.source == nil {
		if d.admissions == nil {
			d.admissions = demand.NewAdmissions(demand.DefaultWindow, opts.Clock)
		}
		d.source = d.admissions
	}
	loaded, err := d.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	deferred := opts.DeferInputs && loaded != nil && loaded.Table != nil && len(loaded.Table.Assignments) > 0
	in := emptyInputs()
	if !deferred {
		if in, err = loadInputs(&d.opts); err != nil {
			return nil, fmt.Errorf("dispatcher: %w", err)
		}
	}
	d.in.Store(in)
	if loaded != nil {
		d.restore(loaded)
	}
	if d.admissions != nil && d.source != nil {
		if d.lastDemand, err = d.source.Demand(ctx); err != nil {
			return nil, fmt.Errorf("dispatcher: %w", err)
		}
	}
	d.metrics.setTableSize(d.cache.Len())
	d.metrics.setProvisional(len(d.provisional))
	if deferred {
		d.log.Info("Serving the shared table; the configs and the job config load in the background", "jobs", d.cache.Len())
	} else if err := d.putInputsInForce(in); err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	st.Watch(stateWatcher{d})
	return d, nil
}

// emptyInputs are the inputs in force before the configs and the job
// config are loaded (Options.DeferInputs): no job, no manual cluster.
func emptyInputs() *inputs {
	return &inputs{byName: map[string]*jobs.Job{}, manual: map[string]bool{}}
}

// LoadInputs loads the configs and the job config when New deferred them
// (Options.DeferInputs), builds the engine on the table in force and
// applies the overrides it does not follow yet. It does nothing once they
// are loaded; Run calls it first. A config error is returned (and shown in
// Status) and the table in force stays.
func (d *Dispatcher) LoadInputs(ctx context.Context) error {
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	if d.inputsLoaded.Load() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	start := d.clock.Now()
	in, err := loadInputs(&d.opts)
	if err == nil {
		err = d.putInputsInForce(in)
	}
	if err != nil {
		err = fmt.Errorf("loading the configs and the job config: %w", err)
		d.mu.Lock()
		d.lastError = err.Error()
		d.mu.Unlock()
		d.log.Error(err, "The shared table stays in force; jobs it lacks are admitted as created")
		return err
	}
	d.log.Info("Loaded the configs and the job config", "jobs", len(in.jobs), "took", d.clock.Since(start))
	return nil
}

// LoadInputsRetrying is LoadInputs, tried again with backoff (1 s
// doubling, at most a minute) until it works or ctx is done, whose error it
// then returns. A broken config at start leaves the shared table serving.
func (d *Dispatcher) LoadInputsRetrying(ctx context.Context) error {
	for wait := time.Second; d.LoadInputs(ctx) != nil; wait = min(2*wait, time.Minute) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return nil
}

// putInputsInForce builds the engine on in and the table in force, puts
// both in force and applies the overrides the table does not follow.
func (d *Dispatcher) putInputsInForce(in *inputs) error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	if d.inputsLoaded.Load() { // loaded meanwhile (a dispatch)
		d.mu.Unlock()
		return nil
	}
	var prev *table.Table
	if d.cache.Len() > 0 {
		prev = d.cache.Snapshot()
	}
	eng, err := d.newEngine(in, prev)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	d.eng = eng
	d.in.Store(in)
	d.inputsLoaded.Store(true)
	d.noteServiceClusters(d.eng)
	d.noteUnknownFields(in)
	d.noteFlatPaths(in)
	if prev != nil {
		// A saved or shared table may predate the configs: a cluster
		// blocked, or a drain set, while it was not running.
		d.placeForbiddenLocked("start", nil)
		if len(d.unsaved) > 0 {
			d.saveSoon()
		}
	}
	// The unplaceable jobs of the table in force, as a dispatch would
	// report them: /readyz, the status page and the metrics say so from
	// the start, not only after the next dispatch.
	d.unplaceable = d.eng.Unplaceable()
	d.mu.Unlock()
	return d.applyRestoredOverrides()
}

// needInputs wraps ErrNotReady while the job config is still loading (Options.DeferInputs).
func (d *Dispatcher) needInputs(what string) error {
	if d.inputsLoaded.Load() {
		return nil
	}
	return fmt.Errorf("%s: the configs and the job config are still loading: %w", what, ErrNotReady)
}

// applyRestoredOverrides places anew the jobs whose row does not follow
// their override (another cluster, or the same one by another rule):
// overrides are saved apart from the table, so a restart after a
// reschedule whose rows were not saved, or from the previous generation of
// the state file, still honours every override.
func (d *Dispatcher) applyRestoredOverrides() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var stale []string
	for job, o := range d.overrides {
		if a, ok := d.cache.Lookup(job); ok && (a.Cluster != o.Cluster || a.Reason != table.ReasonOverride) {
			stale = append(stale, job)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	slices.Sort(stale)
	d.log.Info("Re-applying overrides the saved table does not follow", "jobs", len(stale))
	_, err := d.replace("restore", map[string]bool{}, stale...)
	return err
}

// load loads the state to start from: nil when there is none. A damaged
// state gives what could be trusted, which Status reports; only an error
// of another kind is returned.
func (d *Dispatcher) load(ctx context.Context) (*state.State, error) {
	st, err := d.state.Load(ctx)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.log.Info("No state file: starting without a table", "path", d.state.Where())
		return nil, nil
	case errors.Is(err, state.ErrDamaged) && st == nil:
		d.metrics.stateLoadError()
		d.recovery = []string{err.Error()}
		d.log.Error(err, "Ignoring the state dir: the table will be rebuilt", "path", d.state.Where())
		return nil, nil
	case errors.Is(err, state.ErrDamaged):
		d.metrics.stateLoadError()
		d.log.Error(err, "Some of the state could not be trusted and was left out", "path", d.state.Where())
	case err != nil:
		return nil, fmt.Errorf("loading the state from %s: %w", d.state.Where(), err)
	}
	return st, nil
}

// restore puts the state loaded in force; a journal it read, or a
// recovery, is folded into a new full save (the journal to come starts empty).
func (d *Dispatcher) restore(st *state.State) {
	if len(st.Recovered) > 0 {
		d.recovery = st.Recovered
		d.metrics.stateRecovered()
		for _, note := range st.Recovered {
			d.log.Info("State recovered: "+note, "path", d.state.Where())
		}
	}
	d.restoreFrom(st, d.state.Where())
	if st.JournalRows > 0 || len(st.Recovered) > 0 {
		_ = d.save()
	}
}

// restoreFrom puts st in force: its overrides, drains, provisional jobs,
// admission counts, demand and table; from names where it comes from.
func (d *Dispatcher) restoreFrom(st *state.State, from string) {
	now := d.clock.Now()
	refused := map[string]error{}
	for _, o := range st.Overrides {
		if o.Job == "" {
			continue
		}
		o, err := d.boundedOverride(o, now)
		if err != nil {
			refused["override/"+o.Job] = fmt.Errorf("%s: %w", from, err)
		} else if o.Active(now) {
			d.overrides[o.Job] = o
		}
	}
	d.noteRefused("override/", refused)
	refused = map[string]error{}
	for _, o := range st.Drains {
		if o.Cluster == "" {
			continue
		}
		if err := d.checkDrain(o, now); err != nil {
			refused["drain/"+o.Cluster] = fmt.Errorf("%s: %w", from, err)
		} else if o.Active(now) {
			d.drains[o.Cluster] = o
		}
	}
	d.noteRefused("drain/", refused)
	for _, p := range st.Provisional {
		if p.Job.Name != "" {
			d.provisional[p.Job.Name] = &provisionalJob{job: p.Job, lastAdmitted: p.LastAdmitted, admissions: max(p.Admissions, 1)}
		}
	}
	if d.admissions != nil {
		d.admissions.Restore(st.Admissions)
	}
	if st.Demand != nil && len(st.Demand.Jobs) > 0 {
		d.lastDemand = st.Demand.Jobs
	}
	d.lastDispatch = st.LastDispatch
	if st.Table != nil && len(st.Table.Assignments) > 0 {
		d.cache.Replace(st.Table)
	}
	d.log.Info("Loaded state", "from", from, "jobs", d.cache.Len(), "overrides", len(d.overrides), "provisional", len(d.provisional),
		"journalRows", st.JournalRows, "lastDispatch", st.LastDispatch, "demandJobs", len(d.lastDemand))
}

// noteServiceClusters logs the service clusters of eng when they differ
// from the ones logged last: once at start and once per change.
func (d *Dispatcher) noteServiceClusters(eng *engine.Engine) {
	names := strings.Join(eng.ServiceClusters(), ",")
	if names == d.loggedService {
		return
	}
	d.loggedService = names
	d.log.Info("Service clusters: named by the dispatcher config or a job's cluster label, not in the cluster config; they run exactly the jobs that name them and are never balanced onto", "clusters", names)
}

// newEngine builds an engine on the inputs, the last good demand, prev as
// the table in force and the active overrides. Callers hold mu or own d.
func (d *Dispatcher) newEngine(in *inputs, prev *table.Table) (*engine.Engine, error) {
	return d.newEngineWith(in, prev, d.drains)
}

// newEngineWith is newEngine with the given cluster overrides. Callers hold mu.
func (d *Dispatcher) newEngineWith(in *inputs, prev *table.Table, drains map[string]table.Drain) (*engine.Engine, error) {
	return d.newEngineOn(in, d.stateLocked(drains), prev)
}

// Status reports readiness and the last errors.
func (d *Dispatcher) Status() Status {
	_, healthError := d.healthMonitor.get()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Status{
		TableSize: d.cache.Len(), LastDispatch: d.lastDispatch, LastDispatchMoves: d.lastMoves, LastMoves: slices.Clone(d.lastMoveList),
		LastError: d.lastError, DemandError: d.demandError, HealthError: healthError, SaveError: d.saveError,
		Recovery: slices.Clone(d.recovery), Provisional: len(d.provisional), Loading: !d.inputsLoaded.Load(),
		Unplaceable: len(d.unplaceable), UnplaceableJobs: slices.Clone(d.unplaceable[:min(len(d.unplaceable), maxStatusUnplaceable)]),
	}
	if in := d.in.Load(); in != nil {
		s.UnknownFields = config.UnknownFields(in.config, in.clusters)
		s.UnmatchablePaths = slices.Clone(in.flatPaths)
	}
	for _, key := range slices.Sorted(maps.Keys(d.refused)) {
		s.RefusedOverrides = append(s.RefusedOverrides, d.refused[key])
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

// SearchJobs returns the jobs of the table whose name contains query (any
// case): those that start with it first, then the others, each part sorted,
// at most limit of them; total counts them all.
func (d *Dispatcher) SearchJobs(query string, limit int) (matches []string, total int) {
	q := strings.ToLower(query)
	if q == "" {
		return nil, 0
	}
	all := d.cache.Jobs(func(job string) bool { return strings.Contains(strings.ToLower(job), q) })
	slices.SortFunc(all, func(a, b string) int {
		pa, pb := strings.HasPrefix(strings.ToLower(a), q), strings.HasPrefix(strings.ToLower(b), q)
		switch {
		case pa && !pb:
			return -1
		case pb && !pa:
			return 1
		}
		return strings.Compare(a, b)
	})
	return all[:min(len(all), max(limit, 0))], len(all)
}

// job returns the engine's view of a job by name: from the job config, from
// an admission, or from its table row. ok is false for a job unknown to all three.
// Callers hold mu.
func (d *Dispatcher) job(name string) (jobs.Job, bool) {
	if j, ok := d.in.Load().byName[name]; ok {
		return *j, true
	}
	if p, ok := d.provisional[name]; ok {
		return p.job, true
	}
	if a, ok := d.cache.Lookup(name); ok {
		return jobs.Job{Name: name, File: a.File, Agent: jobs.Agent}, true
	}
	return jobs.Job{}, false
}
