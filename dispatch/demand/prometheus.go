package demand

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"k8s.io/utils/clock"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/internal/promquery"
)

// DefaultQuery is the demand query: pending transitions per job over the
// window, i.e. how often each job started. {{.Window}} is the window as a
// Prometheus duration ("14d").
const DefaultQuery = `sum(increase(prowjob_state_transitions{state="pending"}[{{.Window}}])) by (job_name)`

// DefaultTimeout bounds one Demand call (all its queries).
const DefaultTimeout = 2 * time.Minute

// JobLabel is the label that names the job in query results.
const JobLabel = "job_name"

// PrometheusOptions configure a Prometheus demand source.
type PrometheusOptions struct {
	// URL is Prometheus' base URL. Required.
	URL string
	// Query gives demand by job_name; a text/template with {{.Window}}. Default DefaultQuery.
	Query string
	// Window is the demand window, substituted for {{.Window}}. Default DefaultWindow.
	Window time.Duration
	// WeightQuery, if set, gives a weight by job_name (e.g. average run duration) that is
	// multiplied into the demand; also a template with {{.Window}}. Jobs it does not
	// return get the mean of the weights it does return.
	WeightQuery string
	// Weights weigh the demand by runs, job hours, CPU-hours and memory
	// GiB-hours as the previous dispatcher did (after WeightQuery, if any).
	// The zero value counts runs as they are.
	Weights Weights
	// Timeout bounds one Demand call. Default DefaultTimeout.
	Timeout time.Duration
	// RoundTripper carries the requests (auth, TLS). Default promapi.DefaultRoundTripper.
	RoundTripper http.RoundTripper
	// Logger gets the queries' warnings.
	Logger logr.Logger
	// Clock stamps the queries. Default the real clock.
	Clock clock.PassiveClock
}

// Prometheus is demand queried from Prometheus.
type Prometheus struct {
	api         promv1.API
	query       string
	weightQuery string
	weights     Weights
	resources   []resourceQuery // weights' optional queries, rendered
	timeout     time.Duration
	log         logr.Logger
	clock       clock.PassiveClock
}

// NewPrometheus validates the options and builds the client; it does not contact Prometheus.
func NewPrometheus(opts PrometheusOptions) (*Prometheus, error) {
	if opts.URL == "" {
		return nil, errors.New("prometheus demand: URL is required")
	}
	if opts.Query == "" {
		opts.Query = DefaultQuery
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
		return nil, fmt.Errorf("prometheus demand: URL %q: %w", opts.URL, err)
	}
	window := opts.Window
	query, err := render("query", opts.Query, window)
	if err != nil {
		return nil, err
	}
	var weightQuery string
	if opts.WeightQuery != "" {
		if weightQuery, err = render("weight query", opts.WeightQuery, window); err != nil {
			return nil, err
		}
	}
	if opts.Weights == (Weights{}) {
		opts.Weights.Run = 1
	}
	if err := opts.Weights.Validate(); err != nil {
		return nil, fmt.Errorf("prometheus demand: %w", err)
	}
	resources := opts.Weights.resourceQueries()
	for i := range resources {
		if resources[i].query, err = render(resources[i].name+" query", resources[i].query, window); err != nil {
			return nil, err
		}
	}
	return &Prometheus{
		api: promv1.NewAPI(client), query: query, weightQuery: weightQuery, weights: opts.Weights, resources: resources,
		timeout: opts.Timeout, log: opts.Logger, clock: opts.Clock,
	}, nil
}

// promDuration formats d for PromQL, in whole days when it is some ("14d").
func render(what, text string, window time.Duration) (string, error) {
	q, err := promquery.Render(text, window)
	if err != nil {
		return "", fmt.Errorf("prometheus demand: %s %q: %w", what, text, err)
	}
	return q, nil
}

// Query is the rendered demand query.
func (p *Prometheus) Query() string { return p.query }

// Demand runs the demand query, the weight query if any, and the Weights'
// optional queries, and weighs the runs with them.
func (p *Prometheus) Demand(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	now := p.clock.Now()
	demand, err := p.vector(ctx, p.query, now)
	if err != nil {
		return nil, err
	}
	if p.weightQuery != "" {
		weights, err := p.vector(ctx, p.weightQuery, now)
		if err != nil {
			return nil, err
		}
		demand = weigh(demand, weights)
	}
	resources := make(map[string]map[string]float64, len(p.resources))
	for _, q := range p.resources {
		if resources[q.name], err = p.vector(ctx, q.query, now); err != nil {
			return nil, fmt.Errorf("job %s: %w", q.name, err)
		}
	}
	return p.weights.Weigh(demand, resources), nil
}

// weigh multiplies each job's demand by its weight; jobs without a weight get the mean weight.
func weigh(demand, weights map[string]float64) map[string]float64 {
	mean := 1.0
	if len(weights) > 0 {
		var sum float64
		for _, w := range weights {
			sum += w
		}
		mean = sum / float64(len(weights))
	}
	out := make(map[string]float64, len(demand))
	for job, d := range demand {
		w, ok := weights[job]
		if !ok {
			w = mean
		}
		out[job] = d * w
	}
	return out
}

// vector runs one instant query and returns its samples by job_name. Samples
// without a job name, or with a value that is not a finite number >= 0, are
// skipped and logged.
func (p *Prometheus) vector(ctx context.Context, query string, at time.Time) (map[string]float64, error) {
	res, err := promquery.SumBy(ctx, p.api, query, at, JobLabel, false)
	if len(res.Warnings) > 0 {
		p.log.Info("Prometheus query returned warnings", "query", query, "warnings", []string(res.Warnings))
	}
	if err != nil {
		return nil, fmt.Errorf("prometheus demand: %w", err)
	}
	if res.Skipped > 0 {
		p.log.Info("Prometheus query returned unusable samples", "query", query, "skipped", res.Skipped)
	}
	return res.Sums, nil
}
