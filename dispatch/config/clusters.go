package config

import (
	"slices"
	"sort"
)

// DefaultCapacity is a cluster's capacity when the cluster config gives none.
const DefaultCapacity = 100

// Clusters is the cluster config: the build clusters, by provider.
type Clusters struct {
	// Providers maps a provider ("aws", "gcp") to its clusters, in file order.
	Providers map[string][]Cluster
	// File is the file the config was read from, named in error messages (set by loading).
	File string `json:"-"`
	// Unknown are the keys of the file this version does not know and
	// ignored, as field paths: aws[0].ipCapacity (set by loading).
	Unknown []string `json:"-"`
}

// Get returns the cluster called name, whatever its provider.
func (c *Clusters) Get(name string) (Cluster, bool) {
	if c == nil {
		return Cluster{}, false
	}
	for _, list := range c.Providers {
		for _, cl := range list {
			if cl.Name == name {
				return cl, true
			}
		}
	}
	return Cluster{}, false
}

// All returns every cluster of every provider, sorted by name.
func (c *Clusters) All() []Cluster {
	if c == nil {
		return nil
	}
	var all []Cluster
	for _, list := range c.Providers {
		all = append(all, list...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// Has reports whether the cluster offers capability.
func (c Cluster) Has(capability string) bool {
	return slices.Contains(c.Capabilities, capability)
}

// HasAll reports whether the cluster offers every one of capabilities (true for none).
func (c Cluster) HasAll(capabilities []string) bool {
	for _, capability := range capabilities {
		if !c.Has(capability) {
			return false
		}
	}
	return true
}

// Cluster is one build cluster.
type Cluster struct {
	// Name is the cluster name, unique across providers.
	Name string `json:"name"`
	// Provider is the provider the cluster is listed under (set by loading).
	Provider string `json:"-"`
	// Capacity is the cluster's share of the load, 1..100 (DefaultCapacity when absent).
	Capacity int `json:"capacity"`
	// Capabilities the cluster offers ("arm64", "intranet").
	Capabilities []string `json:"capabilities,omitempty"`
	// Blocked clusters are never chosen.
	Blocked bool `json:"blocked,omitempty"`
}
