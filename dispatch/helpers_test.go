package dispatch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// env is one dispatcher's files, copied from testdata into a temp dir so tests can change them.
type env struct {
	t                                    *testing.T
	dir, dispatcherConfig, clusterConfig string
	jobDir, stateDir, demandFile         string
	clock                                *clocktesting.FakePassiveClock
	reg                                  *prometheus.Registry
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{
		t: t, dir: dir,
		dispatcherConfig: filepath.Join(dir, "config", "dispatcher.yaml"),
		clusterConfig:    filepath.Join(dir, "config", "clusters.yaml"),
		jobDir:           filepath.Join(dir, "jobs"),
		stateDir:         filepath.Join(dir, "state"),
		demandFile:       filepath.Join(dir, "demand.yaml"),
		clock:            clocktesting.NewFakePassiveClock(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)),
	}
	copyFile(t, "testdata/dispatcher.yaml", e.dispatcherConfig)
	copyFile(t, "testdata/clusters.yaml", e.clusterConfig)
	copyFile(t, "testdata/demand.yaml", e.demandFile)
	if err := filepath.WalkDir("testdata/jobs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("testdata/jobs", p)
		copyFile(t, p, filepath.Join(e.jobDir, rel))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(data))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// options are the env's Options with demand from the demand file; mutate them before newDispatcher.
func (e *env) options() Options {
	e.reg = prometheus.NewRegistry()
	return Options{
		DispatcherConfigPath: e.dispatcherConfig, ClusterConfigPath: e.clusterConfig,
		JobConfigDir: e.jobDir,
		Demand:       demand.File{Path: e.demandFile},
		Registerer:   e.reg, Logger: testLogger(e.t), Clock: e.clock,
		PersistDelay: 10 * time.Millisecond,
	}
}

// files is the file store of the env's state dir.
func (e *env) files() state.Backend {
	e.t.Helper()
	b, err := store.NewBackend(e.stateDir)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// newDispatcher starts a dispatcher on the env's state dir.
func (e *env) newDispatcher(opts Options) *Dispatcher {
	e.t.Helper()
	return e.newDispatcherOn(opts, e.files())
}

// newDispatcherOn starts a dispatcher on st.
func (e *env) newDispatcherOn(opts Options, st state.Backend) *Dispatcher {
	e.t.Helper()
	d, err := New(context.Background(), opts, st)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() { _ = d.flush() }) // no coalesced save may outlive the test
	return d
}

func (e *env) dispatch(d *Dispatcher) {
	e.t.Helper()
	if _, err := d.Dispatch(context.Background()); err != nil {
		e.t.Fatalf("Dispatch: %v", err)
	}
}

// testLogger logs through t until the test ends, then discards.
func testLogger(t *testing.T) logr.Logger {
	var mu sync.Mutex
	done := false
	t.Cleanup(func() { mu.Lock(); done = true; mu.Unlock() })
	return funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Log(prefix, args)
		}
	}, funcr.Options{})
}

// eventually polls cond until it holds or a generous bound passes; it asserts a result, not a timing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustLookup(t *testing.T, d *Dispatcher, job string) table.Assignment {
	t.Helper()
	a, ok := d.Lookup(job)
	if !ok {
		t.Fatalf("job %q not in the table", job)
	}
	return a
}

// metricValue returns the value of the metric name (a counter, gauge or the
// sample count of a histogram) whose labels include the given pairs, summed
// over matching series; -1 when no series matches.
func (e *env) metricValue(name string, labels ...string) float64 {
	e.t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	total, found := 0.0, false
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			found = true
			switch {
			case m.Counter != nil:
				total += m.GetCounter().GetValue()
			case m.Gauge != nil:
				total += m.GetGauge().GetValue()
			case m.Histogram != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if !found {
		return -1
	}
	return total
}

// admit admits a ProwJob of job with no labels, which counts it toward
// demand counted from admissions; a table not ready yet is no error here.
func admit(t testing.TB, d *Dispatcher, job string) Decision {
	t.Helper()
	dec, err := d.Admit(context.Background(), AdmissionRequest{Job: job, Agent: jobs.Agent})
	if err != nil && !errors.Is(err, ErrNotReady) {
		t.Fatalf("admitting %s: %v", job, err)
	}
	return dec
}
