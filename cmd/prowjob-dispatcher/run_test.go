package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// runRecord records what the components did, in order.
type runRecord struct {
	mu  sync.Mutex
	log []string
}

func (e *runRecord) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

func (e *runRecord) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.log)
}

// server is a component that serves until ctx is done, then drains for a
// while, or fails at once with fail.
func (e *runRecord) server(name string, drain time.Duration, fail error) component {
	return component{name: name, run: func(ctx context.Context) error {
		if fail != nil {
			e.add(name + " failed")
			return fail
		}
		<-ctx.Done()
		time.Sleep(drain)
		e.add(name + " drained")
		return nil
	}}
}

// loop is a component that runs until ctx is done (or returns early with
// early), then saves, returning save.
func (e *runRecord) loop(name string, early, save error) component {
	return component{name: name, run: func(ctx context.Context) error {
		if early != nil {
			e.add(name + " ended early")
			return early
		}
		<-ctx.Done()
		e.add(name + " saved")
		return save
	}}
}

// TestComponentsRun: the servers stop first and drain, the loops stop
// after every server returned and save; the first failure stops the rest.
func TestComponentsRun(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		cancel  bool // cancel ctx, as SIGTERM does
		build   func(e *runRecord) components
		want    []string // the events, in order (drain times order the servers)
		wantErr string
	}{
		{
			name:   "shutdown: servers drain, then the loop saves",
			cancel: true,
			build: func(e *runRecord) components {
				return components{
					servers: []component{e.server("api", 50*time.Millisecond, nil), e.server("webhook", 100*time.Millisecond, nil)},
					loops:   []component{e.loop("dispatch", nil, nil)},
				}
			},
			want: []string{"api drained", "webhook drained", "dispatch saved"},
		},
		{
			name: "a server fails: the others drain, the loop saves, the failure is returned",
			build: func(e *runRecord) components {
				return components{
					servers: []component{e.server("api", 0, boom), e.server("webhook", 50*time.Millisecond, nil)},
					loops:   []component{e.loop("dispatch", nil, nil)},
				}
			},
			want:    []string{"api failed", "webhook drained", "dispatch saved"},
			wantErr: "boom",
		},
		{
			name: "a loop ends early: the servers stop",
			build: func(e *runRecord) components {
				return components{
					servers: []component{e.server("api", 0, nil)},
					loops:   []component{e.loop("dispatch", boom, nil)},
				}
			},
			want:    []string{"dispatch ended early", "api drained"},
			wantErr: "dispatch: boom",
		},
		{
			name:   "a failed save is returned",
			cancel: true,
			build: func(e *runRecord) components {
				return components{
					servers: []component{e.server("api", 0, nil)},
					loops:   []component{e.loop("dispatch", nil, boom)},
				}
			},
			want:    []string{"api drained", "dispatch saved"},
			wantErr: "saving the state at shutdown: boom",
		},
		{
			name:   "background parts are not waited for",
			cancel: true,
			build: func(e *runRecord) components {
				return components{
					servers:    []component{e.server("api", 0, nil)},
					loops:      []component{e.loop("dispatch", nil, nil)},
					background: []component{{name: "backup", run: func(context.Context) error { select {} }}},
				}
			},
			want: []string{"api drained", "dispatch saved"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &runRecord{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tc.build(e).run(ctx, logr.Discard()) }()
			if tc.cancel {
				time.Sleep(20 * time.Millisecond)
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("run did not return; events %q", e.list())
			}
			if got := e.list(); !slices.Equal(got, tc.want) {
				t.Errorf("events %q, want %q", got, tc.want)
			}
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
