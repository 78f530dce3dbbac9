package admission

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome is what admission did with one AdmissionReview. It is the
// "outcome" label of prowjob_dispatcher_admissions_total.
type Outcome string

// The admission outcomes. Every one but OutcomePatched allows the ProwJob unchanged.
const (
	OutcomePatched       Outcome = "patched"        // spec.cluster set to the assigned cluster
	OutcomeUnchanged     Outcome = "unchanged"      // spec.cluster was already the assigned cluster
	OutcomeDryRun        Outcome = "dry_run"        // a dry-run request: answered, nothing recorded
	OutcomeManual        Outcome = "manual"         // spec.cluster is a manual cluster, kept
	OutcomeNotKubernetes Outcome = "not_kubernetes" // agent is not kubernetes
	OutcomeSkipped       Outcome = "skipped"        // carries a skip label (a rehearsal): left as created
	OutcomeUnplaceable   Outcome = "unplaceable"    // no usable cluster meets its requirements: left as created
	OutcomeNotCreate     Outcome = "not_create"     // not a CREATE
	OutcomeWrongKind     Outcome = "wrong_kind"     // not a prow.k8s.io/v1 ProwJob
	OutcomeUndecodable   Outcome = "undecodable"    // empty or undecodable object, or no spec.job
	OutcomeNotReady      Outcome = "not_ready"      // the dispatcher has no table yet
	OutcomeError         Outcome = "error"          // Assign failed
)

// Metrics are the webhook's Prometheus metrics.
type Metrics struct {
	admissions *prometheus.CounterVec
	latency    prometheus.Histogram
}

// NewMetrics creates the webhook's metrics and registers them with reg
// (nothing is registered when reg is nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prowjob_dispatcher_admissions_total",
			Help: "ProwJob admission requests by outcome and by the cluster the ProwJob was left on (empty when not placed).",
		}, []string{"outcome", "cluster"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "prowjob_dispatcher_admission_duration_seconds",
			Help:    "Time spent handling one ProwJob admission request, decoding and patching included.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.admissions, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering webhook metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) observe(outcome Outcome, cluster string, seconds float64) {
	m.admissions.WithLabelValues(string(outcome), cluster).Inc()
	m.latency.Observe(seconds)
}
