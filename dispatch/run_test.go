package dispatch

import (
	"context"
	"fmt"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// startRun runs d.Run until the test ends and returns a func that stops it and returns Run's error.
func startRun(t *testing.T, d *Dispatcher) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestRunDispatchesAtStartAndOnTrigger(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	stop := startRun(t, d)
	eventually(t, "the initial dispatch", func() bool { return d.Status().Ready })
	first := d.Status().LastDispatch
	e.clock.SetTime(e.clock.Now().Add(time.Hour))
	d.Trigger()
	eventually(t, "the triggered dispatch", func() bool { return d.Status().LastDispatch.After(first) })
	admit(t, d, "x") // not counted: the demand comes from a file
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := store.ReadDir(e.stateDir); err != nil {
		t.Errorf("no state after Run: %v", err)
	}
}

// TestRunSurvivesFailingDispatch: a failing dispatch neither ends Run nor wipes the table.
func TestRunSurvivesFailingDispatch(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	rows := d.cache.Len()
	copyFile(t, "testdata/clusters-all-blocked.yaml", e.clusterConfig)
	stop := startRun(t, d)
	d.Trigger()
	eventually(t, "the failed dispatch to be recorded", func() bool { return d.Status().LastError != "" })
	if d.cache.Len() != rows {
		t.Errorf("table has %d rows after a failed dispatch, want %d", d.cache.Len(), rows)
	}
	copyFile(t, "testdata/clusters.yaml", e.clusterConfig)
	d.Trigger()
	eventually(t, "a good dispatch after the failure", func() bool { return d.Status().LastError == "" })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRunWatchesConfigs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(e *env)
		done   func(d *Dispatcher) bool
	}{
		{
			name: "dispatcher config",
			change: func(e *env) {
				data, _ := os.ReadFile("testdata/dispatcher.yaml")
				writeFile(e.t, e.dispatcherConfig, strings.Replace(string(data),
					"    - periodic-import-to-build03\n", "    - periodic-import-to-build03\n    - periodic-nightly-1\n", 1))
			},
			done: func(d *Dispatcher) bool {
				a, _ := d.Lookup("periodic-nightly-1")
				return a.Cluster == "build03" && a.Reason == table.ReasonGroupJob
			},
		},
		{
			name: "cluster config",
			change: func(e *env) {
				data, _ := os.ReadFile("testdata/clusters.yaml")
				writeFile(e.t, e.clusterConfig, strings.Replace(string(data), "- name: build03\n  capacity: 50\n", "- name: build03\n  capacity: 50\n  capabilities: [arm64]\n", 1))
			},
			done: func(d *Dispatcher) bool {
				for _, c := range d.Clusters() {
					if c.Name == "build03" {
						return strings.Contains(strings.Join(c.Capabilities, ","), "arm64")
					}
				}
				return false
			},
		},
		{
			name: "new job file in a new dir",
			change: func(e *env) {
				writeFile(e.t, filepath.Join(e.jobDir, "other", "proj", "other-proj-main-presubmits.yaml"), `presubmits:
  other/proj:
  - name: pull-ci-other-proj-main-unit
    agent: kubernetes
    always_run: true
    branches: [^main$]
    context: ci/prow/unit
    spec:
      containers:
      - image: ci-operator:latest
        command: [ci-operator]
`)
			},
			done: func(d *Dispatcher) bool {
				a, ok := d.Lookup("pull-ci-other-proj-main-unit")
				return ok && a.File != ""
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			opts := e.options()
			opts.WatchDebounce = 50 * time.Millisecond
			d := e.newDispatcher(opts)
			e.dispatch(d)
			startRun(t, d)
			// Run's watcher is set up shortly after start; keep making the
			// (idempotent) change until a dispatch picks it up.
			eventually(t, "the change to be dispatched", func() bool {
				if tc.done(d) {
					return true
				}
				tc.change(e)
				time.Sleep(100 * time.Millisecond)
				return tc.done(d)
			})
		})
	}
}

// TestRunWatchesConfigMapSwap: a ConfigMap mount replaces its files by
// swapping the "..data" symlink; the watcher must see that.
func TestRunWatchesConfigMapSwap(t *testing.T) {
	e := newEnv(t)
	mount := filepath.Join(e.dir, "mount")
	v1 := filepath.Join(mount, "..2026_11_01_v1")
	copyFile(t, e.dispatcherConfig, filepath.Join(v1, "dispatcher.yaml"))
	must(t, os.Symlink("..2026_11_01_v1", filepath.Join(mount, "..data")))
	must(t, os.Symlink("..data/dispatcher.yaml", filepath.Join(mount, "dispatcher.yaml")))
	opts := e.options()
	opts.DispatcherConfigPath = filepath.Join(mount, "dispatcher.yaml")
	opts.WatchDebounce = 50 * time.Millisecond
	d := e.newDispatcher(opts)
	e.dispatch(d)
	startRun(t, d)
	data, _ := os.ReadFile(e.dispatcherConfig)
	changed := strings.Replace(string(data), "    - periodic-import-to-build03\n", "    - periodic-import-to-build03\n    - periodic-nightly-2\n", 1)
	version := 1
	eventually(t, "the swapped config to be dispatched", func() bool {
		if a, _ := d.Lookup("periodic-nightly-2"); a.Reason == table.ReasonGroupJob {
			return true
		}
		version++
		dir := fmt.Sprintf("..2026_11_01_v%d", version)
		writeFile(t, filepath.Join(mount, dir, "dispatcher.yaml"), changed)
		tmp := filepath.Join(mount, "..data_tmp")
		must(t, os.Symlink(dir, tmp))
		must(t, os.Rename(tmp, filepath.Join(mount, "..data")))
		time.Sleep(100 * time.Millisecond)
		a, _ := d.Lookup("periodic-nightly-2")
		return a.Reason == table.ReasonGroupJob
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentAssignLookupDuringDispatch runs admissions against full
// dispatches (under -race): every lookup sees a whole table, and every job
// assigned at admission keeps a row.
func TestConcurrentAssignLookupDuringDispatch(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	assigned := make(chan string, 1000)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				for _, job := range dispatchedJobs {
					if _, ok := d.Lookup(job); !ok {
						errs <- fmt.Errorf("lookup of %s missed during dispatch", job)
						return
					}
				}
				name := fmt.Sprintf("pull-ci-delta-%d-%d", g, i)
				if _, err := d.Admit(ctx, AdmissionRequest{Job: name, Agent: jobs.Agent, Labels: map[string]string{"capability/arm64": "arm64"}}); err != nil {
					errs <- err
					return
				}
				assigned <- name
				_ = d.Status()
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 5; i++ {
			if _, err := d.Dispatch(ctx); err != nil {
				errs <- err
			}
			_ = d.Clusters()
		}
	}()
	wg.Wait()
	close(errs)
	close(assigned)
	for err := range errs {
		t.Error(err)
	}
	for name := range assigned {
		if a, ok := d.Lookup(name); !ok || a.Cluster != "build01" {
			t.Errorf("delta job %s after the dispatches: %+v, %v", name, a, ok)
		}
	}
}
