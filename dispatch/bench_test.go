package dispatch

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func BenchmarkLookup(b *testing.B) {
	c := table.NewCache()
	tbl := &table.Table{GeneratedAt: time.Now()}
	for i := 0; i < 30000; i++ {
		tbl.Assignments = append(tbl.Assignments, table.Assignment{Job: fmt.Sprintf("pull-ci-org-repo-main-job-%d", i), Cluster: "build01"})
	}
	c.Replace(tbl)
	d := &Dispatcher{cache: c}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := d.Lookup("pull-ci-org-repo-main-job-12345"); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkAdmitHit measures Admit for a job of the job config the table holds: the admission hot path.
func BenchmarkAdmitHit(b *testing.B) {
	c := table.NewCache()
	c.Replace(&table.Table{Assignments: []table.Assignment{{Job: "j", Cluster: "build01", File: "org/repo/org-repo-main-presubmits.yaml"}}})
	d := &Dispatcher{cache: c, clock: clock.RealClock{}, provisional: map[string]*provisionalJob{}}
	d.in.Store(&inputs{manual: map[string]bool{"vsphere02": true}})
	ctx := context.Background()
	req := AdmissionRequest{Job: "j", Agent: jobs.Agent, Cluster: "default"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if dec, err := d.Admit(ctx, req); err != nil || !dec.Patch {
			b.Fatal(dec, err)
		}
	}
}

// benchmarkSave measures saving after one delta assignment on a
// 50,000-row table, with save (the whole state file) or saveJournal.
func benchmarkSave(b *testing.B, save func(*Dispatcher) error) {
	c := table.NewCache()
	tbl := &table.Table{GeneratedAt: time.Now()}
	for i := range 50000 {
		tbl.Assignments = append(tbl.Assignments, table.Assignment{
			Job: fmt.Sprintf("pull-ci-org-repo-main-job-%05d", i), Cluster: "build01", Reason: table.ReasonBalanced,
			Detail: "balanced among 9 usable clusters", File: "org/repo/org-repo-main-presubmits.yaml", Demand: 12, AssignedAt: tbl.GeneratedAt,
		})
	}
	c.Replace(tbl)
	s, err := store.NewBackend(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	d := &Dispatcher{cache: c, state: s, unsaved: map[string]table.Assignment{}}
	if err := d.save(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := table.Assignment{Job: fmt.Sprintf("pull-ci-new-%d", i%100), Cluster: "build02", Reason: table.ReasonBalanced}
		d.mu.Lock()
		d.cache.Set(a)
		d.unsaved[a.Job] = a
		d.mu.Unlock()
		if err := save(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSaveStateFile(b *testing.B) { benchmarkSave(b, (*Dispatcher).save) }
func BenchmarkSaveJournal(b *testing.B)   { benchmarkSave(b, (*Dispatcher).saveJournal) }

// BenchmarkNewFromSharedTable measures a replica's start on a 50,000-row
// shared table (Options.DeferInputs): from New to serving lookups, before
// the job config is read.
func BenchmarkNewFromSharedTable(b *testing.B) {
	tbl := &table.Table{GeneratedAt: time.Now()}
	for i := range 50000 {
		tbl.Assignments = append(tbl.Assignments, table.Assignment{
			Job: fmt.Sprintf("pull-ci-org-repo-main-job-%05d", i), Cluster: "build01", Reason: table.ReasonBalanced,
			Detail: "balanced among 9 usable clusters", File: "org/repo/org-repo-main-presubmits.yaml", Demand: 12, AssignedAt: tbl.GeneratedAt,
		})
	}
	opts := Options{
		DispatcherConfigPath: "unread.yaml", ClusterConfigPath: "unread.yaml", JobConfigDir: "unread",
		DeferInputs: true,
		Demand:      nopDemand{},
	}
	b.ReportAllocs()
	for b.Loop() {
		d, err := New(context.Background(), opts, sharedTable{state.Memory{}, &state.State{Table: tbl}})
		if err != nil {
			b.Fatal(err)
		}
		if !d.Status().Ready {
			b.Fatal("not ready")
		}
	}
}

// sharedTable is a state that holds a table and no other replica.
type sharedTable struct {
	state.Memory
	st *state.State
}

func (s sharedTable) Load(context.Context) (*state.State, error) { return s.st, nil }
func (sharedTable) Watch(state.Watcher)                          {}

type nopDemand struct{}

func (nopDemand) Demand(context.Context) (map[string]float64, error) { return nil, nil }

// BenchmarkAdmitNewDuringPlan measures the admission of new jobs on the
// openshift/release fixture, at rest and while plans run back to back: each
// a what-if of the dispatcher config with 190 more group path regexes (no
// literal prefix, so each is matched against every job file); p99-ns is
// the 99th percentile of one admission.
func BenchmarkAdmitNewDuringPlan(b *testing.B) {
	ctx := context.Background()
	cfg, err := config.LoadDispatcher(filepath.Join(releaseFixture, "_config.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	g := cfg.Groups["app.ci"]
	for i := range 190 {
		g.Paths = append(g.Paths, fmt.Sprintf(`no-such-file-%03d\.yaml$`, i))
	}
	cfg.Groups["app.ci"] = g
	proposed, err := cfg.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for _, planning := range []bool{false, true} {
		name := "at rest"
		if planning {
			name = "during plans"
		}
		b.Run(name, func(b *testing.B) {
			d, err := New(ctx, Options{
				DispatcherConfigPath: filepath.Join(releaseFixture, "_config.yaml"), ClusterConfigPath: filepath.Join(releaseFixture, "_clusters.yaml"),
				JobConfigDir: filepath.Join(releaseFixture, "jobs"), Demand: nopDemand{},
			}, state.Memory{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := d.Dispatch(ctx); err != nil {
				b.Fatal(err)
			}
			stop, stopped := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(stopped)
				for planning {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := d.WhatIf(ctx, WhatIfRequest{DispatcherConfig: proposed}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				if _, err := d.Admit(ctx, AdmissionRequest{Job: fmt.Sprintf("rehearse-%d-new-job", i), Agent: jobs.Agent}); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			b.StopTimer()
			close(stop)
			<-stopped
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*99/100]), "p99-ns")
			_ = d.flush()
		})
	}
}
