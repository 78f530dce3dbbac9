package engine

import (
	"fmt"
	"math"
	"strings"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// fileLoad is the share of one job file's balanced rows on one cluster.
type fileLoad struct {
	cluster int
	jobs    int
	demand  float64
}

// Place assigns one job from the current loads, by every rule, and counts it
// in the loads (replacing its row if it has one). A balanced job joins the
// cluster that already runs its job file's jobs when that cluster is
// eligible, and otherwise goes to the least-loaded eligible cluster; a job
// already in the table stays where it is while that is still eligible. A job
// no usable cluster can take gets its previous cluster or the default, with
// the reason in its Detail. AssignedAt is Input.Now for a new cluster.
// Errors: ErrNotDispatched (agent not kubernetes), ErrNoCluster (nowhere to go).
func (e *Engine) Place(job jobs.Job) (table.Assignment, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, err := e.place(&job)
	if err != nil {
		return table.Assignment{}, err
	}
	if i, ok := e.rowIndex[a.Job]; ok {
		old := e.rows[i]
		e.count(old, -1)
		e.countFile(old, -1)
		e.rows[i] = a
		e.count(a, 1)
	} else {
		e.addRow(a)
	}
	e.countFile(a, 1)
	return a, nil
}

// Preview returns where Place would put the job now, without recording it.
func (e *Engine) Preview(job jobs.Job) (table.Assignment, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.place(&job)
}

// PlaceProvisional is Place for a job first seen at admission that the job
// config lacks, whose demand is what it was observed to run (see
// Input.Provisional), never the default demand.
func (e *Engine) PlaceProvisional(job jobs.Job, demand float64) (table.Assignment, error) {
	e.mu.Lock()
	e.provisional[job.Name] = demand
	e.mu.Unlock()
	return e.Place(job)
}

// KeepProvisional is PlaceProvisional for a job whose row the engine's
// Input did not hold (a row admitted after the Input was taken): the job
// stays on row's cluster while that is eligible, as a job of
// Input.Previous does.
func (e *Engine) KeepProvisional(job jobs.Job, demand float64, row table.Assignment) (table.Assignment, error) {
	e.mu.Lock()
	e.provisional[job.Name] = demand
	if _, ok := e.previous[job.Name]; !ok && row.Cluster != "" {
		if e.previous == nil {
			e.previous = map[string]previousRow{}
		}
		e.previous[job.Name] = previousRow{cluster: row.Cluster, reason: row.Reason, at: row.AssignedAt}
	}
	e.mu.Unlock()
	return e.Place(job)
}

// Spread is Preview for a job the table will not hold (one admitted past
// the provisional cap): the loads never count such jobs, so the
// least-loaded cluster would take every one of them. A balanced job goes
// instead to an eligible cluster chosen by a capacity-weighted hash of its
// name, so that such jobs spread by capacity and a name goes to the same
// cluster, on every replica, while the eligible clusters and their
// capacities stay. Every other rule decides as in Place.
func (e *Engine) Spread(job jobs.Job) (table.Assignment, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.decideRow(&job, true)
}

// place decides one job against the current loads without recording it.
func (e *Engine) place(j *jobs.Job) (table.Assignment, error) {
	return e.decideRow(j, false)
}

// hashed is Spread's choice among the eligible clusters: weighted
// rendezvous hashing, the cluster with the highest -capacity/ln(u), u being
// the hash of the job and cluster names (FNV-1a, then murmur3's finalizer,
// so that names differing in one byte land apart) mapped into (0, 1), wins
// with a probability of its share of the set's capacity.
func (e *Engine) hashed(job string, set clusterSet) int {
	best, bestScore := -1, 0.0
	set.each(func(c int) {
		h := fmix64(fnv1a(fnv1a(fnv1a(fnvOffset, job), "\x00"), e.clusters[c].name))
		u := (float64(h>>11) + 0.5) / (1 << 53)
		score := -float64(e.clusters[c].capacity) / math.Log(u)
		if best < 0 || score > bestScore {
			best, bestScore = c, score
		}
	})
	return best
}

// fnvOffset is FNV-1a's 64-bit offset basis.
const fnvOffset uint64 = 14695981039346656037

// fnv1a continues the 64-bit FNV-1a hash h over s, without allocating.
func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// fmix64 is murmur3's 64-bit finalizer: every input bit flips each output
// bit with a probability of about one half.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// decideRow decides one job without recording it. A balanced job with no
// eligible cluster of its own or of its job file goes to the least-loaded
// eligible cluster, or, with spread, to the one hashed picks.
func (e *Engine) decideRow(j *jobs.Job, spread bool) (table.Assignment, error) {
	if !dispatched(j) {
		return table.Assignment{}, fmt.Errorf("job %q: agent %q: %w", j.Name, j.Agent, ErrNotDispatched)
	}
	prev := e.current(j.Name)
	d := e.decide(j, prev)
	a := table.Assignment{Job: j.Name, Reason: d.reason, Detail: d.detail, File: j.File, Demand: e.demandOf(j.Name), AssignedAt: e.in.Now}
	switch d.kind {
	case fixedJob, unplaceable:
		if d.kind == unplaceable && d.cluster == "" {
			return table.Assignment{}, fmt.Errorf("job %q: %s: %w", j.Name, d.problem, ErrUnplaceable)
		}
		if d.cluster == "" {
			return table.Assignment{}, fmt.Errorf("job %q: %s, and the dispatcher config names no default cluster: %w", j.Name, d.detail, ErrNoCluster)
		}
		a.Cluster = d.cluster
	case balanceJob:
		c := -1
		if p, ok := e.byName[prev.cluster]; ok && d.set.has(p) {
			c = p
		} else if c = e.fileCluster(j.File, d.set); c < 0 && spread {
			c = e.hashed(j.Name, d.set)
		} else if c < 0 {
			c = e.leastLoaded(d.set, a.Demand, 1, e.loadOf)
		}
		a.Cluster = e.clusters[c].name
	}
	if prev.cluster == a.Cluster && !prev.at.IsZero() {
		a.AssignedAt = prev.at
	}
	return a, nil
}

// current is where the job is now: its row in the current table, else its previous row.
func (e *Engine) current(job string) previousRow {
	if i, ok := e.rowIndex[job]; ok {
		a := &e.rows[i]
		return previousRow{cluster: a.Cluster, reason: a.Reason, at: a.AssignedAt}
	}
	return e.previous[job]
}

// loadOf is cluster c's whole load: every row on it, by any rule, as its target counts them.
func (e *Engine) loadOf(c int) (float64, int) {
	return e.loads[c].demand, e.loads[c].jobs
}

// fileCluster returns the eligible cluster holding most of the job file's
// balanced demand, or -1.
func (e *Engine) fileCluster(file string, set clusterSet) int {
	if file == "" {
		return -1
	}
	if e.files == nil {
		e.files = map[string][]fileLoad{}
		for _, a := range e.rows {
			e.countFile(a, 1)
		}
	}
	best := -1
	var bestDemand float64
	var bestJobs int
	for _, f := range e.files[file] {
		if f.jobs <= 0 || !set.has(f.cluster) {
			continue
		}
		if best < 0 || f.demand > bestDemand || (f.demand == bestDemand && (f.jobs > bestJobs || (f.jobs == bestJobs && f.cluster < best))) {
			best, bestDemand, bestJobs = f.cluster, f.demand, f.jobs
		}
	}
	return best
}

// countFile adds or removes a balanced row in the per-file index, once built.
func (e *Engine) countFile(a table.Assignment, sign int) {
	if e.files == nil || a.File == "" || !a.Reason.Balanced() {
		return
	}
	c := e.clusterIndex(a.Cluster)
	list := e.files[a.File]
	for k := range list {
		if list[k].cluster == c {
			list[k].jobs += sign
			list[k].demand += float64(sign) * a.Demand
			return
		}
	}
	if sign > 0 {
		e.files[a.File] = append(list, fileLoad{cluster: c, jobs: 1, demand: a.Demand})
	}
}

// Best returns the least-loaded usable cluster that meets the job's
// requirements (capabilities, kvm, no-builds, cloud), leaving out the
// excluded clusters; it ignores overrides, pins and groups. It fails with
// ErrNoCluster when no cluster is left.
func (e *Engine) Best(job jobs.Job, exclude ...string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var buf [4]constraint
	cons := e.constraints(&job.Requirements, buf[:0])
	set := e.usable
	var descs []string
	if len(cons) > 0 {
		set, _ = eligible(cons)
		descs = []string{cons[0].desc}
	}
	for _, x := range exclude {
		if i, ok := e.byName[x]; ok && i < maxKnownClusters {
			set &^= setOf(i)
		}
	}
	if set == 0 {
		what := "the job"
		if len(descs) > 0 {
			what = strings.Join(descs, ", ")
		}
		excluding := ""
		if len(exclude) > 0 {
			excluding = " other than " + strings.Join(exclude, ", ")
		}
		return "", fmt.Errorf("job %q: no usable cluster%s for %s: %w", job.Name, excluding, what, ErrNoCluster)
	}
	return e.clusters[e.leastLoaded(set, e.demandOf(job.Name), 1, e.loadOf)].name, nil
}

// CanRun returns nil if the job may run on the cluster: the cluster is in
// the cluster config or manual, is not blocked, and has every capability the
// job requires (manual clusters declare none). Otherwise the error says why
// and wraps ErrUnknownCluster, ErrBlockedCluster or ErrMissingCapability.
func (e *Engine) CanRun(job jobs.Job, cluster string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.lookup(cluster)
	if !ok || !c.known() {
		return fmt.Errorf("job %q: cluster %q is neither in the cluster config nor a manual cluster: %w", job.Name, cluster, ErrUnknownCluster)
	}
	if c.blocked {
		return fmt.Errorf("job %q: cluster %q%s: %w", job.Name, cluster, e.unavailableNote(cluster), ErrBlockedCluster)
	}
	var missing []string
	for _, need := range job.Requirements.Capabilities {
		if e.capSets[need]&setOf(e.byName[cluster]) == 0 {
			missing = append(missing, need)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("job %q: cluster %q lacks capabilities [%s]: %w", job.Name, cluster, strings.Join(missing, " "), ErrMissingCapability)
	}
	return nil
}
