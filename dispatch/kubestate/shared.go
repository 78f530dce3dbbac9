package kubestate

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	st, err := b.load(ctx)
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

// SaveClusterOverrides does nothing: PutClusterOverride and DeleteClusterOverride wrote them.
func (b *Backend) SaveClusterOverrides([]table.ClusterOverride) error { return nil }

// SaveAdmissions does nothing: this replica's record carries them at every heartbeat.
func (b *Backend) SaveAdmissions(func() *demand.AdmissionCounts) error { return nil }

// SaveDemand does nothing: the leader's rows carry its demand.
func (b *Backend) SaveDemand(*state.Demand) error { return nil }

// PutOverride creates or replaces the job's JobOverride (named ObjectName(job)).
func (b *Backend) PutOverride(ctx context.Context, o table.Override) error {
	if o.Job == "" || o.Cluster == "" {
		return fmt.Errorf("job override: job %q, cluster %q: both are required", o.Job, o.Cluster)
	}
	spec := jobOverrideSpec(o)
	name := ObjectName(o.Job)
	_, err := upsert(ctx, b, kindJobOverride, name,
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
	var l v1alpha1.JobOverrideList
	if err := b.list(ctx, &l); err != nil {
		return fmt.Errorf("kubernetes API: delete JobOverride of job %q: %w: the write was not made", job, err)
	}
	for _, name := range namesToDelete(ObjectName(job), len(l.Items), func(i int) (string, bool) { return l.Items[i].Name, l.Items[i].Spec.Job == job }) {
		if err := b.deleteObject(ctx, kindJobOverride, &v1alpha1.JobOverride{ObjectMeta: b.meta(name)}, nil); err != nil {
			return err
		}
	}
	return nil
}

// PutClusterOverride creates or replaces the cluster's ClusterDrain (named
// ObjectName(cluster)). A drain must expire; its capacity is 0..100.
func (b *Backend) PutClusterOverride(ctx context.Context, o table.ClusterOverride) error {
	spec, err := clusterDrainSpec(o)
	if err != nil {
		return err
	}
	name := ObjectName(o.Cluster)
	_, err = upsert(ctx, b, kindClusterDrain, name,
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

// DeleteClusterOverride deletes every ClusterDrain of the cluster.
func (b *Backend) DeleteClusterOverride(ctx context.Context, cluster string) error {
	var l v1alpha1.ClusterDrainList
	if err := b.list(ctx, &l); err != nil {
		return fmt.Errorf("kubernetes API: delete ClusterDrain of cluster %q: %w: the write was not made", cluster, err)
	}
	for _, name := range namesToDelete(ObjectName(cluster), len(l.Items), func(i int) (string, bool) { return l.Items[i].Name, l.Items[i].Spec.Cluster == cluster }) {
		if err := b.deleteObject(ctx, kindClusterDrain, &v1alpha1.ClusterDrain{ObjectMeta: b.meta(name)}, nil); err != nil {
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

func (b *Backend) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: b.opts.Namespace, Name: name}
}

// deleteObject deletes obj; a missing one is no error. With preconditions,
// an object changed meanwhile is not deleted (and no error either).
func (b *Backend) deleteObject(ctx context.Context, kind string, obj client.Object, pre *metav1.Preconditions) error {
	var opts []client.DeleteOption
	if pre != nil {
		opts = append(opts, client.Preconditions(*pre))
	}
	err := b.write(ctx, "delete", kind, obj.GetName(), func(ctx context.Context) error { return b.client.Delete(ctx, obj, opts...) })
	if apierrors.IsNotFound(err) || pre != nil && apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// upsert makes the object name of kind hold what set gives it: it updates
// the object (read from the cache, and from the API server after a
// conflict) or creates it. It returns the object written.
func upsert[T client.Object](ctx context.Context, b *Backend, kind, name string, empty func() T, set func(T) error) (T, error) {
	cur := empty()
	err := b.cache.Get(ctx, client.ObjectKey{Namespace: b.opts.Namespace, Name: name}, cur)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		exists = false // the cache could not say: try to create, and read on AlreadyExists
	}
	for attempt := 0; ; attempt++ {
		if !exists {
			obj := empty()
			obj.SetNamespace(b.opts.Namespace)
			obj.SetName(name)
			if err := set(obj); err != nil {
				return obj, err
			}
			err := b.write(ctx, "create", kind, name, func(ctx context.Context) error { return b.client.Create(ctx, obj) })
			if err == nil || !apierrors.IsAlreadyExists(err) || attempt > 0 {
				return obj, err
			}
		} else {
			if err := set(cur); err != nil {
				return cur, err
			}
			err := b.write(ctx, "update", kind, name, func(ctx context.Context) error { return b.client.Update(ctx, cur) })
			if err == nil || !(apierrors.IsConflict(err) || apierrors.IsNotFound(err)) || attempt > 0 {
				return cur, err
			}
		}
		// Created or changed meanwhile (or deleted): read it from the API server and try once more.
		cur = empty()
		err := b.read(ctx, kind, name, cur)
		switch {
		case err == nil:
			exists = true
		case apierrors.IsNotFound(err):
			exists = false
		default:
			return cur, &writeError{verb: "update", kind: kind, namespace: b.opts.Namespace, name: name, err: err}
		}
	}
}
