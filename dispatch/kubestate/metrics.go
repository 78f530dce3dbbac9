package kubestate

import (
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// metrics are the backend's Prometheus metrics.
type metrics struct {
	leader       prometheus.Gauge
	writes       *prometheus.CounterVec
	publications *prometheus.CounterVec
	pending      prometheus.Gauge
}

// The results of kube_writes_total and table_publications_total.
const (
	resultOK        = "ok"
	resultError     = "error"
	resultConflict  = "conflict"
	resultExists    = "exists"
	resultNotFound  = "not_found"
	resultUnchanged = "unchanged"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "prowjob_dispatcher_leader",
			Help: "1 while this replica leads (holds the Lease), else 0.",
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prowjob_dispatcher_kube_writes_total",
			Help: "Writes of the shared state to the Kubernetes API, by kind of object and result (ok, conflict, exists, not_found, error).",
		}, []string{"kind", "result"}),
		publications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prowjob_dispatcher_table_publications_total",
			Help: "Table publications of the leader, by result (ok: shards written, unchanged: none needed, error).",
		}, []string{"result"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "prowjob_dispatcher_pending_claims",
			Help: "Rows placed at admission whose JobPlacement could not be written yet and is being retried.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.leader, m.writes, m.publications, m.pending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// writeResult is an API call's result label.
func writeResult(err error) string {
	switch {
	case err == nil:
		return resultOK
	case apierrors.IsConflict(err):
		return resultConflict
	case apierrors.IsAlreadyExists(err):
		return resultExists
	case apierrors.IsNotFound(err):
		return resultNotFound
	}
	return resultError
}
