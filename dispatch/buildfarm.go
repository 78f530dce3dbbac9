package dispatch

import (
	"fmt"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
)

// BuildFarmConfig renders the dispatcher config in force with its buildFarm
// section regenerated from the table in force (overrides and admission-time
// assignments included), so that a pull request to the release repository
// can keep file-based scheduling as a backup of the live dispatcher.
func (d *Dispatcher) BuildFarmConfig() ([]byte, error) {
	in := d.in.Load()
	cfg := *in.config // a shallow copy: only BuildFarm is replaced
	cfg.BuildFarm = config.BuildFarmFromTable(in.clusters, d.cache.Snapshot(), in.config.BuildFarm)
	out, err := cfg.Marshal()
	if err != nil {
		return nil, fmt.Errorf("rendering the dispatcher config: %w", err)
	}
	return out, nil
}
