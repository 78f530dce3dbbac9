package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// JobOverride is an operator's reschedule of one job: the job runs on
// Cluster until Expires (never when unset) or until the object is deleted.
// Its name is derived from the job name (kubestate.ObjectName).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=jo,categories=prowjob-dispatcher
// +kubebuilder:printcolumn:name="Job",type=string,JSONPath=`.spec.job`
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.cluster`
// +kubebuilder:printcolumn:name="Expires",type=string,format=date-time,JSONPath=`.spec.expires`
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.spec.by`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type JobOverride struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec JobOverrideSpec `json:"spec"`
}

// JobOverrideSpec is one reschedule.
type JobOverrideSpec struct {
	// Job is the Prow job name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Job string `json:"job"`
	// Cluster is where the job must run.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Cluster string `json:"cluster"`
	// Reason is the operator's reason.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
	// By is who asked (a GitHub login, "api").
	// +kubebuilder:validation:MaxLength=256
	// +optional
	By string `json:"by,omitempty"`
	// CreatedAt is when the override was made; the object's creation time when unset.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`
	// Expires is when the override lapses; never when unset.
	// +optional
	Expires *metav1.Time `json:"expires,omitempty"`
}

// JobOverrideList is a list of JobOverrides.
//
// +kubebuilder:object:root=true
type JobOverrideList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []JobOverride `json:"items"`
}

// ClusterDrain is an operator's (or health failover's) temporary change to
// one cluster of the cluster config: a drain when Capacity is 0, a capacity
// cap otherwise, until Expires. Its name is the cluster's name.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=cd,categories=prowjob-dispatcher
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.cluster`
// +kubebuilder:printcolumn:name="Capacity",type=integer,JSONPath=`.spec.capacity`,description="0 drains"
// +kubebuilder:printcolumn:name="Expires",type=string,format=date-time,JSONPath=`.spec.expires`
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.spec.by`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`
type ClusterDrain struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ClusterDrainSpec `json:"spec"`
}

// ClusterDrainSpec is one drain or capacity cap.
type ClusterDrainSpec struct {
	// Cluster is the cluster's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Cluster string `json:"cluster"`
	// Capacity, when above 0, caps the cluster's capacity instead of draining it.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Capacity int32 `json:"capacity,omitempty"`
	// Reason is the reason.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
	// By is who asked; "health" for an automatic drain.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	By string `json:"by,omitempty"`
	// CreatedAt is when the drain was made; the object's creation time when unset.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`
	// Expires is when the drain lapses: drains always expire.
	Expires metav1.Time `json:"expires"`
}

// ClusterDrainList is a list of ClusterDrains.
//
// +kubebuilder:object:root=true
type ClusterDrainList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterDrain `json:"items"`
}

