package dispatch

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Defaults of Options.
const (
	// DefaultSchedule is weekly, Sunday 00:00 UTC.
	DefaultSchedule = "0 0 * * 0"
	// DefaultWatchDebounce is how long config changes must settle before a re-dispatch.
	DefaultWatchDebounce = 2 * time.Second
	// DefaultPersistDelay coalesces the state writes of delta assignments.
	DefaultPersistDelay = time.Second
	// DefaultHousekeeping is how often Run drops expired overrides and saves admission counts.
	DefaultHousekeeping = time.Minute
	// DefaultMaxProvisional bounds the jobs first seen at admission that the table keeps.
	DefaultMaxProvisional = 2000
	// DefaultProvisionalTTL is how long a provisional job stays without being admitted.
	DefaultProvisionalTTL = 72 * time.Hour
	// DefaultDemandMaxDrop is the largest fall of the total demand a query may report
	// against the last good one before it is taken for a failure.
	DefaultDemandMaxDrop = 0.5
	// DefaultPreviewTimeout bounds a what-if (a plan) or a drain preview.
	DefaultPreviewTimeout = 30 * time.Second
)

// Defaults of HealthOptions.
const (
	// DefaultHealthInterval is how often the dispatch loop evaluates cluster health.
	DefaultHealthInterval = time.Minute
	// DefaultHealthDrainTTL is the TTL of an automatic drain, renewed while the cluster stays unhealthy.
	DefaultHealthDrainTTL = 6 * time.Hour
	// DefaultHealthMaxDrained bounds the clusters drained automatically at once.
	DefaultHealthMaxDrained = 1
	// HealthDrainBy is the By of automatic drains: the drains health may
	// renew and cancel. Any other drain is an operator's and is never touched.
	HealthDrainBy = "health"
)

// HealthOptions configure health-driven failover. With no Source, or Mode
// health.ModeOff, health is not evaluated.
type HealthOptions struct {
	// Source gives the clusters' samples (Prometheus).
	Source health.Source
	// Mode is off, report (the default: evaluate and say what would be done) or act.
	Mode health.Mode
	// Interval is how often Run evaluates; default DefaultHealthInterval.
	Interval time.Duration
	// Thresholds judge the samples; zero -> health.DefaultThresholds().
	Thresholds health.Thresholds
	// DrainTTL is the TTL of an automatic drain; default DefaultHealthDrainTTL,
	// or Options.MaxDrainTTL when that is shorter.
	DrainTTL time.Duration
	// MaxDrained bounds the clusters drained automatically at once; default DefaultHealthMaxDrained.
	MaxDrained int
	// Events, when set, is told of every transition with the action taken
	// for the cluster (a Kubernetes Event); it must not block.
	Events HealthEvents
	// MaxDrainedShare, when above 0, also bounds the automatically drained
	// clusters' share of the total capacity of the cluster config (0..1).
	MaxDrainedShare float64
}

// HealthEvents records health transitions outside the dispatcher.
type HealthEvents interface {
	// HealthTransition records one transition; action is what the
	// dispatcher did (or in report mode would do) about the cluster.
	HealthTransition(t health.Transition, mode health.Mode, action string)
}

func (o HealthOptions) withDefaults(maxDrainTTL time.Duration) HealthOptions {
	if o.Mode == "" {
		o.Mode = health.ModeReport
	}
	if o.Interval <= 0 {
		o.Interval = DefaultHealthInterval
	}
	if o.Thresholds == (health.Thresholds{}) {
		o.Thresholds = health.DefaultThresholds()
	}
	if o.DrainTTL <= 0 {
		o.DrainTTL = min(DefaultHealthDrainTTL, maxDrainTTL)
	}
	if o.MaxDrained <= 0 {
		o.MaxDrained = DefaultHealthMaxDrained
	}
	return o
}

// enabled reports whether health is evaluated.
func (o HealthOptions) enabled() bool { return o.Source != nil && o.Mode != health.ModeOff }

