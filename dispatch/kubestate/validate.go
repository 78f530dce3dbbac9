package kubestate

import (
	"fmt"
	"slices"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Every object read from the API is validated before it steers anything:
// an operator may create JobOverrides and ClusterDrains with kubectl, and
// the CRDs' schemas bound only their shape. An object refused here is left
// out (logged once, counted, shown in Status) as if it were absent.

// Bounds of the objects' fields, as the CRDs' markers state them too.
const (
	maxClusterName = 253
	maxReason      = 1024
	maxBy          = 256
	// maxObjectLifetime bounds how far in the future an override or a
	// drain may expire: further is no operator's intent (2562047h is).
	maxObjectLifetime = 366 * 24 * time.Hour
)

// checkOverride says why a JobOverride may not be put in force; check,
// when set, checks its cluster against the cluster config.
func checkOverride(jo *v1alpha1.JobOverride, now time.Time, check func(table.Assignment) error) error {
	sp := &jo.Spec
	if err := checkFields(sp.Job, sp.Cluster, sp.Reason, sp.By); err != nil {
		return err
	}
	if t := goTime(sp.Expires); !t.IsZero() && t.After(now.Add(maxObjectLifetime)) {
		return fmt.Errorf("expires %s, more than %s ahead", t.Format(time.RFC3339), maxObjectLifetime)
	}
	if check != nil {
		return check(table.Assignment{Job: sp.Job, Cluster: sp.Cluster, Reason: table.ReasonOverride})
	}
	return nil
}

// checkDrain says why a ClusterDrain may not be put in force; check, when
// set, checks its cluster against the cluster config.
func checkDrain(cd *v1alpha1.ClusterDrain, now time.Time, check func(table.Assignment) error) error {
	sp := &cd.Spec
	if err := checkFields("-", sp.Cluster, sp.Reason, sp.By); err != nil {
		return err
	}
	switch t := goTime(&sp.Expires); {
	case t.IsZero():
		return fmt.Errorf("no expiry: drains always expire")
	case t.After(now.Add(maxObjectLifetime)):
		return fmt.Errorf("expires %s, more than %s ahead", t.Format(time.RFC3339), maxObjectLifetime)
	}
	if sp.Capacity < 0 || sp.Capacity > 100 {
		return fmt.Errorf("capacity %d not in 0..100", sp.Capacity)
	}
	if check != nil {
		return check(table.Assignment{Cluster: sp.Cluster, Reason: table.ReasonOverride})
	}
	return nil
}

// checkFields bounds the fields overrides and drains share.
func checkFields(job, cluster, reason, by string) error {
	switch {
	case job == "" || len(job) > dispatch.MaxJobNameBytes:
		return fmt.Errorf("job name of %d bytes: want 1..%d", len(job), dispatch.MaxJobNameBytes)
	case cluster == "" || len(cluster) > maxClusterName:
		return fmt.Errorf("cluster name of %d bytes: want 1..%d", len(cluster), maxClusterName)
	case len(reason) > maxReason:
		return fmt.Errorf("reason of %d bytes: at most %d", len(reason), maxReason)
	case len(by) > maxBy:
		return fmt.Errorf("by of %d bytes: at most %d", len(by), maxBy)
	}
	return nil
}

// setRefusedObjects records the objects of kind refused (name -> why), and
// logs each once it is first refused.
func (f *follower) setRefusedObjects(kind string, refused map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.objectsRefused == nil {
		f.objectsRefused = map[string]map[string]string{}
	}
	for name, why := range refused {
		if f.objectsRefused[kind][name] != why {
			f.k.log.Error(fmt.Errorf("%s %s: %s", kind, name, why), "An object of the shared state refused: it is left out", "kind", kind, "name", name)
		}
	}
	f.objectsRefused[kind] = refused
	f.k.metrics.objectsRefused.WithLabelValues(kind).Set(float64(len(refused)))
}

// refusedObjects lists the objects refused, as "Kind name: why", sorted. Callers hold mu.
func (f *follower) refusedObjectsLocked() []string {
	var out []string
	for kind, m := range f.objectsRefused {
		for name, why := range m {
			out = append(out, kind+" "+name+": "+shortName(why))
		}
	}
	slices.Sort(out)
	return out
}
