// Package api is the dispatcher's HTTP API: its request and response types
// and a client for them. The webhook serves it; the plugin and operators
// call it.
package api

import (
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Paths served by the dispatcher's API port.
const (
	// SchedulePath answers Prow's scheduler `external` strategy.
	SchedulePath = "/api/v1/schedule"
	// AssignmentsPath + "{job}" returns one assignment; + "{job}/explain" explains it.
	AssignmentsPath = "/api/v1/assignments/"
	// ClustersPath lists the clusters and their loads.
	ClustersPath = "/api/v1/clusters"
	// DispatchPath runs a full dispatch now.
	DispatchPath = "/api/v1/dispatch"
	// ReschedulePath creates an override (POST); + "{job}" deletes one (DELETE).
	ReschedulePath = "/api/v1/reschedule"
	// BuildFarmPath renders the dispatcher config with buildFarm regenerated from the table (YAML).
	BuildFarmPath = "/api/v1/buildfarm"
	// OverridesPath lists the overrides.
	OverridesPath = "/api/v1/overrides"
)

// ScheduleRequest is what Prow's `external` scheduler strategy posts.
type ScheduleRequest struct {
	Job string `json:"job"`
}

// ScheduleResponse is what Prow's `external` scheduler strategy expects.
type ScheduleResponse struct {
	Cluster string `json:"cluster"`
}

// Assignment is one job's assignment, with the override in force, if any.
type Assignment struct {
	table.Assignment
	Override *table.Override `json:"override,omitempty"`
}

// Explanation is engine.Explanation on the wire.
type Explanation = engine.Explanation

// ClusterStatus is one cluster's configuration and load.
type ClusterStatus = engine.ClusterLoad

// DispatchResponse summarises a full dispatch.
type DispatchResponse struct {
	// Jobs is the number of jobs in the new table.
	Jobs int `json:"jobs"`
	// Moved is the number of jobs that changed cluster.
	Moved int `json:"moved"`
	// MovedTo counts moved jobs by the cluster they moved to.
	MovedTo map[string]int `json:"movedTo,omitempty"`
	// Moves lists the moves (at most 100; Moved has the full count).
	Moves []engine.Move `json:"moves,omitempty"`
	// Imbalance is the largest load/target ratio among balanced clusters.
	Imbalance float64 `json:"imbalance"`
}

// RescheduleRequest moves a job to the named cluster, or to the best other eligible one when Cluster is empty.
type RescheduleRequest struct {
	Job     string `json:"job"`
	Cluster string `json:"cluster,omitempty"`
	// TTL is how long the override lasts ("72h"); empty means until deleted.
	TTL string `json:"ttl,omitempty"`
	// Reason is recorded with the override; required.
	Reason string `json:"reason"`
	// By is who asked (the plugin sets the commenter's login).
	By string `json:"by,omitempty"`
}

// RescheduleResponse reports a reschedule.
type RescheduleResponse struct {
	Job      string         `json:"job"`
	From     string         `json:"from"`
	To       string         `json:"to"`
	Override table.Override `json:"override"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
}