// Options configure a Dispatcher. Zero values take the documented defaults.
type Options struct {
	// DispatcherConfigPath and ClusterConfigPath are the two config files. Required.
	DispatcherConfigPath, ClusterConfigPath string
	// JobConfigDir is the Prow job config dir. Required.
	JobConfigDir string
	// Labels name the job labels that steer placement; zero -> jobs.DefaultLabels().
	Labels jobs.Labels
	// Engine tunes balancing.
	Engine engine.Options
	// Demand is the demand source; nil -> demand counted from admissions (persisted).
	Demand demand.Source
	// Schedule is the cron spec of full dispatches (UTC); default DefaultSchedule.
	Schedule string
	// Registerer gets the metrics; nil -> no metrics.
	Registerer prometheus.Registerer
	// Logger logs; the zero Logger discards.
	Logger logr.Logger
	// Clock tells the time; nil -> real.
	Clock clock.PassiveClock

	// WatchDebounce is how long file changes must settle before Run re-dispatches; default DefaultWatchDebounce.
	WatchDebounce time.Duration
	// PersistDelay bounds how long a delta assignment waits to be saved (writes are coalesced); default DefaultPersistDelay.
	PersistDelay time.Duration
	// Housekeeping is how often Run drops expired overrides and saves admission counts; default DefaultHousekeeping.
	Housekeeping time.Duration
	// MaxProvisional bounds the jobs first seen at admission, not in the job
	// config, that get a row; beyond it such jobs are placed but not
	// recorded. Default DefaultMaxProvisional.
	MaxProvisional int
	// ProvisionalTTL drops the row of such a job not admitted for this long; default DefaultProvisionalTTL.
	ProvisionalTTL time.Duration
	// DemandMaxDrop refuses a demand query whose total demand fell by more
	// than this fraction against the last good one (an empty answer always
	// is refused); default DefaultDemandMaxDrop, and 1 accepts any fall.
	DemandMaxDrop float64
	// MaxDrainTTL bounds the TTL of a drain or capacity cap; default DefaultMaxDrainTTL.
	MaxDrainTTL time.Duration
	// PreviewTimeout bounds a what-if (WhatIf, a plan) or a drain preview,
	// waiting for the preview in progress included; default DefaultPreviewTimeout.
	PreviewTimeout time.Duration
	// MaxOverrideTTL bounds the TTL of a job override (a reschedule), and is
	// the TTL of one asked without; default DefaultMaxOverrideTTL.
	MaxOverrideTTL time.Duration
	// Health configures health-driven failover.
	Health HealthOptions
	// DeferInputs, when the state loaded holds a table, makes New put that
	// table in force at once and leave the configs and the job config to
	// LoadInputs, so that a replica serves lookups before it has read them.
	// Until then, jobs the table lacks are not placed (ErrNotReady).
	DeferInputs bool
	// Admissions, when set, counts the admissions of this process (the
	// counts a highly available dispatcher publishes and sums). With Demand
	// nil, demand is counted from them; nil -> a counter of its own when
	// Demand is nil, none otherwise.
	Admissions *demand.Admissions
	// OnDispatched, when set, is called after each full dispatch that
	// replaced the table, with the new table and its report. It runs on the
	// dispatch loop: it must return quickly (hand the work to a goroutine).
	OnDispatched func(t *table.Table, r *engine.Report)
	// Refresh, when set, brings the inputs on disk up to date before each
	// full dispatch (the job config read from Git fetches). Its error is
	// logged and the dispatch goes on with the inputs on disk.
	Refresh func(ctx context.Context) error
	// NoWatch turns the file watch off: the inputs change only through
	// Refresh and triggers (the job config from Git, whose trees are
	// immutable and whose old trees are removed).
	NoWatch bool
}

func (o Options) withDefaults() Options {
	if o.Labels == (jobs.Labels{}) {
		o.Labels = jobs.DefaultLabels()
	}
	if o.Schedule == "" {
		o.Schedule = DefaultSchedule
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.WatchDebounce <= 0 {
		o.WatchDebounce = DefaultWatchDebounce
	}
	if o.PersistDelay <= 0 {
		o.PersistDelay = DefaultPersistDelay
	}
	if o.Housekeeping <= 0 {
		o.Housekeeping = DefaultHousekeeping
	}
	if o.MaxProvisional <= 0 {
		o.MaxProvisional = DefaultMaxProvisional
	}
	if o.ProvisionalTTL <= 0 {
		o.ProvisionalTTL = DefaultProvisionalTTL
	}
	if o.MaxDrainTTL <= 0 {
		o.MaxDrainTTL = DefaultMaxDrainTTL
	}
	if o.MaxOverrideTTL <= 0 {
		o.MaxOverrideTTL = DefaultMaxOverrideTTL
	}
	if o.DemandMaxDrop <= 0 {
		o.DemandMaxDrop = DefaultDemandMaxDrop
	}
	if o.PreviewTimeout <= 0 {
		o.PreviewTimeout = DefaultPreviewTimeout
	}
	o.Health = o.Health.withDefaults(o.MaxDrainTTL)
	return o
}
