package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
)

// healthFlags are serve's flags of health-driven failover.
type healthFlags struct {
	mode, prometheusURL                          string
	errorsQuery, finishedQuery, pendingQuery     string
	window, interval, drainTTL, dwell            time.Duration
	unhealthyErrorShare, healthyErrorShare       float64
	unhealthyPending, healthyPending             time.Duration
	minSamples                                   float64
	maxDrained                                   int
	maxDrainedShare                              float64
	eventsKubeconfig, eventsNamespace, eventsPod string
}

func (f *healthFlags) AddFlags(fs *flag.FlagSet) {
	th := health.DefaultThresholds()
	fs.StringVar(&f.mode, "health-mode", string(health.ModeReport), "health-driven failover: off, report (judge clusters and say what would be done) or act (drain unhealthy clusters automatically)")
	fs.StringVar(&f.prometheusURL, "health-prometheus-url", "", "Prometheus to query cluster health from (default --prometheus-url; with neither, health is off)")
	fs.StringVar(&f.errorsQuery, "health-errors-query", health.DefaultErrorsQuery, "PromQL counting, by cluster, the ProwJobs that ended in error over {{.Window}}")
	fs.StringVar(&f.finishedQuery, "health-finished-query", health.DefaultFinishedQuery, "PromQL counting, by cluster, the ProwJobs that finished over {{.Window}}")
	fs.StringVar(&f.pendingQuery, "health-pending-query", health.DefaultPendingQuery, `PromQL giving, by cluster, how long ProwJobs wait to start, in seconds ("-": not queried)`)
	fs.DurationVar(&f.window, "health-window", health.DefaultWindow, "window of the health queries ({{.Window}})")
	fs.DurationVar(&f.interval, "health-interval", dispatch.DefaultHealthInterval, "how often the dispatch loop evaluates cluster health")
	fs.Float64Var(&f.unhealthyErrorShare, "health-unhealthy-error-share", th.UnhealthyErrorShare, "a cluster whose error share is at or above this turns unhealthy")
	fs.Float64Var(&f.healthyErrorShare, "health-healthy-error-share", th.HealthyErrorShare, "an unhealthy cluster turns healthy again only at or below this error share (hysteresis)")
	fs.DurationVar(&f.unhealthyPending, "health-unhealthy-pending", th.UnhealthyPending, "a cluster whose ProwJobs wait this long to start turns unhealthy (0: pending time is ignored)")
	fs.DurationVar(&f.healthyPending, "health-healthy-pending", th.HealthyPending, "an unhealthy cluster turns healthy again only at or below this pending time")
	fs.Float64Var(&f.minSamples, "health-min-samples", th.MinSamples, "fewest finished ProwJobs in the window to judge a cluster (fewer: unknown, never unhealthy)")
	fs.DurationVar(&f.dwell, "health-dwell", th.Dwell, "how long the evidence must last before a cluster's health changes")
	fs.IntVar(&f.maxDrained, "health-max-drained", dispatch.DefaultHealthMaxDrained, "most clusters drained automatically at once")
	fs.Float64Var(&f.maxDrainedShare, "health-max-drained-share", 0, "most share (0..1) of the total capacity drained automatically at once (0: only --health-max-drained bounds)")
	fs.StringVar(&f.eventsKubeconfig, "health-events-kubeconfig", "", `kubeconfig of the API server that gets a Kubernetes Event per health transition ("in-cluster": the Pod's service account, which then needs create on events.k8s.io events; empty: no Events)`)
	fs.StringVar(&f.eventsNamespace, "health-events-namespace", envOr("POD_NAMESPACE", "default"), "namespace of the Events and of the Pod they regard (default $POD_NAMESPACE)")
	fs.StringVar(&f.eventsPod, "health-events-pod", envOr("POD_NAME", "prowjob-dispatcher"), "the Pod the Events regard: the dispatcher's own (default $POD_NAME)")
	fs.DurationVar(&f.drainTTL, "health-drain-ttl", 0, "TTL of an automatic drain, renewed while the cluster stays unhealthy (0: "+dispatch.DefaultHealthDrainTTL.String()+", or --max-drain-ttl when shorter)")
}

