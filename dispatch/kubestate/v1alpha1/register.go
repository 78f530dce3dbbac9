package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is the API group and version of these types.
var GroupVersion = schema.GroupVersion{Group: "prowjob-dispatcher.io", Version: "v1alpha1"}

// AddToScheme adds the types of this group and version to a scheme.
func AddToScheme(s *runtime.Scheme) error {
	b := &scheme.Builder{GroupVersion: GroupVersion}
	b.Register(&JobOverride{}, &JobOverrideList{}, &ClusterDrain{}, &ClusterDrainList{},
		&TableShard{}, &TableShardList{}, &JobPlacement{}, &JobPlacementList{},
		&DispatcherReplica{}, &DispatcherReplicaList{})
	return b.AddToScheme(s)
}
