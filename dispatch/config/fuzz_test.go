package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// addSeeds adds every YAML file under dir as a fuzz seed.
func addSeeds(f *testing.F, dir string) {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	if len(paths) == 0 {
		f.Fatalf("no seeds in %s", dir)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzParseDispatcher checks that any input gives either an error or a
// config that keeps the invariants loading promises and survives a
// Marshal/Parse round trip unchanged.
func FuzzParseDispatcher(f *testing.F) {
	addSeeds(f, filepath.Join("testdata", "dispatcher"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDispatcher("fuzz.yaml", data)
		if err != nil {
			if d != nil {
				t.Fatalf("config returned with error %v", err)
			}
			return
		}
		if d.Default == "" {
			t.Fatal("valid config without default")
		}
		jobs := map[string]bool{}
		for name, g := range d.Groups {
			if name == "" {
				t.Fatal("valid config with an empty group cluster")
			}
			if len(g.PathREs) != len(g.Paths) {
				t.Fatalf("group %q: %d regexes for %d paths", name, len(g.PathREs), len(g.Paths))
			}
			for _, j := range g.Jobs {
				if jobs[j] {
					t.Fatalf("job %q in two groups", j)
				}
				jobs[j] = true
			}
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := ParseDispatcher("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("marshalled config does not parse: %v\n%s", err, out)
		}
		out2, err := again.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if string(out) != string(out2) {
			t.Fatalf("round trip changed the config:\n%s\n---\n%s", out, out2)
		}
	})
}

// FuzzParseClusters checks that any input gives either an error or a
// cluster config that keeps the invariants loading promises.
func FuzzParseClusters(f *testing.F) {
	addSeeds(f, filepath.Join("testdata", "clusters"))
	addSeeds(f, "testdata")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseClusters("fuzz.yaml", data)
		if err != nil {
			if c != nil {
				t.Fatalf("clusters returned with error %v", err)
			}
			return
		}
		total := 0
		for provider, list := range c.Providers {
			if provider == "" {
				t.Fatal("valid config with an empty provider")
			}
			total += len(list)
			for _, cl := range list {
				if cl.Name == "" || cl.Provider != provider || cl.Capacity < 1 || cl.Capacity > 100 {
					t.Fatalf("invalid cluster %+v under %q", cl, provider)
				}
				if got, ok := c.Get(cl.Name); !ok || got.Provider != provider {
					t.Fatalf("Get(%q) = %+v, %v", cl.Name, got, ok)
				}
				seen := map[string]bool{}
				for _, capability := range cl.Capabilities {
					if capability == "" || seen[capability] || !cl.Has(capability) {
						t.Fatalf("cluster %q: bad capability %q", cl.Name, capability)
					}
					seen[capability] = true
				}
				if !cl.HasAll(cl.Capabilities) {
					t.Fatalf("cluster %q lacks its own capabilities", cl.Name)
				}
			}
		}
		all := c.All()
		if len(all) != total {
			t.Fatalf("All() has %d clusters, want %d (a name listed twice?)", len(all), total)
		}
		if !slices.IsSortedFunc(all, func(a, b Cluster) int { return strings.Compare(a.Name, b.Name) }) {
			t.Fatal("All() not sorted")
		}
		for i := 1; i < len(all); i++ {
			if all[i].Name == all[i-1].Name {
				t.Fatalf("cluster %q listed twice", all[i].Name)
			}
		}
	})
}
