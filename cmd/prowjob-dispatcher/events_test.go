package main

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
)

func TestKubeEventsOfTransitions(t *testing.T) {
	rec := events.NewFakeRecorder(10)
	k := &kubeEvents{recorder: rec, regarding: &corev1.ObjectReference{Kind: "Pod", Name: "dispatcher-0", Namespace: "ci"}}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	k.HealthTransition(health.Transition{Cluster: "build02", From: health.Healthy, To: health.Unhealthy, At: at, Reason: "error share 42.0% of 57 finished jobs"}, health.ModeAct, "drained automatically for 6h0m0s")
	k.HealthTransition(health.Transition{Cluster: "build03", From: health.Unhealthy, To: health.Healthy, At: at, Reason: "error share 1.0% of 80 finished jobs"}, health.ModeReport, "")
	k.HealthTransition(health.Transition{Cluster: "build04", From: health.Healthy, To: health.Unknown, At: at, Reason: "no data for the cluster"}, health.ModeReport, "")
	for _, want := range []string{
		"Warning ClusterUnhealthy cluster build02: healthy -> unhealthy (act mode): error share 42.0% of 57 finished jobs; drained automatically for 6h0m0s",
		"Normal ClusterHealthy cluster build03: unhealthy -> healthy (report mode): error share 1.0% of 80 finished jobs",
		"Normal ClusterHealthUnknown cluster build04: healthy -> unknown (report mode): no data for the cluster",
	} {
		select {
		case got := <-rec.Events:
			if got != want {
				t.Errorf("event %q, want %q", got, want)
			}
		default:
			t.Fatalf("no event, want %q", want)
		}
	}
}
