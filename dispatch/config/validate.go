package config

import "fmt"

// Validate runs the checks that need both files: a manual cluster must not
// also be in the cluster config; every cluster the dispatcher config names
// (groups, default, sshBastion, kvm, noBuilds, buildFarm) must be in the
// cluster config or manual; every cloudMapping target must be a provider.
// All errors are returned together, each naming both files.
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
	check := func(field, cluster string) {
		if cluster != "" && !known[cluster] && !manual[cluster] {
			errs.add(field, "unknown cluster %q: neither in the cluster config nor in manualClusters", cluster)
		}
	}
	check("default", d.Default)
	check("sshBastion", d.SSHBastion)
	for i, k := range d.KVM {
		check(index("kvm", i), k)
	}
	for i, n := range d.NoBuilds {
		check(index("noBuilds", i), n)
	}
	for _, cluster := range sortedKeys(d.Groups) {
		check(key("groups", cluster), cluster)
	}
	for _, provider := range sortedKeys(d.BuildFarm) {
		for _, cluster := range sortedKeys(d.BuildFarm[provider]) {
			check(key(key("buildFarm", provider), cluster), cluster)
		}
	}
	for _, cloud := range sortedKeys(d.CloudMapping) {
		p := d.CloudMapping[cloud]
		if _, ok := c.Providers[p]; !ok {
			errs.add(key("cloudMapping", cloud), "%q is not a provider of the cluster config", p)
		}
	}
	return errs.err()
}
