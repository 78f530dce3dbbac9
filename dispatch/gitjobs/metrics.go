package gitjobs

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const metricPrefix = "prowjob_dispatcher_job_config_git_"

// metrics are the Git job config's collectors. A nil one records nothing.
type metrics struct {
	fetches     *prometheus.CounterVec
	failing     prometheus.Gauge
	lastSuccess prometheus.Gauge
	lastChange  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "fetches_total", Help: "Fetches of the job config from Git, by result (changed, unchanged, error).",
		}, []string{"result"}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "failing_fetches", Help: "Fetches of the job config from Git failed in a row (the last good tree stays in force).",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "last_fetch_timestamp_seconds", Help: "Unix time of the last successful fetch of the job config from Git.",
		}),
		lastChange: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "last_change_timestamp_seconds", Help: "Unix time a new revision of the job config from Git was last put in force.",
		}),
	}
	for _, c := range []prometheus.Collector{m.fetches, m.failing, m.lastSuccess, m.lastChange} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering git job config metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) fetched(st Status, changed bool, err error) {
	if m == nil {
		return
	}
	m.failing.Set(float64(st.Failures))
	switch {
	case err != nil:
		m.fetches.WithLabelValues("error").Inc()
		return
	case changed:
		m.fetches.WithLabelValues("changed").Inc()
		m.lastChange.Set(float64(st.LastChange.Unix()))
	default:
		m.fetches.WithLabelValues("unchanged").Inc()
	}
	m.lastSuccess.Set(float64(st.LastFetch.Unix()))
}
