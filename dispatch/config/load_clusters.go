package config

import (
	"errors"
	"fmt"
	"os"
)

// rawCluster is a cluster as written; Capacity is a pointer so that an
// explicit 0 is told apart from an absent capacity.
type rawCluster struct {
	Name         string   `json:"name"`
	Capacity     *int     `json:"capacity,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
	Blocked      bool     `json:"blocked,omitempty"`
}

// LoadClusters reads and validates the cluster config at path.
func LoadClusters(path string) (*Clusters, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	return ParseClusters(path, data)
}

// ParseClusters decodes the cluster config (PROVIDER: [{name, capacity,
// capabilities, blocked}]), applies DefaultCapacity and sets each
// cluster's Provider. Keys it does not know are ignored and listed in
// Unknown. name is the file name used in error messages. All validation
// errors are returned together; on error the result is nil. A config
// without clusters is an error.
func ParseClusters(name string, data []byte) (*Clusters, error) {
	errs := fieldErrors{prefix: clustersPrefix(name)}
	var raw map[string][]rawCluster
	unknown, err := decode(data, &raw)
	if err != nil {
		errs.addErr(err)
		return nil, errs.err()
	}
	c := &Clusters{Providers: make(map[string][]Cluster, len(raw)), File: name, Unknown: unknown}
	clusterAt := map[string]string{}
	for _, provider := range sortedKeys(raw) {
		pfield := provider
		if provider == "" {
			pfield = `""`
			errs.add(pfield, "empty provider name")
		}
		list := make([]Cluster, 0, len(raw[provider]))
		for i, rc := range raw[provider] {
			at := index(pfield, i)
			list = append(list, checkCluster(&errs, at, provider, rc))
			switch prev, dup := clusterAt[rc.Name]; {
			case rc.Name == "":
				errs.add(at+".name", "empty cluster name")
			case dup:
				errs.add(at+".name", "cluster %q listed twice (also at %s)", rc.Name, prev)
			default:
				clusterAt[rc.Name] = at
			}
		}
		c.Providers[provider] = list
	}
	if len(clusterAt) == 0 && len(errs.errs) == 0 {
		errs.addErr(errors.New("no clusters"))
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkCluster validates one cluster's capacity and capabilities and returns it with defaults applied.
func checkCluster(errs *fieldErrors, at, provider string, rc rawCluster) Cluster {
	cl := Cluster{Name: rc.Name, Provider: provider, Capacity: DefaultCapacity, Capabilities: rc.Capabilities, Blocked: rc.Blocked}
	if rc.Capacity != nil {
		cl.Capacity = *rc.Capacity
		if cl.Capacity < 1 || cl.Capacity > 100 {
			errs.add(at+".capacity", "cluster %q: capacity %d not in 1..100", rc.Name, cl.Capacity)
		}
	}
	seen := map[string]int{}
	for i, capability := range rc.Capabilities {
		cat := index(at+".capabilities", i)
		if capability == "" {
			errs.add(cat, "cluster %q: empty capability", rc.Name)
			continue
		}
		if prev, dup := seen[capability]; dup {
			errs.add(cat, "cluster %q: capability %q listed twice (also at index %d)", rc.Name, capability, prev)
			continue
		}
		seen[capability] = i
	}
	return cl
}
