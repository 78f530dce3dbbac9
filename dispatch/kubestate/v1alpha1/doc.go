// Package v1alpha1 holds the Kubernetes API types of the kubernetes state
// backend: the operators' overrides (JobOverride, ClusterDrain), the table
// the leader publishes (TableShard), the rows a replica placed for jobs the
// table lacked (JobPlacement) and each replica's record (DispatcherReplica).
// The CRDs in manifests/crds are generated from these types by controller-gen
// (make generate).
//
// +kubebuilder:object:generate=true
// +groupName=prowjob-dispatcher.io
package v1alpha1
