package engine

import (
	"cmp"
	"slices"
	"sort"
)

// unit is what balancing places: the balanced or constrained jobs of one job
// file that have the same eligible clusters (a job without a file is a unit
// of its own). The jobs of a unit always share a cluster.
type unit struct {
	file    string
	set     clusterSet
	demand  float64
	jobs    int
	members []int // indices of the unit's rows
	cluster int   // -1 while unplaced
}

type unitKey struct {
	file string
	set  clusterSet
}

// balancer holds the loads of one balancing pass. A usable cluster's load
// is its forced demand (the rows rules placed on it outright) plus the
// units on it; targets split all of it, forced and balanced, by capacity
// among the usable clusters.
type balancer struct {
	e         *Engine
	units     []unit
	load      []float64 // by cluster index
	jobs      []int
	forced    []float64 // the part of load rules placed
	target    []float64
	onCluster [][]int // unit indices by cluster
	moved     int     // jobs moved by rebalance
}

// newBalancer starts a pass over units, with forced[c] demand (forcedJobs[c]
// jobs) already on each usable cluster c.
func newBalancer(e *Engine, units []unit, forced []float64, forcedJobs []int) *balancer {
	n := len(e.clusters)
	b := &balancer{e: e, units: units, load: make([]float64, n), jobs: make([]int, n), forced: make([]float64, n), target: make([]float64, n), onCluster: make([][]int, n)}
	var total float64
	for i := range units {
		total += units[i].demand
	}
	e.usable.each(func(c int) {
		b.forced[c], b.load[c], b.jobs[c] = forced[c], forced[c], forcedJobs[c]
		total += forced[c]
	})
	if e.capacity > 0 {
		e.usable.each(func(c int) { b.target[c] = total * float64(e.clusters[c].capacity) / e.capacity })
	}
	return b
}

// put places unit u on cluster c.
func (b *balancer) put(u, c int) {
	b.units[u].cluster = c
	b.load[c] += b.units[u].demand
	b.jobs[c] += b.units[u].jobs
	b.onCluster[c] = append(b.onCluster[c], u)
}

// take removes unit u from its cluster.
func (b *balancer) take(u int) {
	c := b.units[u].cluster
	b.load[c] -= b.units[u].demand
	b.jobs[c] -= b.units[u].jobs
	list := b.onCluster[c]
	for k, v := range list {
		if v == u {
			list[k] = list[len(list)-1]
			b.onCluster[c] = list[:len(list)-1]
			break
		}
	}
	b.units[u].cluster = -1
}

// keepPrevious leaves every unit whose previous cluster is still eligible
// there. A unit's previous cluster is the eligible cluster that held most of
// its jobs' demand (then most jobs, then the first by name).
func (b *balancer) keepPrevious(prevCluster func(row int) (int, bool), demandOf func(row int) float64) {
	var acc [maxKnownClusters]float64
	var cnt [maxKnownClusters]int
	for u := range b.units {
		un := &b.units[u]
		var seen clusterSet
		for _, r := range un.members {
			c, ok := prevCluster(r)
			if !ok || !un.set.has(c) {
				continue
			}
			seen |= setOf(c)
			acc[c] += demandOf(r)
			cnt[c]++
		}
		if seen == 0 {
			continue
		}
		best := -1
		seen.each(func(c int) {
			if best < 0 || acc[c] > acc[best] || (acc[c] == acc[best] && cnt[c] > cnt[best]) {
				best = c
			}
		})
		seen.each(func(c int) { acc[c], cnt[c] = 0, 0 })
		b.put(u, best)
	}
}

// placeGreedy places the units not yet placed: the most constrained first,
// then by demand, largest first (ties by file), each on the eligible cluster
// with the lowest (load+demand)/capacity.
func (b *balancer) placeGreedy() {
	var todo []int
	for u := range b.units {
		if b.units[u].cluster < 0 {
			todo = append(todo, u)
		}
	}
	sort.Slice(todo, func(i, j int) bool {
		x, y := &b.units[todo[i]], &b.units[todo[j]]
		if nx, ny := x.set.len(), y.set.len(); nx != ny {
			return nx < ny
		}
		if x.demand != y.demand {
			return x.demand > y.demand
		}
		if x.file != y.file {
			return x.file < y.file
		}
		return x.set < y.set
	})
	for _, u := range todo {
		b.put(u, b.e.leastLoaded(b.units[u].set, b.units[u].demand, b.units[u].jobs, b.loadOf))
	}
}

