package api

import (
	"net/url"
	"time"

	"sigs.k8s.io/prow/pkg/scheduler/strategy"
)

// Paths served by the dispatcher's API port.
const (
	// SchedulePath answers Prow's scheduler `external` strategy.
	SchedulePath = "/api/v1/schedule"
	// AssignmentsPath + "{job}" returns one assignment; + "{job}/explain" explains it.
	AssignmentsPath = "/api/v1/assignments/"
	// ClustersPath lists the clusters and their loads; DrainPath(cluster)
	// drains or caps one of them.
	ClustersPath = "/api/v1/clusters"
	// DrainsPath lists the drains and capacity caps in force.
	DrainsPath = "/api/v1/cluster-overrides"
	// DispatchPath runs a full dispatch now.
	DispatchPath = "/api/v1/dispatch"
	// ReschedulePath creates an override (POST); + "{job}" deletes one (DELETE).
	ReschedulePath = "/api/v1/reschedule"
	// BuildFarmPath renders the dispatcher config with buildFarm regenerated from the table (YAML).
	BuildFarmPath = "/api/v1/buildfarm"
	// OverridesPath lists the overrides.
	OverridesPath = "/api/v1/overrides"
	// PlanPath computes what a dispatch on proposed configs would do (POST a PlanRequest).
	PlanPath = "/api/v1/plan"
)

// DrainPath is where a cluster is drained or capped (POST a DrainRequest)
// and where that is cancelled (DELETE): ClustersPath + "/{cluster}/drain".
func DrainPath(cluster string) string {
	return ClustersPath + "/" + url.PathEscape(cluster) + "/drain"
}

// ScheduleRequest is what Prow's `external` scheduler strategy posts: its
// own type, so the two cannot drift apart.
type ScheduleRequest = strategy.SchedulingRequest

// ScheduleResponse is what Prow's `external` scheduler strategy expects.
type ScheduleResponse = strategy.SchedulingResponse

// Assignment is one job's row of the assignment table, with the override
// in force, if any.
type Assignment struct {
	// Job is the Prow job name.
	Job string `json:"job"`
	// Cluster is the build cluster that runs it.
	Cluster string `json:"cluster"`
	// Reason is the rule that chose Cluster ("balanced", "pinned", "override", ...).
	Reason string `json:"reason"`
	// Detail explains the decision for people.
	Detail string `json:"detail,omitempty"`
	// File is the job's config file, relative to the job config dir; empty
	// for jobs seen only at admission.
	File string `json:"file,omitempty"`
	// Demand is the job's demand used for balancing.
	Demand float64 `json:"demand"`
	// AssignedAt is when the job got this cluster.
	AssignedAt time.Time `json:"assignedAt"`
	// Override is the operator's override in force, if any.
	Override *Override `json:"override,omitempty"`
}

// Override is an operator's reschedule of one job.
type Override struct {
	// Job is the Prow job name.
	Job string `json:"job"`
	// Cluster is where the job must run.
	Cluster string `json:"cluster"`
	// Reason is the operator's reason.
	Reason string `json:"reason"`
	// By is who asked (a GitHub login, "api").
	By string `json:"by,omitempty"`
	// CreatedAt is when the override was made.
	CreatedAt time.Time `json:"createdAt"`
	// Expires is when the override lapses; absent means never.
	Expires time.Time `json:"expires,omitzero"`
}

// Explanation says why a job is where it is.
type Explanation struct {
	// Job is the Prow job name.
	Job string `json:"job"`
	// Requirements are what the job's labels ask of its cluster.
	Requirements Requirements `json:"requirements"`
	// Steps are every placement rule, in the order they are applied.
	Steps []Step `json:"steps"`
	// Eligible are the clusters the deciding rule allowed, with their loads.
	Eligible []ClusterStatus `json:"eligible,omitempty"`
	// Assignment is the job's row, or where it would be placed now.
	Assignment Assignment `json:"assignment"`
}

