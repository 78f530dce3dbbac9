package dispatch

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
)

const metricPrefix = "prowjob_dispatcher_"

// Dispatch results, the "result" label of prowjob_dispatcher_dispatch_runs_total.
const (
	resultSuccess      = "success"
	resultConfigError  = "config_error"
	resultEngineError  = "engine_error"
	resultRefused      = "refused" // the new table would leave no usable cluster or no job
	resultPersistError = "persist_error"
)

// metrics are the Dispatcher's collectors. A nil *metrics records nothing.
type metrics struct {
	runs          *prometheus.CounterVec
	duration      prometheus.Histogram
	moved         *prometheus.CounterVec
	demandErrors  prometheus.Counter
	tableSize     prometheus.Gauge
	stateLoadErrs prometheus.Counter
	stateSaveErrs prometheus.Counter
	deltas        prometheus.Counter
	provisional   prometheus.Gauge
	overLimit     prometheus.Counter
	recovered     prometheus.Gauge
	demandRefused *prometheus.CounterVec
	unplaceableAd prometheus.Counter
	notRecordedAd *prometheus.CounterVec
	engineRuns    *prometheus.CounterVec
}

// The reasons of prowjob_dispatcher_admissions_not_recorded_total.
const notRecordedLongName = "job_name_too_long"

// newMetrics creates the collectors and registers them with reg; nil reg -> nil metrics.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "dispatch_runs_total", Help: "Full dispatch runs by result.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: metricPrefix + "dispatch_duration_seconds", Help: "Duration of full dispatch runs, demand query included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}),
		moved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "jobs_moved_total", Help: "Jobs that changed cluster, by the rule that placed them.",
		}, []string{"reason"}),
		demandErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricPrefix + "demand_query_errors_total", Help: "Failed demand queries (the last good demand was used).",
		}),
		tableSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "table_size", Help: "Rows of the assignment table in force.",
		}),
		stateLoadErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricPrefix + "state_load_errors_total", Help: "State files that could not be loaded (corrupt or unreadable) and were ignored.",
		}),
		stateSaveErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricPrefix + "state_save_errors_total", Help: "Failed state file writes.",
		}),
		deltas: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricPrefix + "delta_assignments_total", Help: "Jobs unknown to the table assigned at admission.",
		}),
		provisional: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "provisional_jobs", Help: "Rows of jobs first seen at admission that the job config lacks.",
		}),
		overLimit: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricPrefix + "provisional_over_limit_total", Help: "Admissions of new jobs placed but not recorded because the provisional jobs reached their limit.",
		}),
		recovered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "state_recovered", Help: "1 when the start found a corrupt state file, moved it aside and used the previous generation (or none).",
		}),
		demandRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "demand_refused_total", Help: "Demand answers refused as implausible (the last good demand was kept), by reason.",
		}, []string{"reason"}),
		unplaceableAd: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricPrefix + "unplaceable_admissions_total", Help: "Admissions of jobs no eligible cluster can run: the ProwJob was left on the cluster it was created with.",
		}),
		notRecordedAd: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "admissions_not_recorded_total",
			Help: "Admissions left as created and recorded nowhere (no row, no count), by reason (job_name_too_long).",
		}, []string{"reason"}),
		engineRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "engine_runs_total",
			Help: "Engine runs by the operation that asked for them: full runs (dispatch, drain, cap, health-drain, undrain, health-undrain, expiry, shared-drain, what-if, drain-preview) and placement runs (reschedule, override-delete, override-expiry, shared-overrides, restore, start, follow-drain). Each operation costs one.",
		}, []string{"operation"}),
	}
	for _, c := range []prometheus.Collector{
		m.runs, m.duration, m.moved, m.demandErrors,
		m.tableSize, m.stateLoadErrs, m.stateSaveErrs, m.deltas,
		m.provisional, m.overLimit, m.recovered, m.demandRefused, m.unplaceableAd, m.notRecordedAd,
		m.engineRuns,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering dispatcher metrics: %w", err)
		}
	}
	// Every result from 0, so that increase() sees the first of each.
	for _, r := range []string{resultSuccess, resultConfigError, resultEngineError, resultRefused, resultPersistError} {
		m.runs.WithLabelValues(r)
	}
	m.notRecordedAd.WithLabelValues(notRecordedLongName)
	for _, r := range []string{"invalid_value", "empty", "drop"} { // refusalReason's
		m.demandRefused.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) run(result string, took time.Duration) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(result).Inc()
	m.duration.Observe(took.Seconds())
}

// dispatched records a successful dispatch's moves. The loads, the
// unplaceable jobs and the dispatch time are read at each scrape
// (stateCollector).
func (m *metrics) dispatched(r *engine.Report) {
	if m == nil {
		return
	}
	for reason, n := range r.MovedByReason {
		m.moved.WithLabelValues(string(reason)).Add(float64(n))
	}
}

func (m *metrics) setTableSize(n int) {
	if m != nil {
		m.tableSize.Set(float64(n))
	}
}

func (m *metrics) demandError() {
	if m != nil {
		m.demandErrors.Inc()
	}
}

func (m *metrics) stateLoadError() {
	if m != nil {
		m.stateLoadErrs.Inc()
	}
}

func (m *metrics) stateSaveError() {
	if m != nil {
		m.stateSaveErrs.Inc()
	}
}

func (m *metrics) delta() {
	if m != nil {
		m.deltas.Inc()
	}
}

func (m *metrics) setProvisional(n int) {
	if m != nil {
		m.provisional.Set(float64(n))
	}
}

func (m *metrics) notRecorded(reason string) {
	if m != nil {
		m.notRecordedAd.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) provisionalOverLimit() {
	if m != nil {
		m.overLimit.Inc()
	}
}

func (m *metrics) stateRecovered() {
	if m != nil {
		m.recovered.Set(1)
	}
}

func (m *metrics) demandRefusedFor(reason string) {
	if m != nil {
		m.demandRefused.WithLabelValues(reason).Inc()
	}
}

// engineRun counts one engine run for operation.
func (m *metrics) engineRun(operation string) {
	if m != nil {
		m.engineRuns.WithLabelValues(operation).Inc()
	}
}

func (m *metrics) unplaceableAdmission() {
	if m != nil {
		m.unplaceableAd.Inc()
	}
}