// leastLoaded returns the cluster of set with the lowest (load+demand)/capacity,
// then the lowest (jobs+n)/capacity, then the first by name.
func (e *Engine) leastLoaded(set clusterSet, demand float64, n int, loadOf func(c int) (float64, int)) int {
	best := -1
	var bestLoad, bestJobs float64
	set.each(func(c int) {
		capacity := float64(e.clusters[c].capacity)
		load, jobs := loadOf(c)
		l := (load + demand) / capacity
		j := float64(jobs+n) / capacity
		if best < 0 || l < bestLoad || (l == bestLoad && j < bestJobs) {
			best, bestLoad, bestJobs = c, l, j
		}
	})
	return best
}

func (b *balancer) loadOf(c int) (float64, int) { return b.load[c], b.jobs[c] }

func (b *balancer) ratio(c int) float64 {
	if b.target[c] == 0 {
		return 0
	}
	return b.load[c] / b.target[c]
}

// overForced reports whether the demand rules placed on cluster c alone
// exceeds its target: balancing then owes it nothing.
func (b *balancer) overForced(c int) bool { return b.forced[c] > b.target[c] }

// rebalance moves units off the most overloaded cluster while some usable
// cluster's load/target exceeds the tolerance, or a cluster whose forced
// load alone exceeds its target holds units; when no move helps that
// cluster (it runs only what no other cluster can), the next overloaded
// one is tried, so a stuck cluster does not keep jobs piled on another (as
// after a drain expires). Each move must lower the larger ratio of the two
// clusters involved below the overloaded cluster's ratio, so the sorted
// ratios fall at every step; at most budget jobs move.
func (b *balancer) rebalance(tolerance float64, budget int) {
	for {
		var over []int
		b.e.usable.each(func(c int) {
			if b.ratio(c) > tolerance || (b.overForced(c) && len(b.onCluster[c]) > 0) {
				over = append(over, c)
			}
		})
		slices.SortStableFunc(over, func(x, y int) int { return cmp.Compare(b.ratio(y), b.ratio(x)) })
		bestU, bestC := -1, -1
		for _, c := range over {
			if bestU, bestC = b.bestMove(c, budget); bestU >= 0 {
				break
			}
		}
		if bestU < 0 {
			return
		}
		b.take(bestU)
		b.put(bestU, bestC)
		b.moved += b.units[bestU].jobs
	}
}

// bestMove is the unit of cluster over, and the cluster to move it to, that
// lowers the larger ratio of the two the most below over's ratio, within
// budget; among moves that lower it as much (over's own ratio after the
// move, when that is the larger), the one whose destination ends lowest,
// so that a heavily overloaded cluster's units spread over the others
// rather than filling the first by name past its target; -1, -1 when no
// move helps.
func (b *balancer) bestMove(over, budget int) (bestU, bestC int) {
	worst := b.ratio(over)
	bestU, bestC, bestMax, bestTo := -1, -1, worst, 0.0
	for _, u := range b.onCluster[over] {
		un := &b.units[u]
		if un.jobs > budget-b.moved || un.demand == 0 {
			continue
		}
		rest := (b.load[over] - un.demand) / b.target[over]
		(un.set &^ setOf(over)).each(func(c int) {
			if b.target[c] == 0 {
				return
			}
			to := (b.load[c] + un.demand) / b.target[c]
			m := max(rest, to)
			if m >= worst*(1-1e-12) {
				return
			}
			if bestU < 0 || m < bestMax || (m == bestMax && (to < bestTo || (to == bestTo && (un.jobs < b.units[bestU].jobs ||
				(un.jobs == b.units[bestU].jobs && (u < bestU || (u == bestU && c < bestC))))))) {
				bestU, bestC, bestMax, bestTo = u, c, m, to
			}
		})
	}
	return bestU, bestC
}
