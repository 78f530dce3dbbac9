package dispatch

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
)

// waitBound fails a test whose call waits on something it must not:
// reached only when the call is blocked, never a timing measurement.
const waitBound = 10 * time.Second

// TestAdmissionDoesNotWaitForARun: while a plan, a drain preview, a full
// dispatch or a drain computes its engine run, a new job is admitted and
// the status is read; a committed run keeps the new job's row.
func TestAdmissionDoesNotWaitForARun(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		run     func(d *Dispatcher) error
		drained string // the cluster the run drains: a row admitted there moves
	}{
		{name: "plan", run: func(d *Dispatcher) error {
			_, err := d.WhatIf(ctx, WhatIfRequest{DispatcherConfig: mustRead(t, "testdata/dispatcher.yaml")})
			return err
		}},
		{name: "drain preview", run: func(d *Dispatcher) error {
			_, err := d.PreviewDrain(ctx, DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "r", Force: true})
			return err
		}},
		{name: "dispatch", run: func(d *Dispatcher) error {
			_, err := d.Dispatch(ctx)
			return err
		}},
		{name: "drain", drained: "build03", run: func(d *Dispatcher) error {
			_, err := d.Drain(ctx, DrainRequest{Cluster: "build03", TTL: time.Hour, Reason: "r", Force: true})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.newDispatcher(e.options())
			e.dispatch(d)
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			d.onRun = func(context.Context) {
				once.Do(func() {
					close(entered)
					<-release
				})
			}
			ran := make(chan error, 1)
			go func() { ran <- tc.run(d) }()
			<-entered

			admitted := make(chan Decision, 1)
			go func() {
				dec, err := d.Admit(ctx, AdmissionRequest{Job: "rehearse-new-job", Agent: jobs.Agent, Cluster: "default"})
				if err != nil {
					t.Errorf("Admit: %v", err)
				}
				_ = d.Status()
				admitted <- dec
			}()
			var dec Decision
			select {
			case dec = <-admitted:
			case <-time.After(waitBound):
				close(release)
				t.Fatalf("a new job's admission waited for the %s's engine run", tc.name)
			}
			close(release)
			if err := <-ran; err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			a, ok := d.Lookup("rehearse-new-job")
			switch {
			case !ok:
				t.Errorf("after the %s the new job admitted meanwhile has no row", tc.name)
			case dec.Cluster == tc.drained && a.Cluster == tc.drained:
				t.Errorf("after the %s the new job's row is still on the drained %s", tc.name, tc.drained)
			case dec.Cluster != tc.drained && a.Cluster != dec.Cluster:
				t.Errorf("after the %s the new job's row is %+v, want the admitted cluster %q", tc.name, a, dec.Cluster)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestPreviewTimeout: a plan past Options.PreviewTimeout, computing or
// waiting for the preview slot, wraps ErrTimedOut and says what to do.
func TestPreviewTimeout(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	opts := e.options()
	opts.PreviewTimeout = 50 * time.Millisecond
	d := e.newDispatcher(opts)
	e.dispatch(d)

	entered, release := make(chan struct{}), make(chan struct{})
	d.onRun = func(ctx context.Context) {
		close(entered)
		<-release
		// Held past its deadline: a context's Err is set by a timer that
		// may fire a little after the deadline, so wait for it.
		<-ctx.Done()
	}
	first := make(chan error, 1)
	go func() {
		_, err := d.WhatIf(ctx, WhatIfRequest{})
		first <- err
	}()
	<-entered
	// The slot is held by the first plan: the second gives up waiting.
	_, err := d.WhatIf(ctx, WhatIfRequest{})
	if !errors.Is(err, ErrTimedOut) {
		t.Errorf("a plan waiting for the slot: err = %v, want ErrTimedOut", err)
	}
	close(release)
	// The first plan's deadline passed while it was held: it gives up too.
	if err := <-first; !errors.Is(err, ErrTimedOut) {
		t.Errorf("a plan past its deadline: err = %v, want ErrTimedOut", err)
	}
	d.onRun = nil
	if _, err := d.WhatIf(ctx, WhatIfRequest{}); err != nil {
		t.Errorf("a plan within its deadline, the slot free again: %v", err)
	}
}
