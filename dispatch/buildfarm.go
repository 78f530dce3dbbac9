package dispatch

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// BuildFarmConfig renders the dispatcher config in force with its buildFarm
// section regenerated from the table in force (see Snapshot.BuildFarmConfig).
func (d *Dispatcher) BuildFarmConfig() ([]byte, error) {
	if err := d.needInputs("buildfarm"); err != nil {
		return nil, err
	}
	return d.Snapshot().BuildFarmConfig()
}

// BuildFarmConfig renders the snapshot's dispatcher config with its
// buildFarm section regenerated from its table (overrides and
// admission-time assignments included), so that a pull request to the
// release repository can keep file-based scheduling as a backup of the
// live dispatcher.
func (s *Snapshot) BuildFarmConfig() ([]byte, error) {
	if !s.loaded {
		return nil, fmt.Errorf("buildfarm: the configs and the job config are still loading: %w", ErrNotReady)
	}
	cfg := *s.in.config // a shallow copy: only BuildFarm is replaced
	cfg.BuildFarm = s.BuildFarm()
	out, err := cfg.Marshal()
	if err != nil {
		return nil, fmt.Errorf("rendering the dispatcher config: %w", err)
	}
	return out, nil
}

// BuildFarm returns the buildFarm section regenerated from the snapshot's
// table, the one BuildFarmConfig renders, for a Git backup of the table
// (dispatch/gitbackup); nil while the configs are still loading.
func (s *Snapshot) BuildFarm() map[string]map[string]*config.BuildFarmCluster {
	if !s.loaded {
		return nil
	}
	return BuildFarmFromTable(s.in.clusters, s.st.prev, s.in.config.BuildFarm)
}

// BuildFarmFromTable regenerates the buildFarm section from an assignment
// table, so that file-based scheduling can serve as a backup: provider ->
// cluster -> sorted base names of the job files whose jobs the balanced
// rules placed there. A file whose jobs went to several clusters goes to the
// cluster holding most of them (the lowest name on a tie). Clusters absent
// from the cluster config are left out. A cluster marked disabled in
// previous (the section being replaced) stays disabled, with or without files.
func BuildFarmFromTable(c *config.Clusters, t *table.Table, previous map[string]map[string]*config.BuildFarmCluster) map[string]map[string]*config.BuildFarmCluster {
	counts := map[string]map[string]int{} // file base name -> cluster -> jobs
	for _, a := range t.Assignments {
		if a.File == "" || !a.Reason.Balanced() {
			continue
		}
		base := filepath.Base(a.File)
		if counts[base] == nil {
			counts[base] = map[string]int{}
		}
		counts[base][a.Cluster]++
	}
	farm := map[string]map[string]*config.BuildFarmCluster{}
	entry := func(cluster string) *config.BuildFarmCluster {
		cl, ok := c.Get(cluster)
		if !ok {
			return nil
		}
		if farm[cl.Provider] == nil {
			farm[cl.Provider] = map[string]*config.BuildFarmCluster{}
		}
		bf := farm[cl.Provider][cluster]
		if bf == nil {
			bf = &config.BuildFarmCluster{}
			farm[cl.Provider][cluster] = bf
		}
		return bf
	}
	for _, file := range slices.Sorted(maps.Keys(counts)) {
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
	clusters := slices.Sorted(maps.Keys(byCluster))
	best := clusters[0]
	for _, cl := range clusters[1:] {
		if byCluster[cl] > byCluster[best] {
			best = cl
		}
	}
	return best
}
