package enginetest

import (
	"math"
	"math/rand/v2"
	"sort"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Perturb returns a copy of t in which about fraction of the rows moved to
// another of clusters, as a table computed on older inputs would differ.
func Perturb(t *table.Table, clusters []string, fraction float64, seed int64) *table.Table {
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	out := &table.Table{GeneratedAt: t.GeneratedAt, Assignments: append([]table.Assignment(nil), t.Assignments...)}
	for i := range out.Assignments {
		if len(clusters) > 1 && r.Float64() < fraction {
			a := &out.Assignments[i]
			k := r.IntN(len(clusters))
			if clusters[k] == a.Cluster {
				k = (k + 1) % len(clusters)
			}
			a.Cluster = clusters[k]
		}
	}
	return out
}

// PerturbDemand returns a copy of demand in which about fraction of the jobs
// have their demand scaled by a factor between 1/2 and 2, as a new demand
// window would.
func PerturbDemand(demand map[string]float64, fraction float64, seed int64) map[string]float64 {
	r := rand.New(rand.NewPCG(uint64(seed), 2))
	out := make(map[string]float64, len(demand))
	for _, job := range sortedKeys(demand) {
		d := demand[job]
		if r.Float64() < fraction {
			d = math.Round(d*math.Exp2(2*r.Float64()-1)*100) / 100
		}
		out[job] = d
	}
	return out
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
