package framework

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	prowapi "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"
)

// ProwJobLabel is the label Prow puts on every ProwJob with its job name.
const ProwJobLabel = "prow.k8s.io/job"

// ProwJob describes a ProwJob to create: what Prow's plank/sinker would
// create for a job run.
type ProwJob struct {
	// Job is spec.job (and the prow.k8s.io/job label).
	Job string
	// Agent is spec.agent; "kubernetes" when empty.
	Agent prowapi.ProwJobAgent
	// Cluster is spec.cluster as Prow sets it before admission; "default" when empty.
	Cluster string
	// Labels are the job's labels, copied onto the ProwJob as Prow does.
	Labels map[string]string
}

// CreateProwJob creates the ProwJob in namespace through the API server (so
// admission webhooks run) and returns it as stored.
func (s *APIServer) CreateProwJob(ctx context.Context, namespace string, pj ProwJob, opts ...client.CreateOption) (*prowapi.ProwJob, error) {
	agent, cluster := pj.Agent, pj.Cluster
	if agent == "" {
		agent = prowapi.KubernetesAgent
	}
	if cluster == "" {
		cluster = "default"
	}
	labels := map[string]string{ProwJobLabel: pj.Job}
	for k, v := range pj.Labels {
		labels[k] = v
	}
	obj := &prowapi.ProwJob{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "pj-",
			Namespace:    namespace,
			Labels:       labels,
		},
		Spec: prowapi.ProwJobSpec{
			Type:    prowapi.PeriodicJob,
			Agent:   agent,
			Cluster: cluster,
			Job:     pj.Job,
		},
		Status: prowapi.ProwJobStatus{
			State:     prowapi.TriggeredState,
			StartTime: metav1.Now(),
		},
	}
	if err := s.Client.Create(ctx, obj, opts...); err != nil {
		return nil, fmt.Errorf("creating ProwJob for %s in %s: %w", pj.Job, namespace, err)
	}
	return obj, nil
}
