package config

import (
	"path/filepath"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"sigs.k8s.io/yaml"
)

// inBuildFarm reports whether the buildFarm section records placements made
// by reason: the balanced rules. Pins, groups, overrides and the default are
// expressed elsewhere (labels, groups) or are not file-based.
func inBuildFarm(reason table.Reason) bool {
	switch reason {
	case table.ReasonBalanced, table.ReasonCapability, table.ReasonKVM, table.ReasonNoBuilds, table.ReasonCloud:
		return true
	}
	return false
}

// BuildFarmFromTable regenerates the buildFarm section from an assignment
// table, so that file-based scheduling can serve as a backup: provider ->
// cluster -> sorted base names of the job files whose jobs the balanced
// rules placed there. A file whose jobs went to several clusters goes to the
// cluster holding most of them (the lowest name on a tie). Clusters absent
// from the cluster config are left out. A cluster marked disabled in
// previous (the section being replaced) stays disabled, with or without files.
func BuildFarmFromTable(c *Clusters, t *table.Table, previous map[string]map[string]*BuildFarmCluster) map[string]map[string]*BuildFarmCluster {
	counts := map[string]map[string]int{} // file base name -> cluster -> jobs
	for _, a := range t.Assignments {
		if a.File == "" || !inBuildFarm(a.Reason) {
			continue
		}
		base := filepath.Base(a.File)
		if counts[base] == nil {
			counts[base] = map[string]int{}
		}
		counts[base][a.Cluster]++
	}
	farm := map[string]map[string]*BuildFarmCluster{}
	entry := func(cluster string) *BuildFarmCluster {
		cl, ok := c.Get(cluster)
		if !ok {
			return nil
		}
		if farm[cl.Provider] == nil {
			farm[cl.Provider] = map[string]*BuildFarmCluster{}
		}
		bf := farm[cl.Provider][cluster]
		if bf == nil {
			bf = &BuildFarmCluster{}
			farm[cl.Provider][cluster] = bf
		}
		return bf
	}
	for _, file := range sortedKeys(counts) {
		if bf := entry(mostJobs(counts[file])); bf != nil {
			bf.Filenames = append(bf.Filenames, file) // files come in sorted order
		}
	}
	for _, clusters := range previous {
		for cluster, old := range clusters {
			if old == nil || !old.Disabled {
				continue
			}
			if bf := entry(cluster); bf != nil {
				bf.Disabled = true
			}
		}
	}
	return farm
}

// mostJobs returns the cluster with the most jobs, the lowest name on a tie.
func mostJobs(byCluster map[string]int) string {
	clusters := sortedKeys(byCluster)
	best := clusters[0]
	for _, cl := range clusters[1:] {
		if byCluster[cl] > byCluster[best] {
			best = cl
		}
	}
	return best
}

// Marshal renders the config as YAML in the dispatcher config format. Map
// keys come out sorted, so equal configs give byte-identical output.
func (d *Dispatcher) Marshal() ([]byte, error) {
	return yaml.Marshal(d)
}
