package dispatch

import (
	"context"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/robfig/cron/v3"
)

// Run keeps the table up to date until ctx is done: a dispatch at start when
// no table is in force, then one on the cron schedule, one when a config
// file or the job config changes (after Options.WatchDebounce of quiet), and
// one per Trigger. It drops expired overrides and provisional jobs and saves
// admission counts every Options.Housekeeping, and evaluates cluster health
// every Options.Health.Interval (when health is on). A failing dispatch is logged and recorded and
// never ends Run. On exit it saves the state and returns the save's error.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.LoadInputsRetrying(ctx); err != nil {
		return d.flush() // ctx is done
	}
	if d.cache.Len() == 0 {
		_, _ = d.Dispatch(ctx) // errors are logged and shown in Status
	}

	c := cron.New(cron.WithLocation(time.UTC))
	c.Schedule(d.schedule, cron.FuncJob(d.Trigger))
	c.Start()
	defer c.Stop()

	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	var w *watcher
	if !d.opts.NoWatch {
		var err error
		if w, err = newWatcher(d.opts.DispatcherConfigPath, d.opts.ClusterConfigPath, d.opts.JobConfigDir); err != nil {
			d.log.Error(err, "Not watching the config files: changes are picked up by the schedule and triggers only")
		} else {
			defer w.close()
			events, watchErrs = w.fs.Events, w.fs.Errors
		}
	}

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	housekeeping := time.NewTicker(d.opts.Housekeeping)
	defer housekeeping.Stop()
	var healthTick <-chan time.Time
	if d.opts.Health.enabled() {
		t := time.NewTicker(d.opts.Health.Interval)
		defer t.Stop()
		healthTick = t.C
	}

	for {
		select {
		case <-ctx.Done():
			return d.flush()
		case <-d.trigger:
			_, _ = d.Dispatch(ctx)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if w.relevant(ev) {
				debounce.Reset(d.opts.WatchDebounce)
			}
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			d.log.Error(err, "Watching the config files")
		case <-debounce.C:
			d.log.Info("Config changed on disk: dispatching")
			_, _ = d.Dispatch(ctx)
		case <-healthTick:
			_, _ = d.evaluateHealth(ctx) // errors are logged and shown by Status
		case <-housekeeping.C:
			if _, err := d.expireOverrides(); err != nil {
				d.log.Error(err, "Dropping expired overrides")
			}
			if _, err := d.expireDrains(); err != nil {
				d.log.Error(err, "Dropping expired cluster overrides")
			}
			if _, err := d.expireProvisional(); err != nil {
				d.log.Error(err, "Dropping provisional jobs")
			}
			_ = d.saveAdmissions()
		}
	}
}
