package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/httpapi"
)

// stateFlags say where the dispatcher's state lives (memory, --state-dir,
// or the Kubernetes API) and what it keeps: provisional rows and the
// longest drains and overrides.
type stateFlags struct {
	dir                         string
	maxProvisional              int
	provisionalTTL, maxDrainTTL time.Duration
	maxOverrideTTL              time.Duration
	housekeeping                time.Duration
	kube                        kubeFlags // AddFlags leaves these to their own group
}

func (f *stateFlags) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "state-dir", "", "dir of the persisted table, overrides and demand counts (empty: memory only)")
	fs.IntVar(&f.maxProvisional, "max-provisional-jobs", dispatch.DefaultMaxProvisional, "most jobs first seen at admission, not in the job config, that get a row; beyond, such jobs are placed but not recorded")
	fs.DurationVar(&f.provisionalTTL, "provisional-ttl", dispatch.DefaultProvisionalTTL, "drop the row of a job not in the job config once it was not admitted for this long")
	fs.DurationVar(&f.housekeeping, "housekeeping-interval", dispatch.DefaultHousekeeping, "how often expired overrides, drains and caps are dropped and admission counts saved")
	fs.DurationVar(&f.maxDrainTTL, "max-drain-ttl", dispatch.DefaultMaxDrainTTL, "longest TTL a cluster drain or capacity cap may have (the shortest is "+dispatch.MinTTL.String()+")")
	fs.DurationVar(&f.maxOverrideTTL, "max-override-ttl", dispatch.DefaultMaxOverrideTTL, "longest TTL a job override (reschedule) may have, and the TTL of one asked without (the shortest is "+dispatch.MinTTL.String()+")")
}

func (f *stateFlags) Validate() error {
	errs := []error{f.kube.Validate()}
	if f.kube.enabled() && f.dir != "" {
		errs = append(errs, errors.New("--state-dir and --state-backend=kubernetes are exclusive: the state lives in the API server"))
	}
	if f.maxProvisional < 1 {
		errs = append(errs, fmt.Errorf("--max-provisional-jobs %d: want at least 1", f.maxProvisional))
	}
	if f.provisionalTTL <= 0 {
		errs = append(errs, fmt.Errorf("--provisional-ttl %s: want a positive duration", f.provisionalTTL))
	}
	if f.housekeeping <= 0 {
		errs = append(errs, fmt.Errorf("--housekeeping-interval %s: want a positive duration", f.housekeeping))
	}
	for _, b := range []struct {
		flag string
		ttl  time.Duration
	}{{"--max-drain-ttl", f.maxDrainTTL}, {"--max-override-ttl", f.maxOverrideTTL}} {
		if b.ttl < dispatch.MinTTL {
			errs = append(errs, fmt.Errorf("%s %s: want at least %s", b.flag, b.ttl, dispatch.MinTTL))
		}
	}
	return errors.Join(errs...)
}

// apply sets the dispatch options of what the state keeps.
func (f *stateFlags) apply(opts *dispatch.Options) {
	opts.MaxProvisional, opts.ProvisionalTTL, opts.Housekeeping = f.maxProvisional, f.provisionalTTL, f.housekeeping
	opts.MaxDrainTTL, opts.MaxOverrideTTL = f.maxDrainTTL, f.maxOverrideTTL
}

// openState is the state the flags name, opened: the backend the
// dispatcher keeps its table in and, with --state-backend=kubernetes, the
// shared backend and what the API needs of it.
type openState struct {
	backend     state.Backend
	shared      *kubestate.Backend // nil: one replica
	replicaAuth *httpapi.ReplicaAuth
	replica     string
}

// open opens the state: memory, the locked --state-dir, or the Kubernetes
// API, whose start (listing the shared state) also sets the dispatch
// options that go with it (kubeFlags.startShared). The returned func
// releases the state dir's lock.
func (f *stateFlags) open(ctx context.Context, apiPort int, opts *dispatch.Options, reg prometheus.Registerer, log logr.Logger) (*openState, func(), error) {
	noop := func() {}
	switch {
	case f.kube.enabled():
		ra, err := f.kube.replicaAuth()
		if err != nil {
			return nil, noop, err
		}
		if err := ra.Register(reg); err != nil {
			return nil, noop, err
		}
		shared, err := f.kube.startShared(ctx, apiPort, opts, reg, log.WithName("kubestate"))
		if err != nil {
			return nil, noop, err
		}
		_, replica, _ := f.kube.names(apiPort)
		return &openState{backend: shared, shared: shared, replicaAuth: ra, replica: replica}, noop, nil
	case f.dir != "":
		lock, err := store.LockDir(f.dir)
		if err != nil {
			return nil, noop, err
		}
		release := func() { _ = lock.Release() }
		st, err := store.NewBackend(f.dir)
		if err != nil {
			release()
			return nil, noop, fmt.Errorf("dispatcher: %w", err)
		}
		return &openState{backend: st}, release, nil
	default:
		return &openState{backend: state.Memory{}}, noop, nil
	}
}

// loop is the dispatch loop over this state; it saves the state on the way
// out and returns the save's error. With shared state every replica
// follows the state and the leader alone runs the dispatch loop.
func (s *openState) loop(d *dispatch.Dispatcher, log logr.Logger) component {
	if s.shared == nil {
		return component{name: "dispatch loop", run: d.Run}
	}
	return component{name: "dispatch loop", run: func(ctx context.Context) error {
		followed := make(chan error, 1)
		go func() { followed <- s.shared.Run(ctx) }()
		s.shared.Elect(ctx, func(leadCtx context.Context) {
			if err := d.Run(leadCtx); err != nil {
				log.Error(err, "The dispatch loop ended with an error")
			}
		})
		return <-followed
	}}
}

// background is what runs beside the loop with shared state: loading the
// configs, retried, while the shared table serves meanwhile.
func (s *openState) background(d *dispatch.Dispatcher) []component {
	if s.shared == nil {
		return nil
	}
	return []component{{name: "inputs", run: d.LoadInputsRetrying}}
}

// exposeLeader gives the API the shared state's leader and the replica
// secret, so that a follower forwards writes to the leader.
func (s *openState) exposeLeader(api *httpapi.API) {
	if s.shared != nil {
		api.Leader, api.ReplicaAuth = leaderOf{b: s.shared, replica: s.replica}, s.replicaAuth
	}
}

// exposeReplication has /readyz report the shared state.
func (s *openState) exposeReplication(health *httpapi.HealthOptions) {
	if s.shared != nil {
		health.Replication = func() any { return s.shared.Status() }
	}
}
