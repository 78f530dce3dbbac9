package engine

import (
	"regexp"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Options tune balancing. Zero values take the documented defaults.
type Options struct {
	// DefaultDemand is the demand of jobs without demand data; 0 means the median of known demands (1 when none is known).
	DefaultDemand float64
	// Tolerance is the load/target ratio up to which a cluster counts as balanced, so a rerun moves nothing (default 1.05).
	Tolerance float64
	// MaxMoveFraction bounds the jobs a rerun may move for balance alone, as a fraction of all jobs (default 0.2).
	// Moves forced by rules (a blocked cluster, a new pin) are not bounded.
	MaxMoveFraction float64
	// ClusterJobs are name patterns of jobs that work on one cluster (its
	// upgrade, its config apply); the group named "cluster", or else the
	// first group, captures that cluster. Such a job runs there even while
	// it is blocked, when the cluster is in the cluster config or manual.
	ClusterJobs []*regexp.Regexp
}

// DefaultClusterJobPatterns are OpenShift CI's cluster jobs: a build
// cluster's upgrade and the release repo's config apply to one cluster.
var DefaultClusterJobPatterns = []string{
	`^periodic-(?P<cluster>[a-z0-9][a-z0-9.-]*)-upgrade$`,
	`^periodic-openshift-release-master-(?P<cluster>[a-z0-9][a-z0-9.-]*)-apply$`,
}

// Input is everything one engine run reads.
type Input struct {
	// Jobs are the jobs of the Prow job config.
	Jobs []jobs.Job
	// Config is the dispatcher config.
	Config *config.DispatcherConfig
	// Clusters is the cluster config.
	Clusters *config.Clusters
	// Demand is each job's demand (weighted runs in the window); jobs absent get Options.DefaultDemand.
	Demand map[string]float64
	// Provisional is the demand of jobs first seen at admission that Jobs
	// lacks (their observed admissions), used when Demand has none for
	// them: such jobs never get the default demand, so made-up job names
	// cannot weigh on balance beyond what they ran.
	Provisional map[string]float64
	// Previous is the table in force, the starting point for stability. When nil, the dispatcher
	// config's buildFarm (job file base name -> cluster) is the previous assignment.
	Previous *table.Table
	// Overrides are operators' reschedules, by job.
	Overrides map[string]table.Override
	// Drains are operators' drains and capacity caps, by cluster;
	// those active at Now apply to clusters of the cluster config. A drained
	// cluster is treated as blocked.
	Drains map[string]table.Drain
	// Now stamps new assignments and decides which overrides are active.
	Now time.Time
	// Options tune balancing.
	Options Options
}

// Move is one job whose cluster changed against the previous table.
type Move struct {
	Job    string       `json:"job"`
	From   string       `json:"from"`
	To     string       `json:"to"`
	Reason table.Reason `json:"reason"`
}

// ClusterLoad is one cluster's share after a run.
type ClusterLoad struct {
	Name         string   `json:"name"`
	Provider     string   `json:"provider,omitempty"`
	Capacity     int      `json:"capacity"`
	Capabilities []string `json:"capabilities,omitempty"`
	Blocked      bool     `json:"blocked,omitempty"`
	Manual       bool     `json:"manual,omitempty"`
	// Override is the active drain or capacity cap of the cluster, if any;
	// Capacity is then the capped capacity (0 while drained).
	Override *table.Drain `json:"override,omitempty"`
	// Role is config.RoleBuild, RoleManual or RoleService; empty for a
	// cluster only an override or the previous table names.
	Role string `json:"role,omitempty"`
	// Jobs is the number of jobs assigned to the cluster, by any rule.
	Jobs int `json:"jobs"`
	// Demand is the summed demand of those jobs: the cluster's load, which
	// Ratio compares with Target.
	Demand float64 `json:"demand"`
	// BalancedJobs is the number of those jobs placed by balancing (capability, kvm, no-builds, cloud, balanced).
	BalancedJobs int `json:"balancedJobs"`
	// BalancedDemand is the summed demand of the balanced jobs: the part of the load that balancing places.
	BalancedDemand float64 `json:"balancedDemand"`
	// ForcedJobs is the number of jobs that rules place outright (overrides, cluster jobs, pins, the ssh
	// bastion, groups): Jobs - BalancedJobs.
	ForcedJobs int `json:"forcedJobs"`
	// ForcedDemand is their summed demand, Demand - BalancedDemand: on a usable cluster, load that is
	// there before balancing fills the cluster up to its target.
	ForcedDemand float64 `json:"forcedDemand"`
	// Target is a usable cluster's capacity-weighted share of all the demand on usable clusters, by
	// any rule (blocked, manual and service clusters are outside it); 0 for other clusters.
	Target float64 `json:"target"`
	// Ratio is Demand / Target (0 when Target is 0): the cluster's whole load against its target.
	Ratio float64 `json:"ratio"`
	// ConfiguredCapacity is the cluster config's capacity, before any drain
	// or cap (0 for a cluster outside the cluster config).
	ConfiguredCapacity int `json:"configuredCapacity,omitempty"`
}

// Report summarises a run.
type Report struct {
	// Jobs is the number of assigned jobs.
	Jobs int `json:"jobs"`
	// Moves are the jobs whose cluster changed, sorted by job.
	Moves []Move `json:"moves,omitempty"`
	// MovedByReason counts Moves by the rule that placed the job.
	MovedByReason map[table.Reason]int `json:"movedByReason,omitempty"`
	// Clusters are the per-cluster loads, sorted by name.
	Clusters []ClusterLoad `json:"clusters"`
	// Imbalance is the largest Ratio (whole load / target) among usable (build, not blocked) clusters.
	Imbalance float64 `json:"imbalance"`
	// Unplaceable lists, by job, the jobs that need what no usable cluster
	// has (a capability, kvm): each stays on its last eligible cluster, or,
	// with none, gets no row.
	Unplaceable []Unplaceable `json:"unplaceable,omitempty"`
}

// Unplaceable is a job that needs what no usable cluster has.
type Unplaceable struct {
	Job string `json:"job"`
	// Problem says what no usable cluster meets.
	Problem string `json:"problem"`
	// Cluster is the last eligible cluster the job stays on; empty when it
	// has none, so its ProwJobs keep the cluster their job config gives.
	Cluster string `json:"cluster,omitempty"`
}

// Step is one rule the engine evaluated for a job.
type Step struct {
	Rule    table.Reason `json:"rule"`
	Matched bool         `json:"matched"`
	Detail  string       `json:"detail"`
}

// Explanation says why a job is where it is: every rule tried, in order, and the clusters it could go to.
type Explanation struct {
	Job          string            `json:"job"`
	Requirements jobs.Requirements `json:"requirements"`
	Steps        []Step            `json:"steps"`
	Eligible     []ClusterLoad     `json:"eligible,omitempty"`
	Assignment   table.Assignment  `json:"assignment"`
}
