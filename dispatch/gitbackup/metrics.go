package gitbackup

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const metricPrefix = "prowjob_dispatcher_backup_"

// Results of one backup run, the "result" label of
// prowjob_dispatcher_backup_runs_total and Status.LastResult.
const (
	// ResultPushed: the head branch was pushed and the pull request opened or updated.
	ResultPushed = "pushed"
	// ResultUnchanged: the base branch already has the live buildFarm; nothing was pushed.
	ResultUnchanged = "unchanged"
	// ResultDryRun: the diff was printed; nothing was pushed or opened.
	ResultDryRun = "dry_run"
	// ResultError: git or GitHub failed; the run is retried.
	ResultError = "error"
)

// metrics are a Backup's collectors. A nil *metrics records nothing.
type metrics struct {
	runs        *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	pullRequest prometheus.Gauge
	failures    prometheus.Gauge
	pending     prometheus.Gauge
}

// newMetrics creates the collectors and registers them with reg; nil reg -> nil metrics.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "runs_total", Help: "Git backup runs of the buildFarm by result (pushed, unchanged, dry_run, error).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "last_success_timestamp_seconds", Help: "When a Git backup run last succeeded (pushed, unchanged or dry_run), Unix seconds.",
		}),
		pullRequest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "pull_request", Help: "Number of the backup pull request last opened or updated (0: none yet).",
		}),
		failures: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "consecutive_failures", Help: "Git backup runs failed in a row since the last success.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "pending", Help: "1 while a dispatch that moved jobs waits to be backed up (interval, retry backoff), else 0.",
		}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.lastSuccess, m.pullRequest, m.failures, m.pending} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering Git backup metrics: %w", err)
		}
	}
	for _, r := range []string{ResultPushed, ResultUnchanged, ResultDryRun, ResultError} {
		m.runs.WithLabelValues(r)
	}
	return m, nil
}

// ran records one run.
func (m *metrics) ran(result string, at time.Time, pr, failures int) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(result).Inc()
	if result != ResultError {
		m.lastSuccess.Set(float64(at.Unix()))
	}
	if pr > 0 {
		m.pullRequest.Set(float64(pr))
	}
	m.failures.Set(float64(failures))
}

// setPending records whether a backup waits.
func (m *metrics) setPending(p bool) {
	if m == nil {
		return
	}
	v := 0.0
	if p {
		v = 1
	}
	m.pending.Set(v)
}
