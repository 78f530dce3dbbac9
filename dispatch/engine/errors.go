package engine

import "errors"

// Errors the engine wraps, so callers can tell refusals apart with errors.Is.
var (
	// ErrNotDispatched: the job's agent is not kubernetes, so the dispatcher leaves it alone.
	ErrNotDispatched = errors.New("not dispatched")
	// ErrNoCluster: no usable cluster meets the job's requirements (and no default to fall back on).
	ErrNoCluster = errors.New("no eligible cluster")
	// ErrUnplaceable: the job needs what no usable cluster has (a capability,
	// kvm) and it ran on no cluster that has it: it gets no cluster, and its
	// ProwJob keeps the one its job config gives.
	ErrUnplaceable = errors.New("unplaceable")
	// ErrUnknownCluster: the cluster is neither in the cluster config nor a manual cluster.
	ErrUnknownCluster = errors.New("unknown cluster")
	// ErrBlockedCluster: the cluster is blocked in the cluster config.
	ErrBlockedCluster = errors.New("blocked cluster")
	// ErrMissingCapability: the cluster lacks a capability the job requires.
	ErrMissingCapability = errors.New("missing capability")
)
