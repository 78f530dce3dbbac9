// Package table holds the job -> cluster assignment table: the engine's
// output, what admission reads and what the store persists.
package table

import (
	"sort"
	"time"
)

// Reason names the rule that chose a job's cluster.
type Reason string

// The rules, in the order the engine applies them.
const (
	ReasonAgent      Reason = "agent"       // the job's agent is not kubernetes: left alone, never a row
	ReasonOverride   Reason = "override"    // an operator's reschedule, until it expires
	ReasonClusterJob Reason = "cluster-job" // a job that works on one cluster (its upgrade, its apply): there, blocked or not
	ReasonManual     Reason = "manual"      // already on a manual cluster, kept there
	ReasonPinned     Reason = "pinned"      // the job's cluster label
	ReasonSSHBastion Reason = "ssh-bastion" // the dispatcher config's sshBastion cluster
	ReasonCapability Reason = "capability"  // balanced among clusters with every required capability
	ReasonKVM        Reason = "kvm"         // balanced among the kvm clusters
	ReasonNoBuilds   Reason = "no-builds"   // balanced among the noBuilds clusters
	ReasonCloud      Reason = "cloud"       // determineE2EByJob: balanced within the job's cloud
	ReasonGroupJob   Reason = "group-job"   // listed by name in a group
	ReasonGroupPath  Reason = "group-path"  // its job file matches a group's path regex
	ReasonBalanced   Reason = "balanced"    // capacity-weighted balancing
	ReasonDefault    Reason = "default"     // no usable cluster to balance onto: the config's default
	// ReasonUnplaceable is never a row: the job needs what no usable cluster
	// has and ran on no cluster that has it, so admission leaves its ProwJob
	// on the cluster its job config gives.
	ReasonUnplaceable Reason = "unplaceable"
)

// Balanced reports whether the rule balances jobs by load (capability, kvm,
// no-builds, cloud, balanced) rather than naming their cluster: only such
// rows count toward the load that balancing evens out, and only they are
// recorded in the dispatcher config's buildFarm.
func (r Reason) Balanced() bool {
	switch r {
	case ReasonCapability, ReasonKVM, ReasonNoBuilds, ReasonCloud, ReasonBalanced:
		return true
	}
	return false
}

// Assignment is one row of the table: where a job runs and why.
type Assignment struct {
	// Job is the Prow job name.
	Job string `json:"job"`
	// Cluster is the build cluster that runs it.
	Cluster string `json:"cluster"`
	// Reason is the rule that chose Cluster.
	Reason Reason `json:"reason"`
	// Detail explains the decision for people ("capabilities [arm64]: 3 eligible clusters, lowest load").
	Detail string `json:"detail,omitempty"`
	// File is the job's config file (relative to the job config dir), empty for jobs seen only at admission.
	File string `json:"file,omitempty"`
	// Demand is the job's demand (weighted runs in the demand window) used for balancing.
	Demand float64 `json:"demand"`
	// AssignedAt is when the job got this cluster (unchanged while the cluster stays the same).
	AssignedAt time.Time `json:"assignedAt"`
}

// Table is a complete, immutable job -> cluster assignment.
type Table struct {
	// GeneratedAt is when the engine computed the table.
	GeneratedAt time.Time `json:"generatedAt"`
	// Assignments are the rows, sorted by job name.
	Assignments []Assignment `json:"assignments"`
}

// Sort orders the rows by job name, which makes serialized tables byte-identical for equal content.
func (t *Table) Sort() {
	sort.Slice(t.Assignments, func(i, j int) bool { return t.Assignments[i].Job < t.Assignments[j].Job })
}

// ByJob returns the rows indexed by job name.
func (t *Table) ByJob() map[string]Assignment {
	m := make(map[string]Assignment, len(t.Assignments))
	for _, a := range t.Assignments {
		m[a.Job] = a
	}
	return m
}
