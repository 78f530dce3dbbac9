package dispatch

import (
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
)

// Status is the Dispatcher's readiness and its last errors; /readyz serves it as JSON.
type Status struct {
	// Ready is true once a table is in force (loaded from state or dispatched).
	Ready bool `json:"ready"`
	// Reason says why the Dispatcher is not ready.
	Reason string `json:"reason,omitempty"`
	// TableSize is the number of rows of the table in force.
	TableSize int `json:"tableSize"`
	// LastDispatch is when the last full dispatch succeeded (zero if never).
	LastDispatch time.Time `json:"lastDispatch,omitzero"`
	// LastDispatchMoves is how many jobs the last full dispatch of this
	// process moved; nil before this process's first dispatch (a table
	// loaded from state does not say).
	LastDispatchMoves *int `json:"lastDispatchMoves,omitempty"`
	// LastMoves lists the first moves of the last full dispatch of this
	// process (at most maxStatusMoves), sorted by job.
	LastMoves []engine.Move `json:"lastMoves,omitempty"`
	// LastError is the last dispatch's error, empty once a dispatch succeeds.
	LastError string `json:"lastError,omitempty"`
	// DemandError is the last demand query's error, empty once a query succeeds.
	DemandError string `json:"demandError,omitempty"`
	// HealthError is the last health evaluation's error, empty once one
	// works: while it is set, cluster health states are kept as they were
	// and nothing is drained or undrained by health.
	HealthError string `json:"healthError,omitempty"`
	// SaveError is the last failed save's error, empty once a save works:
	// while it is set, what changed since the last good save would be lost
	// by a restart.
	SaveError string `json:"saveError,omitempty"`
	// Recovery says what the start had to do about bad state files (a
	// corrupt state file moved aside, the previous generation used).
	Recovery []string `json:"recovery,omitempty"`
	// Loading is set while the configs and the job config load in the
	// background (a replica serving the shared table at start): jobs the
	// table lacks are admitted as created until they are loaded.
	Loading bool `json:"loading,omitempty"`
	// Provisional is the number of jobs first seen at admission that the job
	// config lacks.
	Provisional int `json:"provisional"`
	// Unplaceable is the number of jobs of the last dispatch that need what
	// no usable cluster has (a capability, kvm); UnplaceableJobs lists the
	// first of them. Each stays on its last eligible cluster, or, with none,
	// its ProwJobs keep the cluster their job config gives.
	Unplaceable     int                  `json:"unplaceable"`
	UnplaceableJobs []engine.Unplaceable `json:"unplaceableJobs,omitempty"`
	// RefusedOverrides are the job overrides, drains and caps of the state
	// (the state dir, or objects in the Kubernetes API that kubectl may have
	// written) that are not applied because their expiry is out of bounds,
	// each with why.
	RefusedOverrides []string `json:"refusedOverrides,omitempty"`
	// UnknownFields are the keys of the configs in force that this version
	// does not know and ignores ("cluster config _clusters.yaml:
	// aws[0].ipCapacity"); plan --strict refuses them.
	UnknownFields []string `json:"unknownFields,omitempty"`
	// UnmatchablePaths are the group path regexes that can never match
	// because the job config is flat (a ConfigMap keys files by base name).
	UnmatchablePaths []string `json:"unmatchablePaths,omitempty"`
}

// maxStatusUnplaceable bounds Status.UnplaceableJobs; maxStatusMoves bounds Status.LastMoves.
const (
	maxStatusUnplaceable = 20
	maxStatusMoves       = 25
)

// ClusterStatus is what the status views show of a cluster: its load in
// the table in force and its health.
type ClusterStatus struct {
	engine.ClusterLoad
	// Health is the cluster's health at the last evaluation; nil with
	// health off or before the first.
	Health *health.Status `json:"-"`
}

// Clusters lists every cluster with its load in the table in force and its
// health at the last evaluation (ClusterStatuses of the engine's loads and
// Health); none while the configs are still loading.
func (d *Dispatcher) Clusters() []ClusterStatus {
	if d.needInputs("clusters") != nil {
		return nil
	}
	d.mu.Lock()
	eng := d.eng
	d.mu.Unlock()
	states, _ := d.healthMonitor.get()
	return ClusterStatuses(eng.Loads(), states)
}

// ClusterStatuses is the status view of the clusters: each cluster's load,
// in the order of loads, with its health in states, if any. The engine
// knows nothing of health: the view joins the two.
func ClusterStatuses(loads []engine.ClusterLoad, states map[string]health.Status) []ClusterStatus {
	out := make([]ClusterStatus, len(loads))
	for i := range loads {
		out[i].ClusterLoad = loads[i]
		if st, ok := states[loads[i].Name]; ok {
			out[i].Health = &st
		}
	}
	return out
}
