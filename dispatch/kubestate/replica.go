package kubestate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
)

// Each replica writes its own DispatcherReplica, and no other: where its
// API listens, what it serves and the ProwJobs it admitted. The sum of
// every record's admissions is the demand counted from admissions.

// heartbeatLoop writes the record every HeartbeatInterval (and when the
// leadership changes) until ctx is done.
func (b *Backend) heartbeatLoop(ctx context.Context) {
	ticker := b.opts.Clock.NewTicker(b.opts.HeartbeatInterval)
	defer ticker.Stop()
	for {
		if err := b.heartbeat(ctx); err != nil && ctx.Err() == nil {
			b.log.Error(err, "Writing this replica's record")
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		case <-b.beatNow:
		}
	}
}

// heartbeat writes this replica's record, once a dispatcher is attached
// (before, its admission counts are unknown and the record keeps its own).
func (b *Backend) heartbeat(ctx context.Context) error {
	r := b.attached()
	if r == nil {
		return nil
	}
	admissions, err := encodeAdmissions(r.AdmissionCounts())
	if err != nil {
		return err
	}
	b.mu.Lock()
	_, _, fenced := b.fenceLocked()
	status := v1alpha1.DispatcherReplicaStatus{
		Heartbeat:   apiTime(b.opts.Clock.Now()),
		Leader:      b.leading && fenced == nil,
		Publication: b.publication,
		Rows:        int32(len(b.tableRows)),
		Admissions:  admissions,
		Drains:      b.drainsInForce,
	}
	if b.leading {
		status.UnpublishedSince = apiTime(b.unpublishedSince)
	}
	b.mu.Unlock()
	spec := v1alpha1.DispatcherReplicaSpec{Address: b.opts.Address}
	written, err := upsert(ctx, b, kindDispatcherReplica, b.opts.Replica,
		func() *v1alpha1.DispatcherReplica { return &v1alpha1.DispatcherReplica{} },
		func(dr *v1alpha1.DispatcherReplica) error {
			dr.Spec, dr.Status = spec, status
			return nil
		})
	if err != nil {
		return err
	}
	if written.Status.Heartbeat == nil { // a CRD with a status subresource dropped it
		written.Status = status
		return b.write(ctx, "update status", kindDispatcherReplica, b.opts.Replica, func(ctx context.Context) error {
			return b.client.Status().Update(ctx, written)
		})
	}
	return nil
}

// OwnAdmissions are the admission counts this replica's record held at
// Start (nil when it had none): a pod restarted under its name restores
// them, so its counts survive the restart.
func (b *Backend) OwnAdmissions() *demand.AdmissionCounts {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.own
}

// Demand is the demand counted from admissions by every replica: the sum
// of the admission counts in every DispatcherReplica within the demand
// window, this replica's taken live from the dispatcher instead of its
// record. No replica writes another's record, so nothing is lost to
// concurrent writes.
func (b *Backend) Demand() demand.Source { return replicasDemand{b} }

type replicasDemand struct{ b *Backend }

func (d replicasDemand) Demand(ctx context.Context) (map[string]float64, error) {
	return d.b.demand(ctx)
}

func (b *Backend) demand(ctx context.Context) (map[string]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var l v1alpha1.DispatcherReplicaList
	if err := b.list(ctx, &l); err != nil {
		return nil, fmt.Errorf("kubernetes state backend: demand: listing the replicas: %w", err)
	}
	r := b.attached()
	first := dayNumber(b.opts.Clock.Now()) - int64((b.opts.DemandWindow+24*time.Hour-1)/(24*time.Hour)) + 1
	out := map[string]float64{}
	add := func(ac *demand.AdmissionCounts) {
		if ac == nil {
			return
		}
		for _, dc := range ac.Days {
			if dayNumber(dc.Day) < first {
				continue
			}
			for job, n := range dc.Jobs {
				if n > 0 {
					out[job] += n
				}
			}
		}
	}
	selfSeen := false
	present := map[string]bool{}
	ignored := map[string]string{}
	for i := range l.Items {
		dr := &l.Items[i]
		present[dr.Name] = true
		if dr.Name == b.opts.Replica && r != nil {
			selfSeen = true
			add(r.AdmissionCounts())
			continue
		}
		counts, err := b.admissionsOf(dr)
		if err == nil {
			err = plausibleRecord(dr, counts, b.opts.Clock.Now())
		}
		if err != nil {
			ignored[dr.Name] = err.Error()
			continue
		}
		add(counts)
	}
	b.setIgnored(ignored)
	if !selfSeen {
		if r != nil {
			add(r.AdmissionCounts())
		} else {
			add(b.OwnAdmissions())
		}
	}
	b.admMu.Lock()
	for name := range b.admCounts {
		if !present[name] {
			delete(b.admCounts, name)
		}
	}
	b.admMu.Unlock()
	return out, nil
}

