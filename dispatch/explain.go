package dispatch

import (
	"fmt"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
)

// Explain says why the job is where it is, on the inputs in force. A job
// neither in the job config, nor in the table, nor assigned at admission wraps ErrNotFound.
func (d *Dispatcher) Explain(job string) (*engine.Explanation, error) {
	if err := d.needInputs("explain"); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	j, ok := d.job(job)
	if !ok {
		return nil, fmt.Errorf("explain: job %q: %w", job, ErrNotFound)
	}
	return d.eng.Explain(j), nil
}

// ClusterStatus is what the status views show of a cluster: its load in
// the table in force and its health.
type ClusterStatus struct {
	engine.ClusterLoad
	// Health is the cluster's health at the last evaluation; nil with
	// health off or before the first.
	Health *health.Status `json:"-"`
}

// Clusters lists every cluster with its load in the table in force and its
// health at the last evaluation; none while the configs are still loading.
func (d *Dispatcher) Clusters() []ClusterStatus {
	if d.needInputs("clusters") != nil {
		return nil
	}
	d.mu.Lock()
	eng := d.eng
	d.mu.Unlock()
	states, _ := d.health.get()
	loads := eng.Loads()
	out := make([]ClusterStatus, len(loads))
	for i := range loads {
		out[i].ClusterLoad = loads[i]
		if st, ok := states[loads[i].Name]; ok {
			out[i].Health = &st
		}
	}
	return out
}
