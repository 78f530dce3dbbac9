package kubestate

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/utils/clock"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
)

// The defaults of Options.
const (
	DefaultLeaseName         = "prowjob-dispatcher"
	DefaultLeaseDuration     = 10 * time.Second
	DefaultRenewDeadline     = 7 * time.Second
	DefaultRetryPeriod       = time.Second
	DefaultShards            = 16
	DefaultPublishInterval   = time.Second
	DefaultPlacedRowsDelay   = 30 * time.Second
	DefaultHeartbeatInterval = 10 * time.Second
	// DefaultDrainConfirmTimeout is Options.DrainConfirmTimeout's default.
	DefaultDrainConfirmTimeout = 2 * time.Second
	DefaultGCInterval          = time.Minute
	DefaultWriteTimeout        = 5 * time.Second
	DefaultStaleAfter          = 30 * time.Second
)

// Options configure a Backend. Zero values take the documented defaults.
type Options struct {
	// Namespace holds every object of the state and the Lease. Required.
	Namespace string
	// Replica is this replica's name, unique among the replicas (the pod
	// name): its Lease identity and the name of its DispatcherReplica. Required.
	Replica string
	// Address is the root URL of this replica's HTTP API, where the other
	// replicas forward writes while it leads.
	Address string

	// LeaseName is the Lease the replicas elect their leader on (default "prowjob-dispatcher").
	LeaseName string
	// LeaseDuration, RenewDeadline and RetryPeriod are those of client-go's
	// leader election (defaults 10s, 7s, 2s): a dead leader is replaced
	// within LeaseDuration + RetryPeriod, one that steps down within RetryPeriod.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration

	// Shards is how many TableShards the table is cut into (default 16).
	// Each holds at most 1 MiB compressed (about 10,000 rows).
	Shards int
	// PublishInterval is how often the leader looks for a change of its
	// table to publish (default 1s).
	PublishInterval time.Duration
	// PlacedRowsDelay is how long the leader may leave unpublished a change
	// made only of rows that JobPlacements already carry to every replica
	// (new jobs admitted), so that a stream of new jobs does not re-encode
	// and rewrite shards every PublishInterval (default 30s).
	PlacedRowsDelay time.Duration
	// DrainConfirmTimeout bounds how long a drain's acknowledgement waits
	// for the other replicas to have it in force (default 2s).
	DrainConfirmTimeout time.Duration
	// HeartbeatInterval is how often a replica writes its DispatcherReplica (default 10s).
	HeartbeatInterval time.Duration
	// GCInterval is how often the leader deletes expired overrides and drains
	// and the records of replicas gone for longer than DemandWindow (default 1m).
	GCInterval time.Duration
	// WriteTimeout bounds every API call (default 5s), so writes fail fast
	// while the API server is unreachable.
	WriteTimeout time.Duration
	// StaleAfter is how long the table served may lag behind the leader's
	// (its publication failing, or the shards in the API refused) before
	// Status reports this replica degraded (default 30s).
	StaleAfter time.Duration
	// DemandWindow is the window of the admission counts summed by Demand
	// (default demand.DefaultWindow, 14 days).
	DemandWindow time.Duration

	// Logger logs (default: discard).
	Logger logr.Logger
	// Registerer registers the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Clock is the time source (default: the real clock).
	Clock clock.WithTicker
}

func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, errors.New("no namespace"))
	}
	if o.Replica == "" {
		errs = append(errs, errors.New("no replica name"))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.LeaseName == "" {
		o.LeaseName = DefaultLeaseName
	}
	def(&o.LeaseDuration, DefaultLeaseDuration)
	def(&o.RenewDeadline, DefaultRenewDeadline)
	def(&o.RetryPeriod, DefaultRetryPeriod)
	def(&o.PublishInterval, DefaultPublishInterval)
	def(&o.PlacedRowsDelay, DefaultPlacedRowsDelay)
	def(&o.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&o.DrainConfirmTimeout, DefaultDrainConfirmTimeout)
	def(&o.GCInterval, DefaultGCInterval)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.StaleAfter, DefaultStaleAfter)
	def(&o.DemandWindow, demand.DefaultWindow)
	if o.Shards <= 0 {
		o.Shards = DefaultShards
	}
	if o.Shards > 1000 {
		errs = append(errs, fmt.Errorf("%d shards: at most 1000", o.Shards))
	}
	if !(o.LeaseDuration > o.RenewDeadline && o.RenewDeadline > time.Duration(leaderelection.JitterFactor*float64(o.RetryPeriod))) {
		errs = append(errs, fmt.Errorf("want lease duration (%s) > renew deadline (%s) > %.1f x retry period (%s)",
			o.LeaseDuration, o.RenewDeadline, leaderelection.JitterFactor, o.RetryPeriod))
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("kubernetes state backend: %w", errors.Join(errs...))
	}
	return o, nil
}
