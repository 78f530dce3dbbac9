package kubestate

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine/enginetest"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

var (
	workloadOnce  sync.Once
	workloadTable *table.Table
	workloadErr   error
)

// repoNames and testNames make job names as long and as varied as OpenShift CI's.
var (
	repoNames = []string{"cluster-api-provider-aws", "installer", "origin", "release", "machine-config-operator",
		"cluster-network-operator", "console", "hypershift", "oc", "cluster-etcd-operator", "ovn-kubernetes", "kubernetes"}
	testNames = []string{"e2e-aws-ovn", "e2e-aws-ovn-upgrade", "e2e-gcp-ovn", "unit", "images", "verify",
		"e2e-metal-ipi-ovn-ipv6", "e2e-azure-ovn-serial", "e2e-vsphere-ovn", "lint", "e2e-aws-ovn-techpreview"}
)

// bigRows is how many rows bigTable has.
const bigRows = 50000

// bigTable is a table of 50,000 rows: the engine's table of a generated
// workload (enginetest.Workload; the jobs of other agents have no row),
// its jobs renamed like OpenShift CI's, computed once.
func bigTable(tb testing.TB) *table.Table {
	tb.Helper()
	workloadOnce.Do(func() {
		in := enginetest.Workload(bigRows+bigRows/50, 5000, 12, 6, 1)
		e, err := engine.New(in)
		if err != nil {
			workloadErr = err
			return
		}
		t, _, err := e.Dispatch()
		if err != nil {
			workloadErr = err
			return
		}
		if len(t.Assignments) < bigRows {
			workloadErr = fmt.Errorf("the workload gave %d rows, fewer than %d", len(t.Assignments), bigRows)
			return
		}
		t.Assignments = t.Assignments[:bigRows]
		for i := range t.Assignments {
			t.Assignments[i].Job = realisticName(i)
		}
		t.Sort()
		workloadTable = t
	})
	if workloadErr != nil {
		tb.Fatalf("workload table: %v", workloadErr)
	}
	return copyTable(workloadTable)
}

func realisticName(i int) string {
	return fmt.Sprintf("pull-ci-openshift-%s-release-4.%d-%s-%d", repoNames[i%len(repoNames)], 10+i%9, testNames[(i/7)%len(testNames)], i)
}

func copyTable(t *table.Table) *table.Table {
	if t == nil {
		return nil
	}
	c := *t
	c.Assignments = append([]table.Assignment(nil), t.Assignments...)
	return &c
}

// someProvisional are provisional jobs (rehearsals) for tables.
func someProvisional(n int) []state.Provisional {
	out := make([]state.Provisional, n)
	for i := range out {
		out[i] = state.Provisional{
			Job: jobs.Job{Name: fmt.Sprintf("rehearse-%05d-pull-ci-openshift-release-main-e2e", i), Type: jobs.Presubmit, Agent: jobs.Agent,
				Requirements: jobs.Requirements{Capabilities: []string{"arm64"}}},
			LastAdmitted: enginetest.Now.Add(-1e9 * 3600),
			Admissions:   i + 1,
		}
	}
	return out
}

// fakeReplica is the dispatcher as the backend sees it, recording what the
// backend tells it. Its table follows AdoptTable (unless it leads) and
// AdoptRows, as the dispatcher's does.
type fakeReplica struct {
	mu           sync.Mutex
	state        state.State
	version      uint64
	replacedAt   uint64            // the version of the last AdoptTable (or the start)
	rowVersions  map[string]uint64 // the version each row was last set at since
	leading      bool
	refuseTables bool // AdoptTable changes nothing, as for a publication the dispatcher cannot use
	counts       *demand.AdmissionCounts
	adopted      int
	rowsAdopted  []table.Assignment
	provAdopted  []state.Provisional
	overrides    []table.Override
	overridesSet int
	drains       []table.Drain
	leadingCalls []bool
	checkRow     func(a table.Assignment) error // nil accepts every row
}

