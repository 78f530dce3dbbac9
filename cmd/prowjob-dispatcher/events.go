package main

import (
	"context"
	"fmt"
	"os"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/events"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
)

// eventsController is the reporting controller of the dispatcher's Events.
const eventsController = "prowjob-dispatcher"

// kubeEvents records health transitions as Kubernetes Events regarding the
// dispatcher's Pod. Recording is asynchronous: it never holds up the loop.
type kubeEvents struct {
	recorder  events.EventRecorder
	regarding *corev1.ObjectReference
}

// newKubeEvents connects to the API server of kubeconfig ("in-cluster": the
// Pod's service account) and starts sending Events until ctx ends; stop
// flushes them.
func newKubeEvents(ctx context.Context, kubeconfig, namespace, pod string, log logr.Logger) (*kubeEvents, func(), error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "in-cluster" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("--health-events-kubeconfig %s: %w", kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("--health-events-kubeconfig %s: %w", kubeconfig, err)
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	if err := b.StartRecordingToSinkWithContext(ctx); err != nil {
		return nil, nil, fmt.Errorf("health events: %w", err)
	}
	log.Info("Health transitions are recorded as Kubernetes Events", "namespace", namespace, "pod", pod)
	return &kubeEvents{
		recorder:  b.NewRecorder(scheme.Scheme, eventsController),
		regarding: &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: namespace, Name: pod},
	}, b.Shutdown, nil
}

// HealthTransition records one transition: a Warning when the cluster
// turns unhealthy, Normal otherwise; reason ClusterHealthy, ClusterUnhealthy
// or ClusterHealthUnknown; action HealthTransition/CLUSTER.
func (k *kubeEvents) HealthTransition(t health.Transition, mode health.Mode, action string) {
	typ, reason := corev1.EventTypeNormal, "ClusterHealthUnknown"
	switch t.To {
	case health.Unhealthy:
		typ, reason = corev1.EventTypeWarning, "ClusterUnhealthy"
	case health.Healthy:
		reason = "ClusterHealthy"
	}
	note := fmt.Sprintf("cluster %s: %s -> %s (%s mode): %s", t.Cluster, t.From, t.To, mode, t.Reason)
	if action != "" {
		note += "; " + action
	}
	// The action names the cluster: the events API merges Events of the
	// same regarding object, reason and action into one series that keeps
	// the first note, which would hide every cluster but the first.
	k.recorder.Eventf(k.regarding, nil, typ, reason, "HealthTransition/"+t.Cluster, "%s", note)
}

// envOr returns the environment variable name, or def when it is empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
