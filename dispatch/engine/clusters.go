package engine

import (
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// maxKnownClusters bounds the clusters of the cluster config plus the manual
// clusters, so that a set of clusters fits one machine word.
const maxKnownClusters = 64

// clusterInfo is one cluster the engine knows: from the cluster config, a
// manual cluster, a service cluster, or a cluster only an override or the
// previous table names.
type clusterInfo struct {
	name      string
	provider  string
	capacity  int
	cfgCap    int // the cluster config's capacity, before caps
	caps      []string
	blocked   bool // takes no new job: blocked in the cluster config, or drained
	cfgBlock  bool // blocked in the cluster config
	override  *table.Drain
	manual    bool
	service   bool // config.RoleService: named by the dispatcher config or a job's pin only
	inventory bool
}

// usable reports whether balancing may choose the cluster.
func (c *clusterInfo) usable() bool { return c.inventory && !c.blocked && !c.manual }

// known reports whether the cluster is in the cluster config, manual, or a
// service cluster: a cluster that may run the jobs that name it.
func (c *clusterInfo) known() bool { return c.inventory || c.manual || c.service }

// role is the cluster's config.Role*, empty for a cluster only an override or the previous table names.
func (c *clusterInfo) role() string {
	switch {
	case c.manual:
		return config.RoleManual
	case c.inventory:
		return config.RoleBuild
	case c.service:
		return config.RoleService
	}
	return ""
}

// clusterSet is a set of known clusters: bit i is e.clusters[i].
type clusterSet uint64

func (s clusterSet) has(i int) bool { return i < maxKnownClusters && s&(1<<uint(i)) != 0 }
func (s clusterSet) len() int       { return bits.OnesCount64(uint64(s)) }

// each calls f for every member, in cluster-name order.
func (s clusterSet) each(f func(i int)) {
	for s != 0 {
		i := bits.TrailingZeros64(uint64(s))
		f(i)
		s &^= 1 << uint(i)
	}
}

func setOf(i int) clusterSet { return 1 << uint(i) }

// indexClusters builds the sorted list of known clusters: every cluster of the
// cluster config, every manual cluster and every service cluster.
func indexClusters(cc *config.Clusters, manual, service []string) ([]clusterInfo, error) {
	byName := map[string]*clusterInfo{}
	var list []*clusterInfo
	if cc != nil {
		providers := make([]string, 0, len(cc.Providers))
		for p := range cc.Providers {
			providers = append(providers, p)
		}
		sort.Strings(providers)
		for _, p := range providers {
			for _, c := range cc.Providers[p] {
				if _, dup := byName[c.Name]; dup {
					continue // the loader rejects duplicates; the first in provider order wins here
				}
				capacity := c.Capacity
				if capacity <= 0 {
					capacity = config.DefaultCapacity
				}
				caps := append([]string(nil), c.Capabilities...)
				sort.Strings(caps)
				ci := &clusterInfo{name: c.Name, provider: p, capacity: capacity, cfgCap: capacity, caps: caps, blocked: c.Blocked, cfgBlock: c.Blocked, inventory: true}
				byName[c.Name] = ci
				list = append(list, ci)
			}
		}
	}
	for _, m := range manual {
		if ci, ok := byName[m]; ok {
			ci.manual = true
			continue
		}
		ci := &clusterInfo{name: m, manual: true}
		byName[m] = ci
		list = append(list, ci)
	}
	for _, n := range service {
		if _, ok := byName[n]; ok {
			continue
		}
		ci := &clusterInfo{name: n, service: true}
		byName[n] = ci
		list = append(list, ci)
	}
	if len(list) > maxKnownClusters {
		return nil, fmt.Errorf("%d clusters (cluster config, manual and service clusters): at most %d supported", len(list), maxKnownClusters)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	out := make([]clusterInfo, len(list))
	for i, c := range list {
		out[i] = *c
	}
	return out, nil
}

// names lists the set's cluster names, comma-separated.
func (e *Engine) names(s clusterSet) string {
	var b strings.Builder
	s.each(func(i int) {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.clusters[i].name)
	})
	return b.String()
}

// clusterIndex returns the index of the named cluster, adding an unknown
// cluster (one only a pin, an override or the previous table names) on first sight.
func (e *Engine) clusterIndex(name string) int {
	if i, ok := e.byName[name]; ok {
		return i
	}
	e.clusters = append(e.clusters, clusterInfo{name: name})
	e.loads = append(e.loads, load{})
	i := len(e.clusters) - 1
	e.byName[name] = i
	return i
}

// lookup returns the named cluster, if the engine has seen it.
func (e *Engine) lookup(name string) (*clusterInfo, bool) {
	i, ok := e.byName[name]
	if !ok {
		return nil, false
	}
	return &e.clusters[i], true
}

// ServiceClusters returns the names of the service clusters the engine
// knows (config.RoleService), sorted.
func (e *Engine) ServiceClusters() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for i := range e.clusters {
		if e.clusters[i].role() == config.RoleService {
			out = append(out, e.clusters[i].name)
		}
	}
	return out
}

// applyDrains applies the drains and capacity caps active at now
// to the clusters of the cluster config.
func applyDrains(clusters []clusterInfo, overrides map[string]table.Drain, now time.Time) {
	for i := range clusters {
		c := &clusters[i]
		o, ok := overrides[c.name]
		if !ok || !c.inventory || !o.Active(now) {
			continue
		}
		c.override = &o
		if o.Drain() {
			c.blocked = true
		} else if o.Capacity < c.capacity {
			c.capacity = o.Capacity
		}
	}
}

// unavailableNote says why rules naming cluster skip it: blocked in the
// cluster config, or drained.
func (e *Engine) unavailableNote(cluster string) string {
	if c, ok := e.lookup(cluster); ok && c.override != nil && c.override.Drain() && !c.cfgBlock {
		return " (" + cluster + " is drained until " + c.override.Expires.UTC().Format(time.RFC3339) + ": skipped)"
	}
	return " (" + cluster + " is blocked: skipped)"
}
