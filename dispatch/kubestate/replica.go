package kubestate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
)

// Each replica writes its own DispatcherReplica, and no other: where its
// API listens, what it serves and the ProwJobs it admitted. The sum of
// every record's admissions is the demand counted from admissions.

// heartbeat is the room that writes this replica's record: what it
// serves, the drains it has in force and its admission counts.
type heartbeat struct {
	k       *kube
	leader  *leadership
	served  *servedTable
	pub     *publisher
	watcher *watcherRef
	now     chan struct{} // write the record now

	mu     sync.Mutex
	drains []string                // drainTokens of the drains the dispatcher was given last
	own    *demand.AdmissionCounts // the counts the record held at Start
}

func newHeartbeat(k *kube, leader *leadership, served *servedTable, pub *publisher, w *watcherRef) *heartbeat {
	return &heartbeat{k: k, leader: leader, served: served, pub: pub, watcher: w, now: make(chan struct{}, 1)}
}

// poke makes the loop write the record now.
func (h *heartbeat) poke() {
	select {
	case h.now <- struct{}{}:
	default:
	}
}

// setDrains records the drains the dispatcher has in force and, when they
// changed, writes the record at once: the leader waits for it to list its
// drain (ConfirmDrain).
func (h *heartbeat) setDrains(tokens []string) {
	h.mu.Lock()
	changed := !slices.Equal(tokens, h.drains)
	h.drains = tokens
	h.mu.Unlock()
	if changed {
		h.poke()
	}
}

func (h *heartbeat) setOwn(counts *demand.AdmissionCounts) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.own = counts
}

// ownCounts are the admission counts this replica's record held at Start.
func (h *heartbeat) ownCounts() *demand.AdmissionCounts {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.own
}

// run writes the record every HeartbeatInterval (and when poked) until
// ctx is done.
func (h *heartbeat) run(ctx context.Context) {
	ticker := h.k.opts.Clock.NewTicker(h.k.opts.HeartbeatInterval)
	defer ticker.Stop()
	for {
		if err := h.beat(ctx); err != nil && ctx.Err() == nil {
			h.k.log.Error(err, "Writing this replica's record")
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		case <-h.now:
		}
	}
}

// beat writes this replica's record, once a dispatcher is attached
// (before, its admission counts are unknown and the record keeps its own).
func (h *heartbeat) beat(ctx context.Context) error {
	r := h.watcher.get()
	if r == nil {
		return nil
	}
	admissions, err := encodeAdmissions(r.AdmissionCounts())
	if err != nil {
		return err
	}
	lv := h.leader.view()
	publication, rows := h.served.size()
	h.mu.Lock()
	drains := h.drains
	h.mu.Unlock()
	status := v1alpha1.DispatcherReplicaStatus{
		Heartbeat:   apiTime(h.k.opts.Clock.Now()),
		Leader:      lv.leading && lv.fenced == nil,
		Publication: publication,
		Rows:        int32(rows),
		Admissions:  admissions,
		Drains:      drains,
	}
	if lv.leading {
		status.UnpublishedSince = apiTime(h.pub.view().unpublishedSince)
	}
	spec := v1alpha1.DispatcherReplicaSpec{Address: h.k.opts.Address}
	written, err := upsert(ctx, h.k, kindDispatcherReplica, h.k.opts.Replica,
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
		return h.k.write(ctx, "update status", kindDispatcherReplica, h.k.opts.Replica, func(ctx context.Context) error {
			return h.k.client.Status().Update(ctx, written)
		})
	}
	return nil
}

// OwnAdmissions are the admission counts this replica's record held at
// Start (nil when it had none): a pod restarted under its name restores
// them, so its counts survive the restart.
func (b *Backend) OwnAdmissions() *demand.AdmissionCounts { return b.beat.ownCounts() }

// Demand is the demand counted from admissions by every replica: the sum
// of the admission counts in every DispatcherReplica within the demand
// window, this replica's taken live from the dispatcher instead of its
// record. No replica writes another's record, so nothing is lost to
// concurrent writes.
func (b *Backend) Demand() demand.Source { return b.demand }

// replicasDemand is the room of the demand counted from admissions, with
// the replicas' counts decoded once per resource version.
type replicasDemand struct {
	k       *kube
	watcher *watcherRef
	own     func() *demand.AdmissionCounts

	mu      sync.Mutex
	counts  map[string]decodedAdmissions // replica name -> its counts at a resource version
	ignored map[string]string            // replica name -> why the last demand left its counts out
}

// decodedAdmissions are a replica's admission counts at a resource version.
type decodedAdmissions struct {
	resourceVersion string
	counts          *demand.AdmissionCounts
	err             error
}

// Demand sums the counts of every replica's record (see Backend.Demand).
func (d *replicasDemand) Demand(ctx context.Context) (map[string]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var l v1alpha1.DispatcherReplicaList
	if err := d.k.list(ctx, &l); err != nil {
		return nil, fmt.Errorf("kubernetes state backend: demand: listing the replicas: %w", err)
	}
	r := d.watcher.get()
	first := dayNumber(d.k.opts.Clock.Now()) - int64((d.k.opts.DemandWindow+24*time.Hour-1)/(24*time.Hour)) + 1
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
		if dr.Name == d.k.opts.Replica && r != nil {
			selfSeen = true
			add(r.AdmissionCounts())
			continue
		}
		counts, err := d.admissionsOf(dr)
		if err == nil {
			err = plausibleRecord(dr, counts, d.k.opts.Clock.Now())
		}
		if err != nil {
			ignored[dr.Name] = err.Error()
			continue
		}
		add(counts)
	}
	d.setIgnored(ignored)
	if !selfSeen {
		if r != nil {
			add(r.AdmissionCounts())
		} else {
			add(d.own())
		}
	}
	d.mu.Lock()
	for name := range d.counts {
		if !present[name] {
			delete(d.counts, name)
		}
	}
	d.mu.Unlock()
	return out, nil
}

// admissionsOf decodes a record's counts once per resource version.
func (d *replicasDemand) admissionsOf(dr *v1alpha1.DispatcherReplica) (*demand.AdmissionCounts, error) {
	d.mu.Lock()
	c, ok := d.counts[dr.Name]
	d.mu.Unlock()
	if ok && c.resourceVersion == dr.ResourceVersion {
		return c.counts, c.err
	}
	counts, err := decodeAdmissions(dr.Status.Admissions)
	if err != nil {
		err = fmt.Errorf("DispatcherReplica %s: %w", dr.Name, err)
	}
	d.mu.Lock()
	d.counts[dr.Name] = decodedAdmissions{resourceVersion: dr.ResourceVersion, counts: counts, err: err}
	d.mu.Unlock()
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
func (d *replicasDemand) setIgnored(ignored map[string]string) {
	d.mu.Lock()
	for name, why := range ignored {
		if d.ignored[name] != why {
			d.k.log.Error(errors.New(why), "A replica's admission counts are left out of the demand", "replica", name)
		}
	}
	d.ignored = ignored
	d.mu.Unlock()
	d.k.metrics.replicasIgnored.Set(float64(len(ignored)))
}

// ignoredReplicas are the replicas the last demand left out, with why, sorted.
func (d *replicasDemand) ignoredReplicas() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, why := range d.ignored {
		out = append(out, name+": "+why)
	}
	slices.Sort(out)
	return out
}