// TableShard is one shard of the table the leader publishes: the rows (and
// provisional jobs) whose job name hashes to Shard of Shards, as gzipped
// JSON. Every replica loads the shards at start and follows them.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=ts,categories=prowjob-dispatcher
// +kubebuilder:printcolumn:name="Shard",type=integer,JSONPath=`.spec.shard`
// +kubebuilder:printcolumn:name="Rows",type=integer,JSONPath=`.spec.rows`
// +kubebuilder:printcolumn:name="Publication",type=integer,JSONPath=`.spec.publication`
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.spec.publishedBy`
// +kubebuilder:printcolumn:name="Generated",type=date,JSONPath=`.spec.generatedAt`
type TableShard struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec TableShardSpec `json:"spec"`
}

// TableShardSpec is the content of one shard.
type TableShardSpec struct {
	// Shard is this shard's index, 0 <= Shard < Shards.
	// +kubebuilder:validation:Minimum=0
	Shard int32 `json:"shard"`
	// Shards is how many shards the table was cut into.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Shards int32 `json:"shards"`
	// Publication numbers the leader's publications; it only grows.
	// +kubebuilder:validation:Minimum=0
	Publication int64 `json:"publication"`
	// Term is the leader's term that wrote it: the Lease's leaseTransitions
	// while PublishedBy held it. Followers never adopt an older term than one
	// they adopted, nor a term or holder the Lease never had.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Term int64 `json:"term,omitempty"`
	// PublishedBy is the replica that published it (the Lease's holder in Term).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PublishedBy string `json:"publishedBy,omitempty"`
	// GeneratedAt is the table's generation time.
	// +optional
	GeneratedAt *metav1.Time `json:"generatedAt,omitempty"`
	// Rows is how many rows Data holds.
	// +kubebuilder:validation:Minimum=0
	Rows int32 `json:"rows"`
	// Checksum is the sha256 of Data uncompressed ("sha256:HEX").
	// +kubebuilder:validation:MaxLength=71
	Checksum string `json:"checksum"`
	// Data is the shard's content, gzipped JSON (at most 1 MiB).
	// +kubebuilder:validation:MaxLength=1398104
	Data []byte `json:"data"`
}

// TableShardList is a list of TableShards.
//
// +kubebuilder:object:root=true
type TableShardList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TableShard `json:"items"`
}

// JobPlacement is the row a replica placed, at admission, for a job the
// table lacked. It is created if absent: when two replicas place one job at
// once, the one created first wins and the other adopts it. The leader
// folds placements into the table and deletes them once published.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=jp,categories=prowjob-dispatcher
// +kubebuilder:printcolumn:name="Job",type=string,JSONPath=`.spec.job`
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.cluster`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`
// +kubebuilder:printcolumn:name="Replica",type=string,JSONPath=`.spec.replica`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type JobPlacement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec JobPlacementSpec `json:"spec"`
}

// JobPlacementSpec is one placed row.
type JobPlacementSpec struct {
	// Job is the Prow job name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Job string `json:"job"`
	// Cluster is where the job runs.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Cluster string `json:"cluster"`
	// Reason is the rule that chose Cluster.
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason"`
	// Replica is the replica that placed it.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Replica string `json:"replica,omitempty"`
	// Row is the whole row (table.Assignment) as JSON (at most 64 KiB).
	// +kubebuilder:validation:MaxLength=87384
	Row []byte `json:"row"`
	// Provisional, for a job the job config lacks, is its provisional
	// record (store.Provisional) as JSON (at most 64 KiB).
	// +kubebuilder:validation:MaxLength=87384
	// +optional
	Provisional []byte `json:"provisional,omitempty"`
}

// JobPlacementList is a list of JobPlacements.
//
// +kubebuilder:object:root=true
type JobPlacementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []JobPlacement `json:"items"`
}

// DispatcherReplica is one dispatcher process's record, which it alone
// writes: where its API listens (followers forward writes to the leader's),
// what it serves, and the ProwJobs it admitted (the demand the leader sums
// when demand is counted from admissions). Its name is the replica's name.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=dr,categories=prowjob-dispatcher
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="Publication",type=integer,JSONPath=`.status.publication`
// +kubebuilder:printcolumn:name="Rows",type=integer,JSONPath=`.status.rows`
// +kubebuilder:printcolumn:name="Leader",type=boolean,JSONPath=`.status.leader`
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.heartbeat`
type DispatcherReplica struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec DispatcherReplicaSpec `json:"spec"`
	// +optional
	Status DispatcherReplicaStatus `json:"status,omitempty"`
}

// DispatcherReplicaSpec says how to reach the replica.
type DispatcherReplicaSpec struct {
	// Address is the root URL of the replica's HTTP API.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	Address string `json:"address,omitempty"`
}

// DispatcherReplicaStatus is what the replica last reported.
type DispatcherReplicaStatus struct {
	// Heartbeat is when the replica last wrote this object.
	// +optional
	Heartbeat *metav1.Time `json:"heartbeat,omitempty"`
	// Leader is whether the replica led when it wrote this object.
	// +optional
	Leader bool `json:"leader,omitempty"`
	// Publication is the table publication the replica serves.
	// +optional
	Publication int64 `json:"publication,omitempty"`
	// Rows is how many rows its table holds.
	// +optional
	Rows int32 `json:"rows,omitempty"`
	// UnpublishedSince, on the leader's record, is since when its table has
	// changes its publication failed to write: followers show the lag.
	// +optional
	UnpublishedSince *metav1.Time `json:"unpublishedSince,omitempty"`
	// Admissions are its admission counts (demand.AdmissionCounts), gzipped JSON.
	// +optional
	Admissions []byte `json:"admissions,omitempty"`
	// Drains are the cluster drains the replica has in force, each as
	// CLUSTER@CREATED (RFC 3339): a leader acknowledges a drain once every
	// live replica lists it.
	// +optional
	// +kubebuilder:validation:MaxItems=200
	// +kubebuilder:validation:items:MaxLength=300
	Drains []string `json:"drains,omitempty"`
}

// DispatcherReplicaList is a list of DispatcherReplicas.
//
// +kubebuilder:object:root=true
type DispatcherReplicaList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DispatcherReplica `json:"items"`
}