// Requirements are what a job's labels ask of its cluster.
type Requirements struct {
	// Capabilities the cluster must all have.
	Capabilities []string `json:"capabilities,omitempty"`
	// Pin is the cluster the job is pinned to, if any.
	Pin string `json:"pin,omitempty"`
	// KVM, NoBuilds and SSHBastion are set when the job carries that label.
	KVM        bool `json:"kvm,omitempty"`
	NoBuilds   bool `json:"noBuilds,omitempty"`
	SSHBastion bool `json:"sshBastion,omitempty"`
	// Cloud is the job's cloud label value, if any.
	Cloud string `json:"cloud,omitempty"`
}

// Step is one placement rule applied to a job.
type Step struct {
	// Rule is the rule's name, as in Assignment.Reason (plus "agent", the first).
	Rule string `json:"rule"`
	// Matched reports whether the rule applies to the job.
	Matched bool `json:"matched"`
	// Detail says what the rule found.
	Detail string `json:"detail"`
}

// ClusterStatus is one cluster's configuration and load.
type ClusterStatus struct {
	Name         string   `json:"name"`
	Provider     string   `json:"provider,omitempty"`
	Capacity     int      `json:"capacity"`
	Capabilities []string `json:"capabilities,omitempty"`
	Blocked      bool     `json:"blocked,omitempty"`
	Manual       bool     `json:"manual,omitempty"`
	// Override is the cluster's active drain or capacity cap, if any;
	// Capacity is then the capped capacity (0 while drained).
	Override *Drain `json:"override,omitempty"`
	// Role is "build" (in the cluster config: balancing may choose it),
	// "manual" (manualClusters) or "service" (named only by groups,
	// sshBastion, kvm, noBuilds or a job's cluster label, such as app.ci:
	// runs exactly the jobs that name it); empty for a cluster only an
	// override or an old table names.
	Role string `json:"role,omitempty"`
	// Jobs is the number of jobs assigned to the cluster, by any rule.
	Jobs int `json:"jobs"`
	// Demand is the summed demand of those jobs: the cluster's load, which
	// Ratio compares with Target.
	Demand float64 `json:"demand"`
	// BalancedJobs and BalancedDemand count the jobs placed by balancing:
	// the part of the load balancing chose this cluster for.
	BalancedJobs   int     `json:"balancedJobs"`
	BalancedDemand float64 `json:"balancedDemand"`
	// ForcedJobs and ForcedDemand count the jobs rules place outright
	// (overrides, cluster jobs, pins, the ssh bastion, groups): Jobs -
	// BalancedJobs and Demand - BalancedDemand.
	ForcedJobs   int     `json:"forcedJobs"`
	ForcedDemand float64 `json:"forcedDemand"`
	// Target is a usable build cluster's capacity-weighted share of all the
	// demand on usable clusters, forced and balanced (blocked, manual and
	// service clusters are outside it); 0 for other clusters.
	Target float64 `json:"target"`
	// Ratio is Demand / Target (0 when Target is 0).
	Ratio float64 `json:"ratio"`
	// Health is the cluster's health at the last evaluation; absent with
	// --health-mode=off or before the first evaluation.
	Health *ClusterHealth `json:"health,omitempty"`
	// ConfiguredCapacity is the cluster config's capacity, before any drain
	// or cap (absent for a cluster outside the cluster config).
	ConfiguredCapacity int `json:"configuredCapacity,omitempty"`
}

