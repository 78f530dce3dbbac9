// Package kubestate is the Kubernetes state backend of the highly available
// dispatcher: the replicas share overrides, drains, the leader's table and
// the rows they place at admission as objects of prowjob-dispatcher.io/v1alpha1
// in one namespace, and elect their leader on a coordination.k8s.io Lease.
//
// A Backend reads those objects through informers (a controller-runtime
// cache) and writes them with bounded API calls. Every replica follows the
// leader's table (TableShard objects) and the overrides, claims the rows it
// places for jobs the table lacks (JobPlacement, create-if-absent) and
// writes its own DispatcherReplica record; the leader publishes the table,
// folds the placements into it and collects expired objects. The Backend is
// the dispatcher's state.Backend: the dispatcher's writes go through it,
// and it gives the dispatcher the changes through the state.Watcher the
// dispatcher registers with Watch.
//
// The Backend assembles one room per role, each a small type with its own
// state and lock over the shared API access (kube.go): the writer
// (shared.go, claim.go, confirm.go), the follower (follow.go: a reconcile
// per kind on a workqueue, debounced with AddAfter), the leadership
// (elect.go, fence.go), the leader's duties run per term under Elect
// (the dispatch loop given to Elect, the publisher in publish.go, the
// collector in gc.go) and the heartbeat and demand (replica.go).
//
// Times written as metav1.Time (override and drain times, heartbeats,
// GeneratedAt) have second precision: what a replica reads back is the time
// it wrote truncated to the second, in UTC. The rows inside table shards and
// placements are JSON and keep full precision.
package kubestate
