package kubestate

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// metrics are the backend's Prometheus metrics.
type metrics struct {
	leader          prometheus.Gauge
	term            prometheus.Gauge
	writes          *prometheus.CounterVec
	publications    *prometheus.CounterVec
	pending         prometheus.Gauge
	fenced          prometheus.Counter
	setsRefused     prometheus.Counter
	rowsRefused     prometheus.Gauge
	rowsUnpublished prometheus.Gauge
	lag             prometheus.GaugeFunc
	replicasIgnored prometheus.Gauge
	objectsRefused  *prometheus.GaugeVec
	serverFence     *prometheus.GaugeVec
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

// newMetrics makes the metrics; lag gives the publication lag (Backend.publicationLag).
func newMetrics(reg prometheus.Registerer, lag func() time.Duration) (*metrics, error) {
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
		term: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "prowjob_dispatcher_leader_term",
			Help: "The term (the Lease's leaseTransitions) this replica last led in.",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prowjob_dispatcher_leader_writes_fenced_total",
			Help: "Leader writes not made because this replica may no longer lead (its Lease renewal overdue, or a newer term wrote).",
		}),
		setsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prowjob_dispatcher_table_shard_sets_refused_total",
			Help: "Table shard sets in the API this replica refused to adopt (incomplete, another shard count, mixed or older terms, a term the Lease never had).",
		}),
		rowsRefused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "prowjob_dispatcher_table_rows_refused",
			Help: "Rows of the adopted table left out because the cluster config or the rules refuse them (unknown, blocked or incapable cluster).",
		}),
		rowsUnpublished: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "prowjob_dispatcher_table_rows_unpublished",
			Help: "Rows of the leader's table its last publication left out because their shard was full.",
		}),
		lag: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "prowjob_dispatcher_table_publication_lag_seconds",
			Help: "How long the table this replica serves has been behind: the leader's publication failing, or this replica refusing the shards in the API. 0 when current.",
		}, func() float64 { return lag().Seconds() }),
		objectsRefused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "prowjob_dispatcher_objects_refused",
			Help: "Objects of the shared state left out because they fail validation (unknown cluster, expiry too far, fields too long), by kind.",
		}, []string{"kind"}),
		serverFence: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "prowjob_dispatcher_server_fence",
			Help: "1 for the state of the API server's fence on leader writes (the ValidatingAdmissionPolicy " + FencePolicy + ") this replica last found when it led: on, missing or unknown. No series before it first led.",
		}, []string{"state"}),
		replicasIgnored: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "prowjob_dispatcher_replicas_ignored",
			Help: "DispatcherReplica records whose admission counts were left out of the demand (implausible or unreadable).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.leader, m.term, m.writes, m.publications, m.pending, m.fenced, m.setsRefused,
		m.rowsRefused, m.rowsUnpublished, m.lag, m.replicasIgnored, m.objectsRefused, m.serverFence} {
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
