package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
)

// stateCollector reads the gauges of the state in force at each scrape:
// the table's loads, the unplaceable jobs, the drains, caps and overrides,
// readiness and the last dispatch time. They are true from the first scrape
// after a start (the table and the overrides loaded from state), not only
// after the next full dispatch.
type stateCollector struct {
	d *Dispatcher

	ready, lastDispatch, saveFailing                          *prometheus.Desc
	jobs, demand, balancedDemand, target, ratio, imbalance    *prometheus.Desc
	unplaceable, drained, capacityCap, capacity, jobOverrides *prometheus.Desc
}

func newStateCollector(d *Dispatcher) *stateCollector {
	cluster := []string{"cluster"}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(metricPrefix+name, help, labels, nil)
	}
	return &stateCollector{
		d:            d,
		ready:        desc("ready", "1 once an assignment table is in force (loaded from state or dispatched), else 0: /readyz's ready."),
		lastDispatch: desc("last_successful_dispatch_timestamp_seconds", "Unix time of the last successful full dispatch, restored from the state at start; absent before the first."),
		saveFailing:  desc("state_save_failing", "1 while the last save of the state failed (what changed since the last good save would be lost by a restart), else 0."),
		jobs:         desc("cluster_jobs", "Jobs the table in force assigns to each cluster.", cluster...),
		demand:       desc("cluster_demand", "Summed demand of the jobs the table in force assigns to each cluster.", cluster...),
		balancedDemand: desc("cluster_balanced_demand",
			"Summed demand of each cluster's balanced jobs in the table in force: the load balancing evens out.", cluster...),
		target: desc("cluster_target", "Each usable build cluster's target: its capacity share of all the demand on usable clusters (the load cluster_demand is compared with).", cluster...),
		ratio:  desc("cluster_load_ratio", "Each cluster's load (cluster_demand, all its jobs) over its target (0 when its target is 0).", cluster...),
		imbalance: desc("imbalance_ratio",
			"Largest load/target ratio among the usable build clusters of the table in force."),
		unplaceable: desc("unplaceable_jobs",
			"Jobs that need what no usable cluster has (a capability, kvm): kept on their last eligible cluster (kept=\"true\"), or left on their job config's cluster (kept=\"false\").", "kept"),
		drained: desc("cluster_drained",
			"1 for each cluster drained now, by who drained it (source: health for health-driven failover, operator otherwise).", "cluster", "source"),
		capacityCap: desc("cluster_capacity_cap", "The capped capacity of each cluster under a capacity cap now.", cluster...),
		capacity:    desc("cluster_capacity", "Each cluster's capacity in force (capped by a cap, 0 while drained).", cluster...),
		jobOverrides: desc("job_overrides",
			"Job overrides (reschedules) in force, by the cluster they pin their job to.", cluster...),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ready, c.lastDispatch, c.saveFailing, c.jobs, c.demand, c.balancedDemand, c.target,
		c.ratio, c.imbalance, c.unplaceable, c.drained, c.capacityCap, c.capacity, c.jobOverrides} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st := c.d.Status()
	gauge(c.ready, boolValue(st.Ready))
	gauge(c.saveFailing, boolValue(st.SaveError != ""))
	if !st.LastDispatch.IsZero() {
		gauge(c.lastDispatch, float64(st.LastDispatch.UnixNano())/1e9)
	}
	kept := 0
	c.d.mu.Lock()
	for _, u := range c.d.unplaceable {
		if u.Cluster != "" {
			kept++
		}
	}
	unplaceable := len(c.d.unplaceable)
	c.d.mu.Unlock()
	if c.d.inputsLoaded.Load() {
		gauge(c.unplaceable, float64(kept), "true")
		gauge(c.unplaceable, float64(unplaceable-kept), "false")
	}

	var imbalance float64
	loads := c.d.Clusters()
	for _, l := range loads {
		gauge(c.jobs, float64(l.Jobs), l.Name)
		gauge(c.demand, l.Demand, l.Name)
		gauge(c.capacity, float64(l.Capacity), l.Name)
		if l.Role != config.RoleBuild {
			continue // service and manual clusters are never balanced onto: no target
		}
		gauge(c.balancedDemand, l.BalancedDemand, l.Name)
		gauge(c.target, l.Target, l.Name)
		gauge(c.ratio, l.Ratio, l.Name)
		if !l.Blocked && l.Capacity > 0 {
			imbalance = max(imbalance, l.Ratio)
		}
	}
	if len(loads) > 0 {
		gauge(c.imbalance, imbalance)
	}

	for _, o := range c.d.Drains() {
		if !o.Drain() {
			gauge(c.capacityCap, float64(o.Capacity), o.Cluster)
			continue
		}
		source := "operator"
		if o.By == HealthDrainBy {
			source = "health"
		}
		gauge(c.drained, 1, o.Cluster, source)
	}
	pinned := map[string]int{}
	for _, o := range c.d.Overrides() {
		pinned[o.Cluster]++
	}
	for cluster, n := range pinned {
		gauge(c.jobOverrides, float64(n), cluster)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
