// Package dispatch is prowjob-dispatcher's scheduling service: it loads the
// dispatcher and cluster configs, the Prow job config and job demand, runs
// the engine to compute the job -> cluster table, keeps that table in memory
// and in its state (a state.Backend: a state dir, the Kubernetes API, or
// memory), and refreshes it on a schedule, on config change and on demand.
//
// The data path is visible in the sub-packages: config -> jobs -> demand ->
// engine -> table -> state. This package wires them together; it has no HTTP.
package dispatch
