package kubestate

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
)

// collector is the leader's room that deletes what expired; fold folds
// the placements (the publisher's).
type collector struct {
	k      *kube
	leader *leadership
	fold   func(ctx context.Context)
}

// run collects, every GCInterval while ctx (the term) lasts, the
// overrides and drains that expired and the records of replicas whose
// heartbeat is older than the demand window (their counts left it), and
// folds the placements that no table change brought to a publication.
func (c *collector) run(ctx context.Context) {
	ticker := c.k.opts.Clock.NewTicker(c.k.opts.GCInterval)
	defer ticker.Stop()
	for {
		c.collect(ctx)
		c.fold(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

func (c *collector) collect(ctx context.Context) {
	now := c.k.opts.Clock.Now()
	del := func(kind string, obj client.Object, what string, keys ...any) {
		uid, rv := obj.GetUID(), obj.GetResourceVersion()
		pre := &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}
		if err := c.leader.leaderDelete(ctx, kind, obj, pre); err != nil {
			c.k.log.Error(err, "Collecting "+what, keys...)
			return
		}
		c.k.log.Info("Collected "+what, keys...)
	}
	var overrides v1alpha1.JobOverrideList
	if err := c.k.list(ctx, &overrides); err == nil {
		for i := range overrides.Items {
			jo := &overrides.Items[i]
			if jo.Spec.Expires != nil && !now.Before(jo.Spec.Expires.Time) {
				del(kindJobOverride, jo, "an expired job override", "job", jo.Spec.Job, "expired", jo.Spec.Expires.Time)
			}
		}
	}
	var drains v1alpha1.ClusterDrainList
	if err := c.k.list(ctx, &drains); err == nil {
		for i := range drains.Items {
			cd := &drains.Items[i]
			if !now.Before(cd.Spec.Expires.Time) {
				del(kindClusterDrain, cd, "an expired cluster drain", "cluster", cd.Spec.Cluster, "expired", cd.Spec.Expires.Time)
			}
		}
	}
	var replicas v1alpha1.DispatcherReplicaList
	if err := c.k.list(ctx, &replicas); err == nil {
		for i := range replicas.Items {
			dr := &replicas.Items[i]
			last := dr.CreationTimestamp.Time
			if dr.Status.Heartbeat != nil {
				last = dr.Status.Heartbeat.Time
			}
			if dr.Name != c.k.opts.Replica && now.Sub(last) > c.k.opts.DemandWindow {
				del(kindDispatcherReplica, dr, "the record of a replica gone", "replica", dr.Name, "heartbeat", last.UTC().Format(time.RFC3339))
			}
		}
	}
}