// ClusterHealth is a cluster's health at the dispatcher's last evaluation,
// with the numbers behind it.
type ClusterHealth struct {
	// State is "unknown" (too few finished jobs to judge, or no data),
	// "healthy" or "unhealthy", and Since is when the cluster entered it.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Evidence is what the last numbers alone say; State follows it once
	// it has lasted the dwell time.
	Evidence string `json:"evidence"`
	// Candidate is the state the evidence has pointed to since CandidateSince, if any.
	Candidate      string    `json:"candidate,omitempty"`
	CandidateSince time.Time `json:"candidateSince,omitzero"`
	// ErrorShare is the share of the cluster's finished ProwJobs that
	// ended in error, Samples how many finished; both absent without data.
	ErrorShare *float64 `json:"errorShare,omitempty"`
	Samples    *float64 `json:"samples,omitempty"`
	// PendingSeconds is how long its ProwJobs wait to start; absent when
	// unknown or without end (no job started: Reason says so).
	PendingSeconds *float64 `json:"pendingSeconds,omitempty"`
	// Reason gives the numbers and thresholds behind Evidence.
	Reason string `json:"reason"`
	// Mode is the health mode in force: "report" or "act".
	Mode string `json:"mode"`
	// Action says what the dispatcher did (act) or would do (report) about the cluster, and why.
	Action string `json:"action,omitempty"`
	// Evaluated is when the last evaluation ran.
	Evaluated time.Time `json:"evaluated"`
}

// Move is one job whose cluster a dispatch changed.
type Move struct {
	Job    string `json:"job"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

// DispatchResponse summarises a full dispatch.
type DispatchResponse struct {
	// Jobs is the number of jobs in the new table.
	Jobs int `json:"jobs"`
	// Moved is the number of jobs that changed cluster.
	Moved int `json:"moved"`
	// MovedTo counts moved jobs by the cluster they moved to.
	MovedTo map[string]int `json:"movedTo,omitempty"`
	// Moves lists the moves (at most 100; Moved has the full count).
	Moves []Move `json:"moves,omitempty"`
	// Imbalance is the largest load/target ratio (the whole load) among usable build clusters.
	Imbalance float64 `json:"imbalance"`
	// Unplaceable is the number of jobs that need what no usable cluster
	// has (a capability, kvm); UnplaceableJobs lists the first of them.
	Unplaceable     int              `json:"unplaceable,omitempty"`
	UnplaceableJobs []UnplaceableJob `json:"unplaceableJobs,omitempty"`
}

// UnplaceableJob is a job no usable cluster can run.
type UnplaceableJob struct {
	Job string `json:"job"`
	// Problem says what no usable cluster meets.
	Problem string `json:"problem"`
	// Cluster is the last eligible cluster the job stays on; empty when its
	// ProwJobs keep the cluster their job config gives.
	Cluster string `json:"cluster,omitempty"`
}

// RescheduleRequest moves a job to the named cluster, or to the best other eligible one when Cluster is empty.
type RescheduleRequest struct {
	Job     string `json:"job"`
	Cluster string `json:"cluster,omitempty"`
	// TTL is how long the override lasts ("72h"): at least 1m, at most the
	// dispatcher's --max-override-ttl (168h by default); empty means that
	// maximum. Out of bounds is 400, naming the value.
	TTL string `json:"ttl,omitempty"`
	// Reason is recorded with the override; required.
	Reason string `json:"reason"`
	// By is for whom the caller asks (the plugin sets the commenter's
	// login); the override records the authenticated caller's name, followed
	// by " for " and By when By is set.
	By string `json:"by,omitempty"`
}

// RescheduleResponse reports a reschedule.
type RescheduleResponse struct {
	Job      string   `json:"job"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Override Override `json:"override"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
	// Stranded and StrandedJobs are set on the 409 answer to a drain that
	// would strand jobs (the cluster is the last usable one with something
	// they need): how many, and the first of them. The drain was not
	// applied; DrainRequest.Force applies it anyway.
	Stranded     int              `json:"stranded,omitempty"`
	StrandedJobs []UnplaceableJob `json:"strandedJobs,omitempty"`
	// Problems are set on the 400 answer to a plan whose proposed configs
	// do not load: every validation error, each naming file, field and value.
	Problems []string `json:"problems,omitempty"`
}

// Drain is an operator's drain (Capacity 0) or capacity cap of a
// cluster, until Expires.
type Drain struct {
	Cluster string `json:"cluster"`
	// Capacity, when above 0, is the capped capacity; 0 is a drain.
	Capacity  int       `json:"capacity,omitempty"`
	Reason    string    `json:"reason"`
	By        string    `json:"by,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	Expires   time.Time `json:"expires"`
}

