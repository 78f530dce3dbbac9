package dispatch

import (
	"context"
	"errors"
	"fmt"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// dispatchedJobs are the kubernetes jobs of testdata/jobs (periodic-jenkins-legacy is not dispatched).
var dispatchedJobs = []string{
	"branch-ci-org-repo-main-images", "periodic-import-to-build03", "periodic-kubevirt-e2e",
	"periodic-nightly-1", "periodic-nightly-2", "pull-ci-org-repo-main-e2e-arm64",
	"pull-ci-org-repo-main-e2e-gcp", "pull-ci-org-repo-main-lint", "pull-ci-org-repo-main-unit",
}

func TestDispatchBuildsTable(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	if s := d.Status(); s.Ready || s.Reason == "" {
		t.Fatalf("status before the first dispatch: %+v, want not ready with a reason", s)
	}
	report, err := d.Dispatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if report.Jobs != len(dispatchedJobs) {
		t.Errorf("report has %d jobs, want %d", report.Jobs, len(dispatchedJobs))
	}
	for _, job := range dispatchedJobs {
		mustLookup(t, d, job)
	}
	if _, ok := d.Lookup("periodic-jenkins-legacy"); ok {
		t.Error("a jenkins job got a row")
	}
	for job, want := range map[string]table.Reason{
		"pull-ci-org-repo-main-e2e-gcp":   table.ReasonPinned,
		"periodic-import-to-build03":      table.ReasonGroupJob,
		"periodic-kubevirt-e2e":           table.ReasonKVM,
		"pull-ci-org-repo-main-e2e-arm64": table.ReasonCapability,
	} {
		if a := mustLookup(t, d, job); a.Reason != want {
			t.Errorf("%s: reason %s, want %s", job, a.Reason, want)
		}
	}
	if a := mustLookup(t, d, "pull-ci-org-repo-main-unit"); a.Demand != 900 {
		t.Errorf("demand from the demand file not used: %+v", a)
	}
	s := d.Status()
	if !s.Ready || s.TableSize != len(dispatchedJobs) || !s.LastDispatch.Equal(e.clock.Now()) || s.LastError != "" {
		t.Errorf("status after dispatch: %+v", s)
	}
	// A ProwJob created on a manual cluster stays there; on another cluster it gets its row.
	if dec, err := d.Admit(context.Background(), AdmissionRequest{Job: "pull-ci-org-repo-main-unit", Agent: jobs.Agent, Cluster: "vsphere02"}); err != nil ||
		dec != (Decision{Cluster: "vsphere02", Reason: table.ReasonManual}) {
		t.Errorf("admitting on manual vsphere02: %+v, %v", dec, err)
	}
	row := mustLookup(t, d, "pull-ci-org-repo-main-unit")
	if dec, err := d.Admit(context.Background(), AdmissionRequest{Job: "pull-ci-org-repo-main-unit", Agent: jobs.Agent, Cluster: "elsewhere"}); err != nil ||
		dec != (Decision{Cluster: row.Cluster, Reason: row.Reason, Patch: true}) {
		t.Errorf("admitting on another cluster: %+v, %v; want the row %+v patched", dec, err, row)
	}
	if got := e.metricValue("prowjob_dispatcher_dispatch_runs_total", "result", resultSuccess); got != 1 {
		t.Errorf("dispatch_runs_total{result=success} = %v", got)
	}
	if got := e.metricValue("prowjob_dispatcher_table_size"); got != float64(len(dispatchedJobs)) {
		t.Errorf("table_size = %v", got)
	}
	if got := e.metricValue("prowjob_dispatcher_last_successful_dispatch_timestamp_seconds"); got != float64(e.clock.Now().Unix()) {
		t.Errorf("last successful dispatch = %v", got)
	}
	if got := e.metricValue("prowjob_dispatcher_cluster_jobs"); got != float64(len(dispatchedJobs)) {
		t.Errorf("per-cluster job gauges sum to %v, want %d", got, len(dispatchedJobs))
	}
	for _, c := range d.Clusters() { // the whole load against the target, with the balanced part
		if got := e.metricValue("prowjob_dispatcher_cluster_demand", "cluster", c.Name); got != c.Demand {
			t.Errorf("cluster_demand{cluster=%q} = %v, want %v", c.Name, got, c.Demand)
		}
		wantBalanced, want := c.BalancedDemand, c.Target
		if c.Role != "build" {
			wantBalanced, want = -1, -1 // no series: service and manual clusters are never balanced onto
		}
		if got := e.metricValue("prowjob_dispatcher_cluster_balanced_demand", "cluster", c.Name); got != wantBalanced {
			t.Errorf("cluster_balanced_demand{cluster=%q} = %v, want %v", c.Name, got, wantBalanced)
		}
		if got := e.metricValue("prowjob_dispatcher_cluster_target", "cluster", c.Name); got != want {
			t.Errorf("cluster_target{cluster=%q} = %v, want %v", c.Name, got, want)
		}
	}
	if got := e.metricValue("prowjob_dispatcher_dispatch_duration_seconds"); got != 1 {
		t.Errorf("dispatch duration observations = %v, want 1", got)
	}
	st, err := store.ReadDir(e.stateDir)
	if err != nil {
		t.Fatalf("state not saved by Dispatch: %v", err)
	}
	if !reflect.DeepEqual(st.Table, d.cache.Snapshot()) {
		t.Error("saved table differs from the table in force")
	}
}

// TestStartFromBuildFarm: without state, the dispatcher config's buildFarm is
// the previous assignment, so a job of a listed file starts on its cluster.
func TestStartFromBuildFarm(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	x, err := d.Explain("branch-ci-org-repo-main-images")
	if err != nil {
		t.Fatal(err)
	}
	if a := x.Assignment; a.Cluster != "build03" {
		t.Errorf("buildFarm job placed on %s, want build03: %+v", a.Cluster, a)
	}
}

func TestRestartKeepsAssignmentsAndOverrides(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	delta, err := d.Admit(ctx, AdmissionRequest{Job: "pull-ci-new-job", Agent: jobs.Agent, Labels: map[string]string{"capability/arm64": "arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	if delta.Cluster != "build01" {
		t.Errorf("arm64 job delta-assigned to %s, want build01 (the only arm64 cluster)", delta.Cluster)
	}
	from := mustLookup(t, d, "pull-ci-org-repo-main-lint").Cluster
	to := "build02"
	if from == to {
		to = "build01"
	}
	if _, err := d.Reschedule(ctx, RescheduleRequest{Job: "pull-ci-org-repo-main-lint", Cluster: to, TTL: 72 * time.Hour, Reason: "node trouble", By: "alice"}); err != nil {
		t.Fatal(err)
	}
	before := d.cache.Snapshot()
	overrides := d.Overrides()

	again := e.newDispatcher(e.options())
	if s := again.Status(); !s.Ready || s.TableSize != len(before.Assignments) || s.LastDispatch.IsZero() {
		t.Errorf("status after restart: %+v", s)
	}
	if got := again.cache.Snapshot(); !reflect.DeepEqual(got, before) {
		t.Errorf("table after restart differs:\n got %+v\nwant %+v", got, before)
	}
	if got := again.Overrides(); !reflect.DeepEqual(got, overrides) || len(got) != 1 {
		t.Errorf("overrides after restart %+v, want %+v", got, overrides)
	}
	if a := mustLookup(t, again, "pull-ci-org-repo-main-lint"); a.Cluster != to || a.Reason != table.ReasonOverride {
		t.Errorf("overridden job after restart: %+v", a)
	}
	if a := mustLookup(t, again, "pull-ci-new-job"); a.Cluster != delta.Cluster {
		t.Errorf("delta job after restart: %+v", a)
	}
	// The delta job's requirements survived too: a reschedule onto a
	// cluster without arm64 is refused.
	if _, err := again.Reschedule(ctx, RescheduleRequest{Job: "pull-ci-new-job", Cluster: "build03", Reason: "test"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("rescheduling the arm64 delta job onto build03 after restart: err %v, want ErrInvalid", err)
	}
	// A full dispatch after the restart keeps the override in force and the delta job's row.
	e.dispatch(again)
	if a := mustLookup(t, again, "pull-ci-org-repo-main-lint"); a.Cluster != to {
		t.Errorf("override lost by the dispatch after restart: %+v", a)
	}
	if a := mustLookup(t, again, "pull-ci-new-job"); a.Cluster != "build01" {
		t.Errorf("delta job after restart and dispatch: %+v, want build01", a)
	}
}

func TestDeltaAssignIsSavedSoon(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	if _, err := d.Admit(context.Background(), AdmissionRequest{Job: "pull-ci-dry", Agent: jobs.Agent, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Lookup("pull-ci-dry"); ok {
		t.Fatal("dry-run Assign recorded the job")
	}
	a, err := d.Admit(context.Background(), AdmissionRequest{Job: "pull-ci-delta", Agent: jobs.Agent})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.metricValue("prowjob_dispatcher_delta_assignments_total"); got != 1 {
		t.Errorf("delta_assignments_total = %v, want 1", got)
	}
	eventually(t, "the delta assignment to be saved", func() bool {
		st, err := store.ReadDir(e.stateDir)
		if err != nil {
			return false
		}
		row, ok := st.Table.ByJob()["pull-ci-delta"]
		return ok && row.Cluster == a.Cluster
	})
	st, _ := store.ReadDir(e.stateDir)
	if _, ok := st.Table.ByJob()["pull-ci-dry"]; ok {
		t.Error("dry-run assignment saved")
	}
}

func TestCorruptStateIsRebuilt(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"truncated", `{"version":1,"checksum":"sha256:ab","state":{"table":{"assignm`},
		{"garbage", "\x00\x01not json"},
		{"wrong checksum", `{"version":1,"checksum":"sha256:00","state":{}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			writeFile(t, e.stateDir+"/"+store.FileName, tc.content)
			d := e.newDispatcher(e.options())
			if got := e.metricValue("prowjob_dispatcher_state_load_errors_total"); got != 1 {
				t.Errorf("state_load_errors_total = %v, want 1", got)
			}
			if d.Status().Ready {
				t.Error("ready without a table")
			}
			e.dispatch(d)
			if !d.Status().Ready {
				t.Error("not ready after dispatch")
			}
			if _, err := store.ReadDir(e.stateDir); err != nil {
				t.Errorf("state file not rewritten: %v", err)
			}
		})
	}
}

func TestUnusableInputsKeepTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(e *env)
		wantErr string
	}{
		{"every cluster blocked", func(e *env) { copyFile(e.t, "testdata/clusters-all-blocked.yaml", e.clusterConfig) }, "no usable cluster"},
		{"no cluster", func(e *env) { writeFile(e.t, e.clusterConfig, "{}\n") }, ""}, // the loader may refuse it itself
		{"cluster config gone", func(e *env) { _ = os.Remove(e.clusterConfig) }, "clusters.yaml"},
		{"dispatcher config invalid", func(e *env) { writeFile(e.t, e.dispatcherConfig, "default: [not, a, string]\n") }, "dispatcher.yaml"},
		{"job config empty", func(e *env) { _ = os.RemoveAll(e.jobDir); _ = os.MkdirAll(e.jobDir, 0o755) }, "no jobs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.newDispatcher(e.options())
			e.dispatch(d)
			before := d.cache.Snapshot()
			tc.breakIt(e)
			e.clock.SetTime(e.clock.Now().Add(time.Hour))
			_, err := d.Dispatch(context.Background())
			if err == nil {
				t.Fatal("Dispatch on unusable inputs succeeded")
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q lacks %q", err, tc.wantErr)
			}
			if got := d.cache.Snapshot(); !reflect.DeepEqual(got, before) {
				t.Error("the table in force changed")
			}
			if got := e.metricValue("prowjob_dispatcher_dispatch_runs_total", "result", resultSuccess); got != 1 {
				t.Errorf("successful runs = %v, want 1", got)
			}
			if got := e.metricValue("prowjob_dispatcher_dispatch_runs_total"); got != 2 {
				t.Errorf("runs = %v, want 2", got)
			}
			s := d.Status()
			if !s.Ready || s.LastError != err.Error() || !s.LastDispatch.Equal(before.GeneratedAt) {
				t.Errorf("status %+v", s)
			}
			st, err := store.ReadDir(e.stateDir)
			if err != nil || !reflect.DeepEqual(st.Table, before) {
				t.Errorf("saved table changed: %v", err)
			}
			// Assign keeps working on the table in force.
			if _, err := d.Admit(context.Background(), AdmissionRequest{Job: "pull-ci-during-outage", Agent: jobs.Agent}); err != nil {
				t.Errorf("Assign after a failed dispatch: %v", err)
			}
		})
	}
}

func TestNewFailsOnBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(e *env, o *Options)
		want   string
	}{
		{"missing dispatcher config", func(e *env, o *Options) { o.DispatcherConfigPath = e.dir + "/nope.yaml" }, "nope.yaml"},
		{"missing job config", func(e *env, o *Options) { o.JobConfigDir = e.dir + "/nojobs" }, "nojobs"},
		{"bad schedule", func(e *env, o *Options) { o.Schedule = "every tuesday" }, `schedule "every tuesday"`},
		{"no cluster config path", func(e *env, o *Options) { o.ClusterConfigPath = "" }, "no cluster config path"},
		{"overlapping group paths", func(e *env, o *Options) {
			writeFile(t, e.dispatcherConfig, "default: build01\ngroups:\n  build01:\n    paths: ['^org/']\n  build03:\n    paths: ['presubmits']\n")
		}, `groups["build03"].paths[0]: path regex "presubmits" overlaps groups["build01"].paths[0] "^org/"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			o := e.options()
			tc.mutate(e, &o)
			_, err := New(context.Background(), o, e.files())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestExplainAndClusters(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	x, err := d.Explain("pull-ci-org-repo-main-e2e-gcp")
	if err != nil {
		t.Fatal(err)
	}
	if x.Assignment != mustLookup(t, d, "pull-ci-org-repo-main-e2e-gcp") {
		t.Errorf("explanation's assignment %+v differs from the table", x.Assignment)
	}
	if _, err := d.Explain("no-such-job"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Explain of an unknown job: %v, want ErrNotFound", err)
	}
	total := 0
	for _, c := range d.Clusters() {
		total += c.Jobs
	}
	if total != len(dispatchedJobs) {
		t.Errorf("cluster loads count %d jobs, want %d", total, len(dispatchedJobs))
	}
}

// TestDeltaSavesWriteTheJournal: an assignment at admission is saved by
// writing the journal alone (the state file, holding the whole table, is not
// rewritten), and a restart folds the journal into a new state file.
func TestDeltaSavesWriteTheJournal(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	statePath := filepath.Join(e.stateDir, store.FileName)
	before, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := d.Admit(context.Background(), AdmissionRequest{Job: "pull-ci-journaled", Agent: jobs.Agent})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the journal to hold the delta assignment", func() bool {
		st, err := store.ReadDir(e.stateDir)
		return err == nil && st.JournalRows == 1 && st.Table.ByJob()["pull-ci-journaled"].Cluster == a.Cluster
	})
	if after, _ := os.ReadFile(statePath); string(after) != string(before) {
		t.Error("a delta assignment rewrote the state file")
	}

	again := e.newDispatcher(e.options())
	if got := mustLookup(t, again, "pull-ci-journaled"); got.Cluster != a.Cluster {
		t.Errorf("after restart: %+v, want %s", got, a.Cluster)
	}
	st, err := store.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Table.ByJob()["pull-ci-journaled"]; !ok {
		t.Error("the restart did not fold the journal into the state file")
	}
	if st, _ := store.ReadDir(e.stateDir); st.JournalRows != 0 {
		t.Errorf("after the fold the journal still applies %d rows", st.JournalRows)
	}
}

// TestJournalCompaction: once the journal outgrows its bound, a journal save
// writes the state file instead and the journal starts over.
func TestJournalCompaction(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	for i := range minCompactRows + 1 {
		if _, err := d.Admit(context.Background(), AdmissionRequest{Job: fmt.Sprintf("pull-ci-new-%04d", i), Agent: jobs.Agent}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.saveJournal(); err != nil {
		t.Fatal(err)
	}
	st, err := store.ReadFile(filepath.Join(e.stateDir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Table.ByJob()[fmt.Sprintf("pull-ci-new-%04d", minCompactRows)]; !ok {
		t.Errorf("a journal of %d rows was not compacted into the state file", minCompactRows+1)
	}
	d.mu.Lock()
	left := len(d.unsaved)
	d.mu.Unlock()
	if left != 0 {
		t.Errorf("%d rows still unsaved after compaction", left)
	}
}

// TestStatusCountsTheLastDispatchMoves: Status says how many jobs the last
// full dispatch of this process moved, and nothing before the first.
func TestStatusCountsTheLastDispatchMoves(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	if m := d.Status().LastDispatchMoves; m != nil {
		t.Fatalf("moves %d before any dispatch, want none", *m)
	}
	e.dispatch(d)
	data, err := os.ReadFile(e.clusterConfig)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.clusterConfig, strings.Replace(string(data), "- name: build03\n", "- name: build03\n  blocked: true\n", 1))
	rep, err := d.Dispatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := d.Status().LastDispatchMoves
	if len(rep.Moves) == 0 || m == nil || *m != len(rep.Moves) {
		t.Errorf("Status moves %v after a dispatch that moved %d jobs off the blocked build03", m, len(rep.Moves))
	}
}

// failingState is a state whose Load fails with err.
type failingState struct {
	state.Memory
	err error
}

func (f failingState) Load(context.Context) (*state.State, error) { return nil, f.err }

// TestNewOnItsState: New loads its state and watches it; a state that
// cannot be read fails New unless it is only missing or damaged.
func TestNewOnItsState(t *testing.T) {
	for _, tc := range []struct {
		name    string
		st      state.Backend
		wantErr string
	}{
		{name: "memory"},
		{name: "missing", st: failingState{err: fmt.Errorf("state.json: %w", fs.ErrNotExist)}},
		{name: "damaged", st: failingState{err: state.Damaged(errors.New("state.json: checksum mismatch"))}},
		{name: "unreachable", st: failingState{err: errors.New("connection refused")}, wantErr: "loading the state from memory: connection refused"},
		{name: "none", st: nil, wantErr: "no state backend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			st := tc.st
			if tc.name == "memory" {
				st = state.Memory{}
			}
			d, err := New(context.Background(), e.options(), st)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("New: %v", err)
			}
			if !d.Leading() {
				t.Error("a dispatcher on a state of one replica does not lead: its state's Watch was not called")
			}
			if tc.name == "damaged" && len(d.Status().Recovery) != 1 {
				t.Errorf("status recovery %q, want the damage reported", d.Status().Recovery)
			}
		})
	}
}
