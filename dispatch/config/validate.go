package config

import (
	"fmt"
	"strings"
)

// Validate runs the checks that need both files, and returns every error
// together, each naming both files:
//   - a manual cluster must not also be in the cluster config;
//   - default and every buildFarm cluster must be in the cluster config or
//     manual;
//   - a cluster that groups, sshBastion, kvm or noBuilds name and that is
//     neither is a service cluster (see ServiceClusters) and is accepted,
//     but a name equal to a known cluster, or to another name, but for case
//     is refused: it is a typo that would send jobs to a cluster Prow
//     does not know;
//   - every cloudMapping target must be a provider.
func Validate(d *DispatcherConfig, c *Clusters) error {
	if d == nil || c == nil {
		return fmt.Errorf("validate: dispatcher config and cluster config are both required")
	}
	errs := fieldErrors{prefix: fmt.Sprintf("%s (with cluster config %s)", dispatcherPrefix(d.File), c.File)}
	known := map[string]bool{}
	for _, cl := range c.All() {
		known[cl.Name] = true
	}
	manual := map[string]bool{}
	for i, m := range d.ManualClusters {
		manual[m] = true
		if known[m] {
			errs.add(index("manualClusters", i), "cluster %q is manual but also in the cluster config", m)
		}
	}
	fold := d.knownFold(c)
	caseVariant := func(field, cluster string) bool {
		if other, ok := fold[strings.ToLower(cluster)]; ok && other != cluster {
			errs.add(field, "cluster %q differs only in case from %q", cluster, other)
			return true
		}
		return false
	}
	for i, m := range d.ManualClusters {
		if other, ok := fold[strings.ToLower(m)]; ok && other != m && known[other] {
			errs.add(index("manualClusters", i), "cluster %q differs only in case from %q", m, other)
		}
	}
	check := func(field, cluster string) {
		if cluster == "" || known[cluster] || manual[cluster] || caseVariant(field, cluster) {
			return
		}
		errs.add(field, "unknown cluster %q: neither in the cluster config nor in manualClusters", cluster)
	}
	check("default", d.Default)
	for _, provider := range sortedKeys(d.BuildFarm) {
		for _, cluster := range sortedKeys(d.BuildFarm[provider]) {
			check(key(key("buildFarm", provider), cluster), cluster)
		}
	}
	service := map[string]string{} // lower-cased service cluster name -> first spelling
	d.eachServiceField(func(field, cluster string) {
		if cluster == "" || known[cluster] || manual[cluster] || caseVariant(field, cluster) {
			return
		}
		if other, ok := service[strings.ToLower(cluster)]; ok && other != cluster {
			errs.add(field, "service cluster %q differs only in case from service cluster %q", cluster, other)
			return
		}
		service[strings.ToLower(cluster)] = cluster
	})
	for _, cloud := range sortedKeys(d.CloudMapping) {
		p := d.CloudMapping[cloud]
		if _, ok := c.Providers[p]; !ok {
			errs.add(key("cloudMapping", cloud), "%q is not a provider of the cluster config", p)
		}
	}
	return errs.err()
}