func (f *healthFlags) thresholds() health.Thresholds {
	return health.Thresholds{
		UnhealthyErrorShare: f.unhealthyErrorShare, HealthyErrorShare: f.healthyErrorShare,
		UnhealthyPending: f.unhealthyPending, HealthyPending: f.healthyPending, MinSamples: f.minSamples, Dwell: f.dwell,
	}
}

func (f *healthFlags) Validate() error {
	var errs []error
	if _, err := health.ParseMode(f.mode); err != nil {
		errs = append(errs, fmt.Errorf("--health-mode: %w", err))
	}
	if err := f.thresholds().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--health-*: %w", err))
	}
	if f.interval <= 0 || f.window <= 0 || f.drainTTL < 0 {
		errs = append(errs, fmt.Errorf("--health-interval %s, --health-window %s, --health-drain-ttl %s: want positive durations (0 for the default drain TTL)", f.interval, f.window, f.drainTTL))
	}
	if f.drainTTL != 0 && f.drainTTL < dispatch.MinTTL { // 0: the default
		errs = append(errs, fmt.Errorf("--health-drain-ttl %s: want at least %s", f.drainTTL, dispatch.MinTTL))
	}
	if f.maxDrained < 1 {
		errs = append(errs, fmt.Errorf("--health-max-drained %d: want at least 1", f.maxDrained))
	}
	if f.maxDrainedShare < 0 || f.maxDrainedShare > 1 {
		errs = append(errs, fmt.Errorf("--health-max-drained-share %g not in 0..1", f.maxDrainedShare))
	}
	return errors.Join(errs...)
}

// options builds the health options; demandURL is --prometheus-url and
// client the Prometheus client flags, shared with demand. With no
// Prometheus to ask, health is off and that is logged. Events, when asked
// for, are sent until ctx ends; the returned func flushes them.
func (f *healthFlags) options(ctx context.Context, demandURL string, client *prometheusClientFlags, log logr.Logger) (dispatch.HealthOptions, func(), error) {
	mode, _ := health.ParseMode(f.mode) // validated
	url := f.prometheusURL
	if url == "" {
		url = demandURL
	}
	opts := dispatch.HealthOptions{Mode: mode, Interval: f.interval, Thresholds: f.thresholds(), DrainTTL: f.drainTTL,
		MaxDrained: f.maxDrained, MaxDrainedShare: f.maxDrainedShare}
	stop := func() {}
	if mode == health.ModeOff {
		return opts, stop, nil
	}
	if url == "" {
		log.Info("Cluster health is off: no --health-prometheus-url or --prometheus-url", "mode", mode)
		return opts, stop, nil
	}
	rt, err := client.roundTripper()
	if err != nil {
		return opts, stop, err
	}
	src, err := health.NewPrometheus(health.PrometheusOptions{URL: url, ErrorsQuery: f.errorsQuery, FinishedQuery: f.finishedQuery,
		PendingQuery: f.pendingQuery, Window: f.window, RoundTripper: rt, Logger: log})
	if err != nil {
		return opts, stop, fmt.Errorf("--health-prometheus-url: %w", err)
	}
	opts.Source = src
	if f.eventsKubeconfig != "" {
		ev, evStop, err := newKubeEvents(ctx, f.eventsKubeconfig, f.eventsNamespace, f.eventsPod, log)
		if err != nil {
			return opts, stop, err
		}
		opts.Events, stop = ev, evStop
	}
	log.Info("Cluster health", "mode", mode, "prometheus", url, "interval", f.interval, "thresholds", fmt.Sprintf("%+v", opts.Thresholds))
	return opts, stop, nil
}
