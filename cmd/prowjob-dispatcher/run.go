package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/gitbackup"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/gitjobs"
)

// component is one running part of serve: a server, the dispatch loop, a
// background fetch. run returns when ctx is done, or earlier on failure.
type component struct {
	name string
	run  func(ctx context.Context) error
}

// components are serve's running parts, sorted by how they stop.
type components struct {
	// servers stop first, when ctx is done or any component fails, and
	// drain their in-flight requests.
	servers []component
	// loops stop once every server has returned, so that the state they
	// save on the way out holds the last admissions.
	loops []component
	// background parts stop with the servers and are never waited for: a
	// Git backup or fetch in progress must not hold up the shutdown.
	background []component
}

// run runs every component until ctx is done or one fails: a server
// returns an error, or a loop returns before it is stopped. Then the
// servers stop and drain, then the loops stop and save the state. It
// returns the failure, joined with the loops' errors at the end.
func (c components) run(ctx context.Context, log logr.Logger) error {
	stopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	var loops errgroup.Group
	for _, l := range c.loops {
		loops.Go(func() error {
			err := l.run(loopCtx)
			if loopCtx.Err() == nil { // on its own: stop the rest
				if err == nil {
					err = errors.New("returned before shutdown")
				}
				err = fmt.Errorf("%s: %w", l.name, err)
				stop(err)
				return err
			}
			if err != nil {
				log.Error(err, "Saving the state at shutdown")
				return fmt.Errorf("saving the state at shutdown: %w", err)
			}
			return nil
		})
	}
	servers, srvCtx := errgroup.WithContext(stopCtx)
	for _, s := range c.servers {
		servers.Go(func() error { return s.run(srvCtx) })
	}
	for _, b := range c.background {
		go func() { _ = b.run(srvCtx) }()
	}
	<-srvCtx.Done()
	if ctx.Err() != nil {
		log.Info("Shutting down: draining in-flight requests")
	} else {
		log.Error(context.Cause(srvCtx), "A component failed: shutting down")
	}
	failed := servers.Wait()
	stopLoops()
	return errors.Join(failed, loops.Wait())
}

// background are the loops of the Git parts that are on: the job
// source's fetches and the backup's runs.
func background(backup *gitbackup.Backup, jobs *gitjobs.Source) []component {
	var out []component
	if backup != nil {
		out = append(out, component{name: "backup", run: backup.Run})
	}
	if jobs != nil {
		out = append(out, component{name: "job config", run: func(ctx context.Context) error {
			jobs.Run(ctx)
			return nil
		}})
	}
	return out
}
