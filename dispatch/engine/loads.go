package engine

import (
	"sort"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// addRow appends a row to the current table and counts its load.
func (e *Engine) addRow(a table.Assignment) {
	e.rowIndex[a.Job] = len(e.rows)
	e.rows = append(e.rows, a)
	e.count(a, 1)
}

// count adds (sign 1) or removes (sign -1) a row's load.
func (e *Engine) count(a table.Assignment, sign int) {
	i := e.clusterIndex(a.Cluster)
	l := &e.loads[i]
	l.jobs += sign
	l.demand += float64(sign) * a.Demand
	if a.Reason.Balanced() {
		l.balancedJobs += sign
		l.balancedDemand += float64(sign) * a.Demand
	}
	if e.usable.has(i) {
		e.total += float64(sign) * a.Demand
	}
}

// target is usable cluster i's capacity-weighted share of all the demand
// on usable clusters, whichever rule placed it; 0 for any other cluster.
func (e *Engine) target(i int) float64 {
	if !e.usable.has(i) || e.capacity == 0 {
		return 0
	}
	return e.total * float64(e.clusters[i].capacity) / e.capacity
}

// clusterLoad describes cluster i with its current load.
func (e *Engine) clusterLoad(i int) ClusterLoad {
	c := &e.clusters[i]
	l := e.loads[i]
	cl := ClusterLoad{
		Name:           c.name,
		Provider:       c.provider,
		Capabilities:   c.caps,
		Blocked:        c.cfgBlock,
		Override:       c.override,
		Manual:         c.manual,
		Role:           c.role(),
		Jobs:           l.jobs,
		Demand:         l.demand,
		BalancedJobs:   l.balancedJobs,
		BalancedDemand: l.balancedDemand,
		ForcedJobs:     l.jobs - l.balancedJobs,
		ForcedDemand:   l.demand - l.balancedDemand,
		Target:         e.target(i),
	}
	if c.inventory {
		cl.ConfiguredCapacity = c.cfgCap
	}
	if c.inventory && (c.override == nil || !c.override.Drain()) {
		cl.Capacity = c.capacity
	}
	if cl.Target > 0 {
		cl.Ratio = cl.Demand / cl.Target
	}
	return cl
}

// Loads returns every cluster's current load, sorted by name: the clusters
// of the cluster config, the manual clusters, and any other cluster a row
// names (a pin or an override to a cluster outside the config).
func (e *Engine) Loads() []ClusterLoad {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.loadsLocked()
}

func (e *Engine) loadsLocked() []ClusterLoad {
	out := make([]ClusterLoad, 0, len(e.clusters))
	for i := range e.clusters {
		if !e.clusters[i].known() && e.loads[i].jobs == 0 {
			continue
		}
		out = append(out, e.clusterLoad(i))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// imbalance is the largest load/target ratio among the usable clusters.
func imbalance(loads []ClusterLoad) float64 {
	var m float64
	for _, l := range loads {
		if !l.Blocked && l.Role == config.RoleBuild && l.Capacity > 0 && l.Ratio > m {
			m = l.Ratio
		}
	}
	return m
}
