package health

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"k8s.io/utils/clock"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/internal/promquery"
)

// The default queries, on the metrics of Prow's own controllers (sigs.k8s.io/prow
// pkg/kube/metrics.go: prowjob_state_transitions and prowjobs, both labelled
// by cluster). {{.Window}} is the window as a Prometheus duration ("30m").
const (
	// DefaultErrorsQuery counts the ProwJobs that ended in error, by cluster.
	DefaultErrorsQuery = `sum by (cluster) (increase(prowjob_state_transitions{state="error"}[{{.Window}}]))`
	// DefaultFinishedQuery counts the ProwJobs that finished, by cluster.
	DefaultFinishedQuery = `sum by (cluster) (increase(prowjob_state_transitions{state=~"success|failure|error|aborted"}[{{.Window}}]))`
	// DefaultPendingQuery estimates, by Little's law, how long a ProwJob
	// waits between its creation and its pod (ProwJobs triggered now over
	// the rate at which they start), in seconds.
	DefaultPendingQuery = `sum by (cluster) (prowjobs{state="triggered"}) / sum by (cluster) (rate(prowjob_state_transitions{state="pending"}[{{.Window}}]))`
	// DefaultWindow is the window of the default queries.
	DefaultWindow = 30 * time.Minute
	// DefaultTimeout bounds one Samples call.
	DefaultTimeout = 30 * time.Second
	// ClusterLabel names the cluster in query results.
	ClusterLabel = "cluster"
)

// Source gives the clusters' samples.
type Source interface {
	Samples(ctx context.Context) (map[string]Sample, error)
}

// PrometheusOptions configure a Prometheus health source. Zero values take the defaults.
type PrometheusOptions struct {
	// URL is Prometheus' base URL. Required.
	URL string
	// ErrorsQuery and FinishedQuery count, by cluster, the ProwJobs that
	// ended in error and that finished; text/templates with {{.Window}}.
	ErrorsQuery, FinishedQuery string
	// PendingQuery gives the pending time in seconds by cluster; "-" skips it.
	PendingQuery string
	// Window is substituted for {{.Window}}; default DefaultWindow.
	Window time.Duration
	// Timeout bounds one Samples call; default DefaultTimeout.
	Timeout time.Duration
	// RoundTripper carries the requests; default promapi.DefaultRoundTripper.
	RoundTripper http.RoundTripper
	// Logger gets the queries' warnings.
	Logger logr.Logger
	// Clock stamps the queries; default the real clock.
	Clock clock.PassiveClock
}

// Prometheus is a health source that queries Prometheus.
type Prometheus struct {
	api                          promv1.API
	errorsQ, finishedQ, pendingQ string
	timeout                      time.Duration
	log                          logr.Logger
	clock                        clock.PassiveClock
}

// NewPrometheus validates the options and builds the client; it does not contact Prometheus.
func NewPrometheus(opts PrometheusOptions) (*Prometheus, error) {
	if opts.URL == "" {
		return nil, errors.New("prometheus health: URL is required")
	}
	if opts.ErrorsQuery == "" {
		opts.ErrorsQuery = DefaultErrorsQuery
	}
	if opts.FinishedQuery == "" {
		opts.FinishedQuery = DefaultFinishedQuery
	}
	if opts.PendingQuery == "" {
		opts.PendingQuery = DefaultPendingQuery
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	client, err := promapi.NewClient(promapi.Config{Address: opts.URL, RoundTripper: opts.RoundTripper})
	if err != nil {
		return nil, fmt.Errorf("prometheus health: URL %q: %w", opts.URL, err)
	}
	window := opts.Window
	p := &Prometheus{api: promv1.NewAPI(client), timeout: opts.Timeout, log: opts.Logger, clock: opts.Clock}
	for _, q := range []struct {
		what, text string
		to         *string
	}{{"errors query", opts.ErrorsQuery, &p.errorsQ}, {"finished query", opts.FinishedQuery, &p.finishedQ}, {"pending query", opts.PendingQuery, &p.pendingQ}} {
		if q.text == "-" {
			continue
		}
		if *q.to, err = render(q.what, q.text, window); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func render(what, text string, window time.Duration) (string, error) {
	q, err := promquery.Render(text, window)
	if err != nil {
		return "", fmt.Errorf("prometheus health: %s %q: %w", what, text, err)
	}
	return q, nil
}

// Queries are the rendered queries: errors, finished, pending (empty when skipped).
func (p *Prometheus) Queries() (errorsQ, finishedQ, pendingQ string) {
	return p.errorsQ, p.finishedQ, p.pendingQ
}

// Samples runs the queries and gives a sample for each cluster the
// finished query names: its error share (errors over finished; a cluster
// the errors query does not name has none) and its pending time (NaN when
// the pending query is skipped or does not name the cluster). Any failing
// query fails the whole call: a health judgement is never made on part of the data.
func (p *Prometheus) Samples(ctx context.Context) (map[string]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	now := p.clock.Now()
	finished, err := p.vector(ctx, p.finishedQ, now, false)
	if err != nil {
		return nil, err
	}
	errs, err := p.vector(ctx, p.errorsQ, now, false)
	if err != nil {
		return nil, err
	}
	var pending map[string]float64
	if p.pendingQ != "" {
		if pending, err = p.vector(ctx, p.pendingQ, now, true); err != nil {
			return nil, err
		}
	}
	out := make(map[string]Sample, len(finished))
	for c, n := range finished {
		s := Sample{Samples: n, PendingSeconds: math.NaN()}
		if n > 0 {
			s.ErrorShare = min(errs[c]/n, 1)
		}
		if v, ok := pending[c]; ok {
			s.PendingSeconds = v
		}
		out[c] = s
	}
	return out, nil
}

// vector runs one instant query and returns its samples by cluster. Samples
// without a cluster, NaN or negative, or infinite unless allowInf (a pending
// time with no job starting), are skipped and logged.
func (p *Prometheus) vector(ctx context.Context, query string, at time.Time, allowInf bool) (map[string]float64, error) {
	res, err := promquery.SumBy(ctx, p.api, query, at, ClusterLabel, allowInf)
	if len(res.Warnings) > 0 {
		p.log.Info("Prometheus health query returned warnings", "query", query, "warnings", []string(res.Warnings))
	}
	if err != nil {
		return nil, fmt.Errorf("prometheus health: %w", err)
	}
	if res.Skipped > 0 {
		p.log.Info("Prometheus health query returned unusable samples", "query", query, "skipped", res.Skipped)
	}
	return res.Sums, nil
}