// DrainRequest drains the cluster that DrainPath names (Capacity 0: every
// job that can move leaves it and none is balanced onto it) or caps its
// capacity, for TTL. Only clusters of the cluster config can be drained.
type DrainRequest struct {
	// Capacity, when above 0, caps the cluster's capacity (1..100) instead of draining it.
	Capacity int `json:"capacity,omitempty"`
	// TTL is how long the drain or cap lasts ("4h"); required, at least 1m,
	// at most the dispatcher's --max-drain-ttl (168h by default). Out of
	// bounds is 400, naming the value.
	TTL string `json:"ttl"`
	// Reason is recorded with the drain; required.
	Reason string `json:"reason"`
	// By is for whom the caller asks, as in RescheduleRequest.
	By string `json:"by,omitempty"`
	// Force drains even when jobs would be stranded (see Error.Stranded):
	// they then stay on the drained cluster.
	Force bool `json:"force,omitempty"`
	// DryRun previews the drain: the answer says what it would move, and
	// nothing changes. A preview lists stranded jobs instead of refusing.
	DryRun bool `json:"dryRun,omitempty"`
}

// DrainPlan is what a drain or cap moved or, for a DryRun, would move.
type DrainPlan struct {
	// DryRun is set when the plan is a preview and nothing was changed.
	DryRun bool `json:"dryRun,omitempty"`
	// Override is the drain or cap applied (or previewed).
	Override Drain `json:"override"`
	// Moved is the number of jobs whose cluster changes.
	Moved int `json:"moved"`
	// Moves lists the moves, sorted by job (at most 100; Moved has the full count).
	Moves []Move `json:"moves,omitempty"`
	// Flows sums every move by the cluster it goes to.
	Flows map[string]Flow `json:"flows,omitempty"`
	// Staying is the number of jobs that stay on a drained cluster;
	// StayingJobs lists the first 100, each with why.
	Staying     int          `json:"staying,omitempty"`
	StayingJobs []StayingJob `json:"stayingJobs,omitempty"`
	// Stranded is the number of jobs that the drain leaves without a usable
	// cluster having what they need (only with Force, or in a preview);
	// StrandedJobs lists the first 100.
	Stranded     int              `json:"stranded,omitempty"`
	StrandedJobs []UnplaceableJob `json:"strandedJobs,omitempty"`
	// Unconfirmed, for a drain of replicas sharing state, are the live
	// replicas that had not confirmed the drain in force when it was
	// acknowledged (stopped or cut off ones): they may name the drained
	// cluster until they catch up. Every other replica already has it.
	Unconfirmed []string `json:"unconfirmed,omitempty"`
}

// Flow is the jobs and demand a drain moves to one cluster.
type Flow struct {
	Jobs   int     `json:"jobs"`
	Demand float64 `json:"demand"`
}

// StayingJob is a job that does not leave a drained cluster.
type StayingJob struct {
	Job string `json:"job"`
	// Reason is the rule that keeps it there ("cluster-job", "override", "capability", ...).
	Reason string `json:"reason"`
	// Detail explains the rule's decision for people.
	Detail string `json:"detail,omitempty"`
}

// UndrainResponse reports a cancelled drain or cap.
type UndrainResponse struct {
	// Cluster is the cluster whose drain or cap was cancelled.
	Cluster string `json:"cluster"`
	// Cancelled is the drain or cap in force when the request arrived.
	Cancelled *Drain `json:"cancelled,omitempty"`
	// Dispatch is the dispatch that followed: jobs flow back as balance
	// moves them, within the move budget.
	Dispatch DispatchResponse `json:"dispatch"`
}

// MaxPlanRequestBytes bounds the JSON body of a plan request, which carries
// whole files: a larger one is answered 413. A client sending many job
// config files should leave some out rather than exceed it.
const MaxPlanRequestBytes = 8 << 20

