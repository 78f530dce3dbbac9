package config

import (
	"sort"
	"strings"
)

// Cluster roles: how the dispatcher treats a cluster that a config names.
const (
	// RoleBuild is a cluster of the cluster config: balancing may choose it.
	RoleBuild = "build"
	// RoleManual is a manualClusters entry: a valid target never balanced onto.
	RoleManual = "manual"
	// RoleService is a cluster that groups, sshBastion, kvm or noBuilds (or
	// a job's cluster label) name but that is neither in the cluster config
	// nor manual, such as OpenShift CI's app.ci: it runs exactly the jobs
	// that name it and is never balanced onto.
	RoleService = "service"
)

// ServiceCluster is a cluster of role RoleService.
type ServiceCluster struct {
	// Name is the cluster name.
	Name string
	// NamedBy lists the dispatcher config fields that name it, e.g. groups["app.ci"].
	NamedBy []string
}

// ServiceClusters returns the service clusters of the dispatcher config,
// sorted by name: the clusters that groups, sshBastion, kvm and noBuilds
// name which are neither in the cluster config c nor manual. A name equal to
// a known cluster but for case is not one of them: Validate refuses it.
func ServiceClusters(d *DispatcherConfig, c *Clusters) []ServiceCluster {
	if d == nil {
		return nil
	}
	known := d.knownFold(c)
	byName := map[string]*ServiceCluster{}
	d.eachServiceField(func(field, cluster string) {
		if cluster == "" {
			return
		}
		if _, ok := known[strings.ToLower(cluster)]; ok {
			return // known, or a case variant of a known cluster
		}
		s := byName[cluster]
		if s == nil {
			s = &ServiceCluster{Name: cluster}
			byName[cluster] = s
		}
		s.NamedBy = append(s.NamedBy, field)
	})
	out := make([]ServiceCluster, 0, len(byName))
	for _, s := range byName {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// eachServiceField calls f for every field that may name a service cluster,
// in a fixed order.
func (d *DispatcherConfig) eachServiceField(f func(field, cluster string)) {
	for _, cluster := range sortedKeys(d.Groups) {
		f(key("groups", cluster), cluster)
	}
	f("sshBastion", d.SSHBastion)
	for i, k := range d.KVM {
		f(index("kvm", i), k)
	}
	for i, n := range d.NoBuilds {
		f(index("noBuilds", i), n)
	}
}

// knownFold maps the lower-cased name of every cluster of the cluster config
// and every manual cluster to its name.
func (d *DispatcherConfig) knownFold(c *Clusters) map[string]string {
	known := map[string]string{}
	for _, cl := range c.All() {
		known[strings.ToLower(cl.Name)] = cl.Name
	}
	for _, m := range d.ManualClusters {
		if _, ok := known[strings.ToLower(m)]; !ok {
			known[strings.ToLower(m)] = m
		}
	}
	return known
}
