package main

import (
	"errors"
	"flag"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
)

// dispatchFlags are serve's flags of the dispatch loop: when full
// dispatches run, how long a preview may take and which demand answers
// it trusts. (The inputs and balancing, which plan shares, are inputFlags.)
type dispatchFlags struct {
	schedule       string
	previewTimeout time.Duration
	demandMaxDrop  float64
}

func (f *dispatchFlags) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.schedule, "schedule", dispatch.DefaultSchedule, "cron spec (UTC) of full dispatches")
	fs.DurationVar(&f.previewTimeout, "preview-timeout", dispatch.DefaultPreviewTimeout, "longest a plan (what-if) or a drain preview may compute, waiting for the one in progress included; past it the API answers 503")
	fs.Float64Var(&f.demandMaxDrop, "demand-max-drop", dispatch.DefaultDemandMaxDrop, "refuse a demand answer whose total fell by more than this fraction against the last good one (1: accept any)")
}

func (f *dispatchFlags) Validate() error {
	var errs []error
	if f.previewTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--preview-timeout %s: want a positive duration", f.previewTimeout))
	}
	if !(f.demandMaxDrop > 0 && f.demandMaxDrop <= 1) {
		errs = append(errs, fmt.Errorf("--demand-max-drop %v: want more than 0, at most 1", f.demandMaxDrop))
	}
	return errors.Join(errs...)
}

// apply sets the dispatch options of the flags.
func (f *dispatchFlags) apply(opts *dispatch.Options) {
	opts.Schedule, opts.PreviewTimeout, opts.DemandMaxDrop = f.schedule, f.previewTimeout, f.demandMaxDrop
}

// dispatcherRef reaches the dispatcher from the parts built before it: the
// Git job source, whose first fetch comes before dispatch.New and has
// nothing to trigger, and the Git backup, which reads the table only once
// the dispatch loop runs.
type dispatcherRef struct {
	p atomic.Pointer[dispatch.Dispatcher]
}

// set keeps d, as returned by dispatch.New, and returns it.
func (r *dispatcherRef) set(d *dispatch.Dispatcher, err error) (*dispatch.Dispatcher, error) {
	if err == nil {
		r.p.Store(d)
	}
	return d, err
}

// trigger asks for a dispatch once the dispatcher exists.
func (r *dispatcherRef) trigger() {
	if d := r.p.Load(); d != nil {
		d.Trigger()
	}
}

// buildFarm is the live table's build farm.
func (r *dispatcherRef) buildFarm() map[string]map[string]*config.BuildFarmCluster {
	return r.p.Load().Snapshot().BuildFarm()
}
