package e2e

import (
	"fmt"
	"testing"

	prowapi "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
)

// TestAdmissionSetsCluster creates ProwJobs through the API server and checks
// the spec.cluster the webhook gave each, rule by rule.
func TestAdmissionSetsCluster(t *testing.T) {
	sc := newScenario(t, "admission", scenarioOptions{})

	t.Run("balanced", func(t *testing.T) {
		used := map[string]int{}
		for file, jobs := range balancedJobs {
			fileCluster := ""
			for _, job := range jobs {
				got := sc.admit(job)
				a := sc.assignment(job)
				if got != a.Cluster {
					t.Errorf("%s: ProwJob admitted to %q, but the dispatcher's table says %q", job, got, a.Cluster)
				}
				if !usableClusters[got] {
					t.Errorf("%s: balanced onto %q, not a usable cluster (blocked %s and manual %s are never balanced onto)", job, got, clusterBlocked, clusterManual)
				}
				if a.Reason != "balanced" {
					t.Errorf("%s: reason %q, want %q", job, a.Reason, "balanced")
				}
				if fileCluster != "" && got != fileCluster {
					t.Errorf("%s: on %q, but another job of %s is on %q: jobs of one file stay together", job, got, file, fileCluster)
				}
				fileCluster = got
				used[got]++
			}
		}
		if len(used) < 2 {
			t.Errorf("all balanced jobs landed on one cluster: %v; with 3 usable clusters of equal capacity they should spread", used)
		}
	})

	t.Run("demand from Prometheus", func(t *testing.T) {
		for _, job := range []string{jobOriginUnit, jobAPIVerify, jobNightly} {
			a := sc.assignment(job)
			if !within(a.Demand, demand[job], 0.1) {
				t.Errorf("%s: demand %.1f in the table, want about %.1f (its 14-day increase in Prometheus)", job, a.Demand, demand[job])
			}
		}
	})

	cases := []struct {
		name        string
		pj          framework.ProwJob
		wantCluster string
		wantReason  string // checked in the table when set
	}{
		{name: "capability", pj: framework.ProwJob{Job: jobOriginARM64, Labels: jobLabels[jobOriginARM64]}, wantCluster: clusterARM64, wantReason: "capability"},
		{name: "capability periodic", pj: framework.ProwJob{Job: jobNightlyARM64, Labels: jobLabels[jobNightlyARM64]}, wantCluster: clusterARM64, wantReason: "capability"},
		{name: "capability of a job not in the config", pj: framework.ProwJob{Job: "pull-ci-openshift-new-main-e2e-arm64", Labels: map[string]string{labelCapARM64: "arm64"}}, wantCluster: clusterARM64},
		{name: "pinned", pj: framework.ProwJob{Job: jobConsolePinned, Labels: jobLabels[jobConsolePinned]}, wantCluster: clusterPinned, wantReason: "pinned"},
		{name: "manual untouched", pj: framework.ProwJob{Job: jobOriginUnit, Cluster: clusterManual}, wantCluster: clusterManual},
		{name: "jenkins agent untouched", pj: framework.ProwJob{Job: jobOriginUnit, Agent: prowapi.JenkinsAgent}, wantCluster: defaultCluster},
		{name: "rehearsal keeps its cluster", pj: framework.ProwJob{Job: "rehearse-1234-" + jobOriginARM64, Cluster: clusterPinned,
			Labels: map[string]string{"ci.openshift.org/rehearse": "1234", labelCapARM64: "arm64"}}, wantCluster: clusterPinned},
		{name: "tekton agent untouched", pj: framework.ProwJob{Job: "some-tekton-job", Agent: prowapi.TektonAgent, Cluster: "tekton-cluster"}, wantCluster: "tekton-cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pj, err := sc.createProwJob(tc.pj)
			if err != nil {
				t.Fatalf("creating a ProwJob of %s: %v", tc.pj.Job, err)
			}
			if pj.Spec.Cluster != tc.wantCluster {
				t.Errorf("ProwJob of %s (agent %q, cluster %q, labels %v) admitted to %q, want %q",
					tc.pj.Job, tc.pj.Agent, tc.pj.Cluster, tc.pj.Labels, pj.Spec.Cluster, tc.wantCluster)
			}
			if tc.wantReason != "" {
				if a := sc.assignment(tc.pj.Job); a.Reason != tc.wantReason {
					t.Errorf("%s: reason %q in the table, want %q", tc.pj.Job, a.Reason, tc.wantReason)
				}
			}
		})
	}

	// pj-rehearse names a rehearsal rehearse-<PR>-<job>; when the PR adds
	// the job, the job config in force has no base job at all. The ProwJob
	// keeps the cluster the PR's config gave it, and the table gets no row
	// (a provisional row would let the rehearsal's name steer balance).
	t.Run("rehearsal with no base job", func(t *testing.T) {
		job := "rehearse-4321-pull-ci-openshift-brand-new-main-e2e"
		pj, err := sc.createProwJob(framework.ProwJob{Job: job, Cluster: clusterARM64,
			Labels: map[string]string{"ci.openshift.org/rehearse": "4321"}})
		if err != nil {
			t.Fatalf("creating a ProwJob of %s: %v", job, err)
		}
		if pj.Spec.Cluster != clusterARM64 {
			t.Errorf("rehearsal %s admitted to %q, want the cluster it was created with, %q", job, pj.Spec.Cluster, clusterARM64)
		}
		if a := sc.assignmentOrNil(job); a != nil {
			t.Errorf("rehearsal %s got a table row (%s, %s); rehearsals must leave the table alone", job, a.Cluster, a.Reason)
		}
	})

	t.Run("blocked never", func(t *testing.T) {
		for i := range 8 {
			job := fmt.Sprintf("pull-ci-openshift-new%d-main-unit", i)
			if got := sc.admit(job); !usableClusters[got] {
				t.Errorf("%s (not in the job config) admitted to %q, want one of the usable clusters %v", job, got, usableClusters)
			}
		}
		clusters, err := sc.d.API.Clusters(testContext(t))
		if err != nil {
			t.Fatalf("GET clusters: %v", err)
		}
		for _, c := range clusters {
			if c.Name == clusterBlocked && c.Jobs != 0 {
				t.Errorf("blocked cluster %s holds %d jobs", c.Name, c.Jobs)
			}
		}
	})
}
