package dispatch

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// TestAdmitBoundsJobNames: a job name longer than MaxJobNameBytes is
// admitted unchanged, with no row, no provisional record and no admission
// counted, and the refusal is counted; a name at the bound is placed.
func TestAdmitBoundsJobNames(t *testing.T) {
	cases := []struct {
		name   string
		job    string
		placed bool
	}{
		{"a real name", "pull-ci-openshift-cluster-api-provider-aws-release-4.18-e2e-aws-upgrade", true},
		{"at the bound", "rehearse-" + strings.Repeat("x", MaxJobNameBytes-len("rehearse-")), true},
		{"one byte over", "rehearse-" + strings.Repeat("x", MaxJobNameBytes-len("rehearse-")+1), false},
		{"200 KB", "rehearse-" + strings.Repeat("y", 200<<10), false},
	}
	e := newEnv(t)
	opts := e.options()
	opts.Demand = nil // counted from admissions
	d := e.newDispatcher(opts)
	e.dispatch(d)
	refused := 0.0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dec, err := d.Admit(context.Background(), AdmissionRequest{Job: tc.job, Agent: jobs.Agent, Cluster: "build01"})
			_, inTable := d.Lookup(tc.job)
			counted := false
			for _, day := range d.admissionCounts().Days {
				counted = counted || day.Jobs[tc.job] > 0
			}
			if tc.placed {
				if err != nil || dec.Cluster == "" || !inTable || !counted {
					t.Errorf("decision %+v, %v; in the table %v, counted %v: want placed, recorded and counted", dec, err, inTable, counted)
				}
				return
			}
			refused++
			if !errors.Is(err, ErrInvalid) || dec.Patch || dec.Cluster != "" {
				t.Errorf("decision %+v, %v: want no patch and an ErrInvalid", dec, err)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Errorf("the error holds the name: %d bytes", len(err.Error()))
			}
			if inTable || counted {
				t.Errorf("in the table %v, counted %v: want neither", inTable, counted)
			}
			if got := e.metricValue("prowjob_dispatcher_admissions_not_recorded_total", "reason", "job_name_too_long"); got != refused {
				t.Errorf("admissions_not_recorded_total %v, want %v", got, refused)
			}
		})
	}
}

// TestCheckRow: a row of the shared state is put in force only on a known
// cluster, and, when the rules may move its job, on a usable cluster with
// every capability the job needs (issue 18: a hand-written shard sent
// admissions to the blocked build04 and to no-such-cluster).
func TestCheckRow(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	arm := &state.Provisional{Job: jobs.Job{Name: "rehearse-1-arm", Agent: jobs.Agent, Requirements: jobs.Requirements{Capabilities: []string{"arm64"}}}}
	cases := []struct {
		name        string
		row         table.Assignment
		provisional *state.Provisional
		want        error // nil: accepted
	}{
		{"balanced on a usable cluster", table.Assignment{Job: "pull-ci-org-repo-main-unit", Cluster: "build03", Reason: table.ReasonBalanced}, nil, nil},
		{"unknown cluster", table.Assignment{Job: "pull-ci-org-repo-main-unit", Cluster: "no-such-cluster", Reason: table.ReasonBalanced}, nil, engine.ErrUnknownCluster},
		{"an override to an unknown cluster", table.Assignment{Job: "pull-ci-org-repo-main-unit", Cluster: "no-such-cluster", Reason: table.ReasonOverride}, nil, engine.ErrUnknownCluster},
		{"balanced on a blocked cluster", table.Assignment{Job: "pull-ci-org-repo-main-unit", Cluster: "build04", Reason: table.ReasonBalanced}, nil, engine.ErrBlockedCluster},
		{"pinned to a blocked cluster", table.Assignment{Job: "pull-ci-org-repo-main-unit", Cluster: "build04", Reason: table.ReasonPinned}, nil, engine.ErrBlockedCluster},
		{"a cluster job on its blocked cluster", table.Assignment{Job: "periodic-build04-apply", Cluster: "build04", Reason: table.ReasonClusterJob}, nil, nil},
		{"an override on a blocked cluster", table.Assignment{Job: "pull-ci-org-repo-main-unit", Cluster: "build04", Reason: table.ReasonOverride}, nil, nil},
		{"a job config's arm64 job off arm64", table.Assignment{Job: "pull-ci-org-repo-main-e2e-arm64", Cluster: "build03", Reason: table.ReasonCapability}, nil, engine.ErrMissingCapability},
		{"a job config's arm64 job on arm64", table.Assignment{Job: "pull-ci-org-repo-main-e2e-arm64", Cluster: "build01", Reason: table.ReasonCapability}, nil, nil},
		{"a provisional arm64 job off arm64", table.Assignment{Job: "rehearse-1-arm", Cluster: "build02", Reason: table.ReasonCapability}, arm, engine.ErrMissingCapability},
		{"a manual cluster", table.Assignment{Job: "pull-ci-org-repo-main-unit", Cluster: "vsphere02", Reason: table.ReasonManual}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := d.checkRow(tc.row, tc.provisional)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("CheckRow(%s on %s, %s) = %v, want %v", tc.row.Job, tc.row.Cluster, tc.row.Reason, err, tc.want)
			}
		})
	}
}
