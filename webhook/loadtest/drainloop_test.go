package loadtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
)

// drainTTL is how long the drain loop's drains would last, were they not
// undrained at the next operation.
const drainTTL = time.Hour

// drainableClusters returns the clusters among clusters whose drain would
// strand no job (PreviewDrain, before the measured windows), the manual
// cluster left out: the drain loop drains them without forcing.
func drainableClusters(t *testing.T, d *dispatch.Dispatcher, clusters []string) []string {
	t.Helper()
	var out []string
	for _, c := range clusters {
		plan, err := d.PreviewDrain(context.Background(), drainRequest(c))
		if errors.Is(err, dispatch.ErrInvalid) {
			continue // a manual cluster
		}
		if err != nil {
			t.Fatalf("previewing the drain of %s: %v", c, err)
		}
		if len(plan.Stranded) == 0 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no cluster of %v can be drained without stranding jobs", clusters)
	}
	return out
}

func drainRequest(cluster string) dispatch.DrainRequest {
	return dispatch.DrainRequest{Cluster: cluster, TTL: drainTTL, Reason: "load test drain loop", By: "loadtest"}
}

// drainStats counts a drain loop's operations.
type drainStats struct {
	drains, undrains, failed int
	took                     []time.Duration // each operation's, Drain's or Undrain's call
	firstErr                 error
}

func (s *drainStats) add(o drainStats) {
	s.drains += o.drains
	s.undrains += o.undrains
	s.failed += o.failed
	s.took = append(s.took, o.took...)
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
}

func (s drainStats) String() string {
	took := slices.Sorted(slices.Values(s.took))
	out := fmt.Sprintf("%d drains and %d undrains applied, %d failed; each call took p50 %v, max %v",
		s.drains, s.undrains, s.failed, pct(took, 0.5).Round(time.Millisecond), pct(took, 1).Round(time.Millisecond))
	if s.firstErr != nil {
		out += fmt.Sprintf("; first error: %v", s.firstErr)
	}
	return out
}

// drainLoop drains a cluster, then undrains it, then drains the next, one
// operation every interval, through the dispatcher's Go API as the HTTP
// API's handlers call it.
type drainLoop struct {
	cancel context.CancelFunc
	done   chan drainStats
}

// startDrainLoop starts a drain loop over clusters. moving counts the
// operations started plus those finished, so it is odd while one runs.
func startDrainLoop(d *dispatch.Dispatcher, clusters []string, every time.Duration, moving *atomic.Int64) *drainLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &drainLoop{cancel: cancel, done: make(chan drainStats, 1)}
	go func() {
		var st drainStats
		drained, next := "", 0
		op := func() {
			moving.Add(1)
			defer moving.Add(1)
			t0 := time.Now()
			var err error
			if drained == "" {
				c := clusters[next%len(clusters)]
				next++
				if _, err = d.Drain(context.Background(), drainRequest(c)); err == nil {
					drained = c
					st.drains++
				}
			} else {
				if _, err = d.Undrain(context.Background(), drained, "loadtest"); err == nil {
					drained = ""
					st.undrains++
				}
			}
			st.took = append(st.took, time.Since(t0))
			if err != nil {
				st.failed++
				if st.firstErr == nil {
					st.firstErr = err
				}
			}
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				op()
			case <-ctx.Done():
				if drained != "" { // leave no drain for the next window
					op()
				}
				l.done <- st
				return
			}
		}
	}()
	return l
}

// stop stops the loop, undraining the cluster it left drained, and returns
// what it did.
func (l *drainLoop) stop() drainStats {
	l.cancel()
	return <-l.done
}

// counterBy returns the counter's values by label, summed over the other
// labels, or nil when reg has no such counter.
func counterBy(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		out := map[string]float64{}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					key = lp.GetValue()
				}
			}
			out[key] += m.GetCounter().GetValue()
		}
		return out
	}
	return nil
}

// TestLoadWindowsAndDrains runs the harness briefly in alternating windows
// with the drain loop: every round measures each mode, the loop applies
// drains and undoes them, and new jobs are admitted in both of our modes.
func TestLoadWindowsAndDrains(t *testing.T) {
	cfg := runConfig{rate: 200, jobs: 2000, maxInFlight: 256, duration: time.Second, window: 500 * time.Millisecond,
		warmup: 500 * time.Millisecond, drainEvery: 100 * time.Millisecond, newFraction: 0.05, null: true}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	sum := loadTest(t, cfg)
	if len(sum.rounds) != 2 {
		t.Fatalf("%d rounds, want 2", len(sum.rounds))
	}
	for i, p99s := range sum.rounds {
		for _, m := range []mode{modeOurs, modeDraining, modeNull} {
			if p99s[m] <= 0 {
				t.Errorf("round %d: no p99 of %s", i, m)
			}
		}
	}
	for _, m := range []mode{modeOurs, modeDraining} {
		if res := sum.modes[m]; len(res.newLatencies) == 0 || len(res.hitLatencies) == 0 {
			t.Errorf("%s: %d new-job and %d table-job latencies, want some of each", m, len(res.newLatencies), len(res.hitLatencies))
		}
	}
	if d := sum.drains; d.drains == 0 || d.undrains != d.drains || d.failed > 0 {
		t.Errorf("drain loop: %s; want drains, each undone, none failed", d)
	}
	if sum.runs["drain"] < float64(sum.drains.drains) {
		t.Errorf("engine runs %v over the draining windows, want at least one per drain (%d)", sum.runs, sum.drains.drains)
	}
}

func TestRunConfigRounds(t *testing.T) {
	for _, tc := range []struct {
		duration, window time.Duration
		n                int
		length           time.Duration
	}{
		{duration: time.Second, n: 1, length: time.Second},
		{duration: 20 * time.Second, window: 10 * time.Second, n: 2, length: 10 * time.Second},
		{duration: 25 * time.Second, window: 10 * time.Second, n: 3, length: 25 * time.Second / 3},
		{duration: 5 * time.Second, window: 10 * time.Second, n: 1, length: 5 * time.Second},
	} {
		n, length := runConfig{duration: tc.duration, window: tc.window}.rounds()
		if n != tc.n || length != tc.length {
			t.Errorf("-duration %v -window %v: %d rounds of %v, want %d of %v", tc.duration, tc.window, n, length, tc.n, tc.length)
		}
	}
}