// admissionsOf decodes a record's counts once per resource version.
func (b *Backend) admissionsOf(dr *v1alpha1.DispatcherReplica) (*demand.AdmissionCounts, error) {
	b.admMu.Lock()
	d, ok := b.admCounts[dr.Name]
	b.admMu.Unlock()
	if ok && d.resourceVersion == dr.ResourceVersion {
		return d.counts, d.err
	}
	counts, err := decodeAdmissions(dr.Status.Admissions)
	if err != nil {
		err = fmt.Errorf("DispatcherReplica %s: %w", dr.Name, err)
	}
	b.admMu.Lock()
	b.admCounts[dr.Name] = decodedAdmissions{resourceVersion: dr.ResourceVersion, counts: counts, err: err}
	b.admMu.Unlock()
	return counts, err
}

// dayNumber is the UTC day of t, as demand.Admissions buckets it.
func dayNumber(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s+1)/86400 - 1
	}
	return s / 86400
}

// Bounds of a DispatcherReplica's admission counts: a replica admits no
// job more than maxJobAdmissionsPerDay times a day (OpenShift CI's busiest
// jobs run a few hundred times), nor more than maxAdmissionsPerDay ProwJobs
// a day in all. A record past them, or claiming days to come, or that no
// replica wrote (no heartbeat, or one from the future), is left out of the
// demand whole: it would skew every job's balance.
const (
	maxJobAdmissionsPerDay = 100_000
	maxAdmissionsPerDay    = 10_000_000
	maxHeartbeatSkew       = 5 * time.Minute
)

// plausibleRecord says why a replica's record and counts cannot be demand.
func plausibleRecord(dr *v1alpha1.DispatcherReplica, ac *demand.AdmissionCounts, now time.Time) error {
	hb := goTime(dr.Status.Heartbeat)
	switch {
	case hb.IsZero():
		return fmt.Errorf("DispatcherReplica %s: no heartbeat: no replica wrote it", dr.Name)
	case hb.After(now.Add(maxHeartbeatSkew)):
		return fmt.Errorf("DispatcherReplica %s: heartbeat %s is in the future", dr.Name, hb.Format(time.RFC3339))
	}
	if ac == nil {
		return nil
	}
	today := dayNumber(now)
	for _, dc := range ac.Days {
		if dayNumber(dc.Day) > today+1 {
			return fmt.Errorf("DispatcherReplica %s: counts of day %s, to come", dr.Name, dc.Day.Format(time.DateOnly))
		}
		total := 0.0
		for job, n := range dc.Jobs {
			if math.IsNaN(n) || n < 0 || n > maxJobAdmissionsPerDay {
				return fmt.Errorf("DispatcherReplica %s: %v admissions of job %q on %s: not in 0..%d", dr.Name, n, shortName(job), dc.Day.Format(time.DateOnly), maxJobAdmissionsPerDay)
			}
			total += n
		}
		if total > maxAdmissionsPerDay {
			return fmt.Errorf("DispatcherReplica %s: %v admissions on %s, more than %d", dr.Name, total, dc.Day.Format(time.DateOnly), maxAdmissionsPerDay)
		}
	}
	return nil
}

// setIgnored records the replicas whose counts the demand left out, and
// logs each once it is first left out.
func (b *Backend) setIgnored(ignored map[string]string) {
	b.admMu.Lock()
	for name, why := range ignored {
		if b.ignored[name] != why {
			b.log.Error(errors.New(why), "A replica's admission counts are left out of the demand", "replica", name)
		}
	}
	b.ignored = ignored
	b.admMu.Unlock()
	b.metrics.replicasIgnored.Set(float64(len(ignored)))
}

// ignoredReplicas are the replicas the last demand left out, with why, sorted.
func (b *Backend) ignoredReplicas() []string {
	b.admMu.Lock()
	defer b.admMu.Unlock()
	var out []string
	for name, why := range b.ignored {
		out = append(out, name+": "+why)
	}
	slices.Sort(out)
	return out
}
