package dispatch

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
)

// maxUnknownFieldSeries bounds the series of
// prowjob_dispatcher_config_unknown_fields: a file full of unknown keys
// shows the first ones and the count of all.
const maxUnknownFieldSeries = 50

// unknownFieldMetrics show the keys of the configs in force that this
// version does not know and ignores. A nil one records nothing.
type unknownFieldMetrics struct {
	fields *prometheus.GaugeVec
	count  prometheus.Gauge
}

func newUnknownFieldMetrics(reg prometheus.Registerer) (*unknownFieldMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &unknownFieldMetrics{
		fields: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: metricPrefix + "config_unknown_field",
			Help: fmt.Sprintf("1 for each key of the configs in force that this version does not know and ignores (the first %d), by file and field path.", maxUnknownFieldSeries),
		}, []string{"file", "field"}),
		count: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "config_unknown_fields", Help: "Keys of the configs in force that this version does not know and ignores.",
		}),
	}
	for _, c := range []prometheus.Collector{m.fields, m.count} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering config metrics: %w", err)
		}
	}
	return m, nil
}

func (m *unknownFieldMetrics) set(d *config.DispatcherConfig, c *config.Clusters) {
	if m == nil {
		return
	}
	m.fields.Reset()
	n := 0
	add := func(file string, fields []string) {
		for _, f := range fields {
			if n < maxUnknownFieldSeries {
				m.fields.WithLabelValues(file, f).Set(1)
			}
			n++
		}
	}
	if d != nil {
		add(d.File, d.Unknown)
	}
	if c != nil {
		add(c.File, c.Unknown)
	}
	m.count.Set(float64(n))
}

// noteUnknownFields logs and counts the unknown keys of in's configs when
// they differ from the ones noted last: once at start and once per change.
// Callers hold mu or own d.
func (d *Dispatcher) noteUnknownFields(in *inputs) {
	fields := config.UnknownFields(in.config, in.clusters)
	joined := strings.Join(fields, "\n")
	if joined == d.loggedUnknown {
		return
	}
	d.loggedUnknown = joined
	d.unknownMetrics.set(in.config, in.clusters)
	if len(fields) > 0 {
		d.log.Info("Ignoring config keys this version does not know (plan --strict refuses them)", "fields", fields)
	}
}

// noteFlatPaths logs the group path regexes a flat job config can never
// match, when they differ from the ones logged last. Callers hold mu or own d.
func (d *Dispatcher) noteFlatPaths(in *inputs) {
	joined := strings.Join(in.flatPaths, "\n")
	if joined == d.loggedFlat {
		return
	}
	d.loggedFlat = joined
	for _, p := range in.flatPaths {
		d.log.Info("Group path regex cannot match: " + p)
	}
}
