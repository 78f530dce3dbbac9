package dispatch

import (
	"context"
	"strings"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// TestNeverOnAnIncapableCluster: when the only arm64 cluster is blocked, the
// arm64 job that ran there stays there (its last eligible cluster), and an
// arm64 job that never ran anywhere is left as its ProwJob was created,
// never sent to a cluster without arm64; both are reported.
func TestNeverOnAnIncapableCluster(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	const arm = "pull-ci-org-repo-main-e2e-arm64"
	if a := mustLookup(t, d, arm); a.Cluster != "build01" {
		t.Fatalf("%s on %s before the block, want build01", arm, a.Cluster)
	}

	writeFile(t, e.clusterConfig, `
aws:
- name: build01
  capabilities: [arm64]
  blocked: true
- name: build03
  capacity: 50
gcp:
- name: build02
  capabilities: [kvm]
- name: build04
  blocked: true
`)
	e.dispatch(d)
	if a := mustLookup(t, d, arm); a.Cluster != "build01" || !strings.Contains(a.Detail, "kept on its last eligible cluster build01, blocked") {
		t.Errorf("%s: %+v, want kept on build01", arm, a)
	}
	st := d.Status()
	if st.Unplaceable != 1 || len(st.UnplaceableJobs) != 1 || st.UnplaceableJobs[0].Job != arm || st.UnplaceableJobs[0].Cluster != "build01" {
		t.Errorf("status unplaceable %d %+v, want %s kept on build01", st.Unplaceable, st.UnplaceableJobs, arm)
	}
	if got := e.metricValue("prowjob_dispatcher_unplaceable_jobs", "kept", "true"); got != 1 {
		t.Errorf("unplaceable_jobs{kept=true} = %v, want 1", got)
	}

	// A job the table lacks that needs arm64: admission leaves it as created.
	dec, err := d.Admit(context.Background(), AdmissionRequest{Job: "pull-ci-new-arm64", Agent: jobs.Agent, Cluster: "build03",
		Labels: map[string]string{"capability/arm64": "arm64"}})
	if err != nil || dec.Patch || dec.Cluster != "" || dec.Reason != table.ReasonUnplaceable || !strings.Contains(dec.Detail, "arm64") {
		t.Errorf("new arm64 job: %+v, %v; want left as created (unplaceable)", dec, err)
	}
	if _, ok := d.Lookup("pull-ci-new-arm64"); ok {
		t.Error("an unplaceable job got a row")
	}
	if got := e.metricValue("prowjob_dispatcher_unplaceable_admissions_total"); got != 1 {
		t.Errorf("unplaceable_admissions_total = %v, want 1", got)
	}
}