// PlanRequest proposes config files and Prow job config files, as a pull
// request changes them; an absent file is the one in force. Nothing
// changes: the answer says what a dispatch on them would do to the table in
// force. The JSON body is at most MaxPlanRequestBytes.
type PlanRequest struct {
	// DispatcherConfig and ClusterConfig are the proposed files' contents.
	DispatcherConfig *string `json:"dispatcherConfig,omitempty"`
	ClusterConfig    *string `json:"clusterConfig,omitempty"`
	// DispatcherConfigPath and ClusterConfigPath name the files in
	// validation errors (their paths in the repository); empty: the names of
	// the files the dispatcher loads.
	DispatcherConfigPath string `json:"dispatcherConfigPath,omitempty"`
	ClusterConfigPath    string `json:"clusterConfigPath,omitempty"`
	// JobConfigFiles are proposed Prow job config files by path relative to
	// the job config dir, with forward slashes
	// ("openshift/origin/openshift-origin-main-presubmits.yaml"): the new
	// content, or null for a deleted file. Paths must be clean .yaml or
	// .yml paths inside the dir; others are answered 400.
	JobConfigFiles map[string]*string `json:"jobConfigFiles,omitempty"`
	// JobConfigDir is the job config dir's path in the repository
	// ("ci-operator/jobs"), naming job files in validation errors; empty:
	// the base name of the dir the dispatcher loads.
	JobConfigDir string `json:"jobConfigDir,omitempty"`
}

// PlanResponse is what a dispatch on the proposed configs would do.
type PlanResponse struct {
	// Moved and MovedDemand count the jobs whose cluster would change and their demand.
	Moved       int     `json:"moved"`
	MovedDemand float64 `json:"movedDemand"`
	// Moves lists the moves, sorted by job (at most 100; Moved has the full count).
	Moves []Move `json:"moves,omitempty"`
	// To and From sum every move by the cluster it goes to and leaves.
	To   map[string]Flow `json:"to,omitempty"`
	From map[string]Flow `json:"from,omitempty"`
	// Clusters are the clusters with their loads after the dispatch.
	Clusters []ClusterStatus `json:"clusters"`
	// Unplaceable is the number of jobs that would become unplaceable;
	// UnplaceableJobs lists the first 100.
	Unplaceable     int              `json:"unplaceable,omitempty"`
	UnplaceableJobs []UnplaceableJob `json:"unplaceableJobs,omitempty"`
	// Added is the number of jobs the proposed job config files define that
	// the job config in force lacks; AddedJobs lists the first 100, each
	// with the cluster it would get, and AddedTo sums them all by it.
	Added     int             `json:"added,omitempty"`
	AddedJobs []JobChange     `json:"addedJobs,omitempty"`
	AddedTo   map[string]Flow `json:"addedTo,omitempty"`
	// Removed is the number of jobs in force the proposed files no longer
	// define; RemovedJobs lists the first 100, each with the cluster it is
	// on, and RemovedFrom sums them all by it.
	Removed     int             `json:"removed,omitempty"`
	RemovedJobs []JobChange     `json:"removedJobs,omitempty"`
	RemovedFrom map[string]Flow `json:"removedFrom,omitempty"`
}

// JobChange is a job that a plan's job config files add or remove.
type JobChange struct {
	Job string `json:"job"`
	// File is the job's file, relative to the job config dir.
	File string `json:"file,omitempty"`
	// Cluster is the cluster an added job would get or a removed job is on;
	// empty for a job of another agent ("agent") or an unplaceable job
	// ("unplaceable") left on the cluster its job config gives.
	Cluster string `json:"cluster,omitempty"`
	// Reason is the rule that chose Cluster ("balanced", "pinned", ...).
	Reason string `json:"reason"`
	// Detail explains the decision for people.
	Detail string `json:"detail,omitempty"`
	// Demand is the job's demand in its row.
	Demand float64 `json:"demand"`
}