func (f *fakeReplica) CheckRow(a table.Assignment, _ *state.Provisional) error {
	f.mu.Lock()
	check := f.checkRow
	f.mu.Unlock()
	if check == nil {
		return nil
	}
	return check(a)
}

func newFakeReplica(t *table.Table, prov []state.Provisional) *fakeReplica {
	return &fakeReplica{state: state.State{Table: t, Provisional: prov}, version: 1, replacedAt: 1, rowVersions: map[string]uint64{}}
}

// RowsChangedSince answers from the versions rows were set at, as the
// dispatcher's change log does.
func (f *fakeReplica) RowsChangedSince(v uint64) ([]table.Assignment, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v < f.replacedAt {
		return nil, false
	}
	var rows []table.Assignment
	for _, a := range f.state.Table.Assignments {
		if f.rowVersions[a.Job] > v {
			rows = append(rows, a)
		}
	}
	return rows, true
}

func (f *fakeReplica) Published() (*state.State, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &state.State{Table: copyTable(f.state.Table), Provisional: slices.Clone(f.state.Provisional)}, f.version
}

func (f *fakeReplica) TableVersion() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version
}

func (f *fakeReplica) AdoptTable(st *state.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adopted++
	if f.leading || f.refuseTables {
		return
	}
	f.state.Table, f.state.Provisional = st.Table, st.Provisional
	f.version++
	f.replacedAt, f.rowVersions = f.version, map[string]uint64{}
}

func (f *fakeReplica) AdoptRows(rows []table.Assignment, provisional []state.Provisional) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rowsAdopted = append(f.rowsAdopted, rows...)
	f.provAdopted = append(f.provAdopted, provisional...)
	if f.state.Table == nil {
		f.state.Table = &table.Table{}
	}
	t := copyTable(f.state.Table)
	for _, a := range rows {
		if i := slices.IndexFunc(t.Assignments, func(b table.Assignment) bool { return b.Job == a.Job }); i >= 0 {
			t.Assignments[i] = a
		} else {
			t.Assignments = append(t.Assignments, a)
		}
	}
	t.Sort()
	f.state.Table = t
	f.state.Provisional = append(f.state.Provisional, provisional...)
	f.version++
	for _, a := range rows {
		f.rowVersions[a.Job] = f.version
	}
}

func (f *fakeReplica) SetOverrides(os []table.Override) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.overrides = os
	f.overridesSet++
}

func (f *fakeReplica) SetDrains(cs []table.Drain) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains = cs
}

func (f *fakeReplica) SetLeading(leading bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leading = leading
	f.leadingCalls = append(f.leadingCalls, leading)
}

// AdmissionCounts returns a copy, as the dispatcher's Snapshot does: the
// backend encodes it while the test may change the counts.
func (f *fakeReplica) AdmissionCounts() *demand.AdmissionCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counts == nil {
		return nil
	}
	out := &demand.AdmissionCounts{Days: make([]demand.DayCounts, len(f.counts.Days))}
	for i, d := range f.counts.Days {
		out.Days[i] = demand.DayCounts{Day: d.Day, Jobs: maps.Clone(d.Jobs)}
	}
	return out
}

// setRow changes one row of the table, as a dispatch would.
func (f *fakeReplica) setRow(a table.Assignment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := copyTable(f.state.Table)
	i := slices.IndexFunc(t.Assignments, func(b table.Assignment) bool { return b.Job == a.Job })
	t.Assignments[i] = a
	f.state.Table = t
	f.version++
	f.rowVersions[a.Job] = f.version
}

// with runs f under the replica's lock.
func (f *fakeReplica) with(fn func(f *fakeReplica)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// leadingCallsEndWith reports whether the last SetLeading call said leading.
func (f *fakeReplica) leadingCallsEndWith(leading bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.leadingCalls) > 0 && f.leadingCalls[len(f.leadingCalls)-1] == leading
}
