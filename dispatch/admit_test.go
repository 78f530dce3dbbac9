package dispatch

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
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
			for _, day := range d.AdmissionCounts().Days {
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
