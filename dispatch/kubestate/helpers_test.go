package kubestate

import (
	"fmt"
	"sync"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine/enginetest"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
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
func someProvisional(n int) []store.Provisional {
	out := make([]store.Provisional, n)
	for i := range out {
		out[i] = store.Provisional{
			Job: jobs.Job{Name: fmt.Sprintf("rehearse-%05d-pull-ci-openshift-release-main-e2e", i), Type: jobs.Presubmit, Agent: jobs.Agent,
				Requirements: jobs.Requirements{Capabilities: []string{"arm64"}}},
			LastAdmitted: enginetest.Now.Add(-1e9 * 3600),
			Admissions:   i + 1,
		}
	}
	return out
}
