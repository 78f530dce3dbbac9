package httpapi

import (
	"net/http"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HealthOptions configure the health handler.
type HealthOptions struct {
	// Status answers /readyz.
	Status StatusReporter
	// Backup, when set, reports the Git backup of the table under "backup"
	// in /readyz's body. It never changes readiness: a failing GitHub must
	// not take the webhook out of service.
	Backup func() any
	// Replication, when set, reports the shared state of a highly available
	// dispatcher (role, leader, publications, API errors) under
	// "replication". It never changes readiness either: a replica whose API
	// server is unreachable keeps admitting from its table.
	Replication func() any
	// Auth, when set, reports the API's token file under "auth" (see
	// TokenFile.Status). It never changes readiness: admission does not
	// depend on it.
	Auth func() any
	// JobConfig, when set, reports the job config read from Git (revision,
	// last fetch and its error) under "jobConfig". It never changes
	// readiness: a failing fetch keeps the last good tree.
	JobConfig func() any
	// Gatherer is served at /metrics; /metrics is not served when nil.
	Gatherer prometheus.Gatherer
}

// RegisterHealth adds /healthz, /readyz and /metrics to mux.
//
// /healthz answers 200 while the process serves HTTP. /readyz answers 200
// only while the dispatcher is ready (it has a table), and 503 otherwise; its
// JSON body carries the reason and the last errors, so a Prometheus outage
// after start shows up there as demandError while readiness stays 200.
func RegisterHealth(mux *http.ServeMux, opts HealthOptions) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := opts.Status.Status()
		code := http.StatusOK
		if !st.Ready {
			code = http.StatusServiceUnavailable
		}
		body := readiness{Status: st}
		if opts.Backup != nil {
			body.Backup = opts.Backup()
		}
		if opts.Replication != nil {
			body.Replication = opts.Replication()
		}
		if opts.Auth != nil {
			body.Auth = opts.Auth()
		}
		if opts.JobConfig != nil {
			body.JobConfig = opts.JobConfig()
		}
		writeJSON(w, code, body)
	})
	if opts.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	}
}

// readiness is /readyz's body: the dispatcher's status, the backup's, the
// replication's and the token file's.
type readiness struct {
	dispatch.Status
	Backup      any `json:"backup,omitempty"`
	Replication any `json:"replication,omitempty"`
	Auth        any `json:"auth,omitempty"`
	JobConfig   any `json:"jobConfig,omitempty"`
}
