package kubestate

import (
	"context"
	"fmt"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// The Backend as the dispatcher's state.Backend. The shared writes are
// each made when they return nil; the replicas, this one included, see
// them through their informers. Nothing is left to save after a change is
// in force: the leader publishes the table it reads through the watcher.

var _ state.Backend = (*Backend)(nil)

// Where is "shared state".
func (b *Backend) Where() string { return "shared state" }

// Load returns the shared state once the informers listed it (Start): the
// table of the latest publication with the placements it lacks, its
// provisional jobs, the overrides and the drains, the demand the table's
// rows carry (the leader's) and this replica's admission counts from its
// record (a pod restarted under its name keeps them). Table is nil when
// nothing was ever published or placed.
func (b *Backend) Load(ctx context.Context) (*state.State, error) {
	st, err := b.follow.load(ctx)
	if err != nil {
		return nil, err
	}
	if st.Table != nil {
		dm := make(map[string]float64, len(st.Table.Assignments))
		for _, a := range st.Table.Assignments {
			dm[a.Job] = a.Demand
		}
		st.Demand = &state.Demand{Jobs: dm}
	}
	st.Admissions = b.OwnAdmissions()
	return st, nil
}

// Stamp is t as the API keeps it: to the second, in UTC.
func (b *Backend) Stamp(t time.Time) time.Time { return t.Truncate(time.Second).UTC() }

// Save does nothing: the leader publishes the table it reads through the watcher.
func (b *Backend) Save(func() *state.State) error { return nil }

// SaveJournal does nothing: Claim recorded the rows.
func (b *Backend) SaveJournal(func() ([]table.Assignment, []state.Provisional)) error { return nil }

// SaveOverrides does nothing: PutOverride and DeleteOverride wrote them.
func (b *Backend) SaveOverrides([]table.Override) error { return nil }

// SaveDrains does nothing: PutDrain and DeleteDrain wrote them.
func (b *Backend) SaveDrains([]table.Drain) error { return nil }

// SaveAdmissions does nothing: this replica's record carries them at every heartbeat.
func (b *Backend) SaveAdmissions(func() *demand.AdmissionCounts) error { return nil }

// SaveDemand does nothing: the leader's rows carry its demand.
func (b *Backend) SaveDemand(*state.Demand) error { return nil }

// PutOverride creates or replaces the job's JobOverride (named ObjectName(job)).
func (b *Backend) PutOverride(ctx context.Context, o table.Override) error {
	return b.writes.PutOverride(ctx, o)
}

// PutOverride is Backend.PutOverride.
func (w *writer) PutOverride(ctx context.Context, o table.Override) error {
	if o.Job == "" || o.Cluster == "" {
		return fmt.Errorf("job override: job %q, cluster %q: both are required", o.Job, o.Cluster)
	}
	spec := jobOverrideSpec(o)
	name := ObjectName(o.Job)
	_, err := upsert(ctx, w.k, kindJobOverride, name,
		func() *v1alpha1.JobOverride { return &v1alpha1.JobOverride{} },
		func(jo *v1alpha1.JobOverride) error {
			if jo.Spec.Job != "" && jo.Spec.Job != o.Job {
				return fmt.Errorf("JobOverride %s holds job %q, not %q", name, jo.Spec.Job, o.Job)
			}
			jo.Spec = spec
			return nil
		})
	return err
}

// DeleteOverride deletes every JobOverride of the job: the one named
// ObjectName(job), and any made with kubectl under another name.
func (b *Backend) DeleteOverride(ctx context.Context, job string) error {
	return b.writes.DeleteOverride(ctx, job)
}

// DeleteOverride is Backend.DeleteOverride.
func (w *writer) DeleteOverride(ctx context.Context, job string) error {
	var l v1alpha1.JobOverrideList
	if err := w.k.list(ctx, &l); err != nil {
		return fmt.Errorf("kubernetes API: delete JobOverride of job %q: %w: the write was not made", job, err)
	}
	for _, name := range namesToDelete(ObjectName(job), len(l.Items), func(i int) (string, bool) { return l.Items[i].Name, l.Items[i].Spec.Job == job }) {
		if err := w.k.deleteObject(ctx, kindJobOverride, &v1alpha1.JobOverride{ObjectMeta: w.k.meta(name)}, nil); err != nil {
			return err
		}
	}
	return nil
}

// PutDrain creates or replaces the cluster's ClusterDrain (named
// ObjectName(cluster)). A drain must expire; its capacity is 0..100.
func (b *Backend) PutDrain(ctx context.Context, o table.Drain) error {
	return b.writes.PutDrain(ctx, o)
}

// PutDrain is Backend.PutDrain.
func (w *writer) PutDrain(ctx context.Context, o table.Drain) error {
	spec, err := clusterDrainSpec(o)
	if err != nil {
		return err
	}
	name := ObjectName(o.Cluster)
	_, err = upsert(ctx, w.k, kindClusterDrain, name,
		func() *v1alpha1.ClusterDrain { return &v1alpha1.ClusterDrain{} },
		func(cd *v1alpha1.ClusterDrain) error {
			if cd.Spec.Cluster != "" && cd.Spec.Cluster != o.Cluster {
				return fmt.Errorf("ClusterDrain %s holds cluster %q, not %q", name, cd.Spec.Cluster, o.Cluster)
			}
			cd.Spec = spec
			return nil
		})
	return err
}

// DeleteDrain deletes every ClusterDrain of the cluster.
func (b *Backend) DeleteDrain(ctx context.Context, cluster string) error {
	return b.writes.DeleteDrain(ctx, cluster)
}

// DeleteDrain is Backend.DeleteDrain.
func (w *writer) DeleteDrain(ctx context.Context, cluster string) error {
	var l v1alpha1.ClusterDrainList
	if err := w.k.list(ctx, &l); err != nil {
		return fmt.Errorf("kubernetes API: delete ClusterDrain of cluster %q: %w: the write was not made", cluster, err)
	}
	for _, name := range namesToDelete(ObjectName(cluster), len(l.Items), func(i int) (string, bool) { return l.Items[i].Name, l.Items[i].Spec.Cluster == cluster }) {
		if err := w.k.deleteObject(ctx, kindClusterDrain, &v1alpha1.ClusterDrain{ObjectMeta: w.k.meta(name)}, nil); err != nil {
			return err
		}
	}
	return nil
}

// namesToDelete are the objects of the n in the cache whose item(i) says
// they are for the job (or cluster), and its canonical object when the
// cache lacks it (it may lag behind a write just made); never an object of
// that name the cache shows for another job.
func namesToDelete(canonical string, n int, item func(i int) (name string, match bool)) []string {
	var names []string
	seen := false
	for i := range n {
		name, match := item(i)
		if name == canonical {
			seen = true
		}
		if match {
			names = append(names, name)
		}
	}
	if !seen {
		names = append(names, canonical)
	}
	return names
}
