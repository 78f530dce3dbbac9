package config

// DefaultCapacity is a cluster's capacity when the cluster config gives none.
const DefaultCapacity = 100

// Clusters is the cluster config: the build clusters, by provider.
type Clusters struct {
	// Providers maps a provider ("aws", "gcp") to its clusters, in file order.
	Providers map[string][]Cluster
}

// Cluster is one build cluster.
type Cluster struct {
	// Name is the cluster name, unique across providers.
	Name string `json:"name"`
	// Provider is the provider the cluster is listed under (set by loading).
	Provider string `json:"-"`
	// Capacity is the cluster's share of the balanced load, 1..100 (DefaultCapacity when absent).
	Capacity int `json:"capacity"`
	// Capabilities the cluster offers ("arm64", "intranet").
	Capabilities []string `json:"capabilities,omitempty"`
	// Blocked clusters are never chosen.
	Blocked bool `json:"blocked,omitempty"`
}
