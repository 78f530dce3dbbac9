package dispatch

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
)

// TestJobsPastTheProvisionalCapAreSpreadByCapacity: jobs admitted past
// Options.MaxProvisional are not recorded, so the loads never count them;
// they must still spread over the eligible clusters by capacity (not all go
// to the least-loaded one), and each name must go to one cluster, on every
// replica.
func TestJobsPastTheProvisionalCapAreSpreadByCapacity(t *testing.T) {
	const n = 1000
	tests := []struct {
		name           string
		maxProvisional int
		labels         map[string]string
		only           string  // the one cluster the labels allow; empty: every usable build cluster
		tolerance      float64 // largest difference between a cluster's share and its capacity share
	}{
		{name: "no provisional row at all", maxProvisional: 1, tolerance: 0.05},
		{name: "some recorded first", maxProvisional: 20, tolerance: 0.05},
		{name: "the rules still apply", maxProvisional: 1, labels: map[string]string{"capability/arm64": "arm64"}, only: "build01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			opts := e.options()
			opts.MaxProvisional = tc.maxProvisional
			d := e.newDispatcher(opts)
			e.dispatch(d)
			// The cap is reached first.
			for i := range tc.maxProvisional {
				admit(t, d, fmt.Sprintf("recorded-%04d", i))
			}
			rows := d.cache.Len()
			if err := d.flush(); err != nil {
				t.Fatal(err)
			}
			otherOpts := e.options()
			otherOpts.MaxProvisional = tc.maxProvisional
			other := e.newDispatcher(otherOpts) // another replica, on the same state

			capacity := map[string]float64{}
			var total float64
			for _, c := range d.Clusters() {
				if c.Role == config.RoleBuild && !c.Blocked && c.Capacity > 0 && (tc.only == "" || c.Name == tc.only) {
					capacity[c.Name] = float64(c.Capacity)
					total += float64(c.Capacity)
				}
			}
			got := map[string]int{}
			placed := map[string]string{}
			for i := range n {
				job := fmt.Sprintf("past-the-cap-%04d", i)
				dec, err := d.Admit(context.Background(), AdmissionRequest{Job: job, Agent: jobs.Agent, Labels: tc.labels})
				if err != nil || dec.Cluster == "" {
					t.Fatalf("admitting %s: %+v, %v", job, dec, err)
				}
				got[dec.Cluster]++
				placed[job] = dec.Cluster
			}
			if d.cache.Len() != rows {
				t.Errorf("the table grew from %d to %d rows past the cap", rows, d.cache.Len())
			}
			t.Logf("%d jobs past the cap: %v; capacities %v", n, got, capacity)
			for cluster := range got {
				if _, ok := capacity[cluster]; !ok {
					t.Errorf("%d jobs went to %s, not a usable build cluster", got[cluster], cluster)
				}
			}
			for cluster, c := range capacity {
				share, want := float64(got[cluster])/n, c/total
				if math.Abs(share-want) > tc.tolerance {
					t.Errorf("%s took %d of %d jobs (%.3f), want its capacity share %.3f ± %.2f; all: %v",
						cluster, got[cluster], n, share, want, tc.tolerance, got)
				}
			}
			// Stable: again on this replica, and on another.
			for job, cluster := range placed {
				for name, r := range map[string]*Dispatcher{"again": d, "another replica": other} {
					dec, err := r.Admit(context.Background(), AdmissionRequest{Job: job, Agent: jobs.Agent, Labels: tc.labels})
					if err != nil || dec.Cluster != cluster {
						t.Fatalf("%s: %s went to %s, then to %s (%v)", name, job, cluster, dec.Cluster, err)
					}
				}
			}
		})
	}
}
