// Package engine computes the job -> cluster assignment table. It is pure:
// inputs in, a table and a report out, no I/O, and the same inputs give a
// byte-identical table whatever the map order.
package engine

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Option defaults.
const (
	DefaultTolerance       = 1.05
	DefaultMaxMoveFraction = 0.2
)

// Engine places jobs on clusters. New indexes one Input; Dispatch computes a
// full table from it; Place, Best, CanRun, Explain and Loads answer single
// questions against the current loads. An Engine is safe for concurrent use.
// The Input's maps and slices must not be modified while the Engine is in use.
type Engine struct {
	mu sync.Mutex

	in   Input
	opts Options

	clusters []clusterInfo // known clusters sorted by name, then unknown ones as they appear
	byName   map[string]int
	usable   clusterSet
	capacity float64 // summed capacity of the usable clusters

	capSets   map[string]clusterSet
	kvm       clusterSet
	noBuilds  clusterSet
	providers map[string]clusterSet

	balancedDetail string // the Detail of rule 9, the same for every job

	groupJobs  map[string]string   // job name -> cluster
	groupPaths []groupPath         // in group (cluster) name order, then path order
	pathIndex  *config.PathMatcher // groupPaths' regexes
	fileGroups map[string]int      // job file -> index into groupPaths, -1 for none (a cache)

	overrides     map[string]table.Override
	provisional   map[string]float64 // Input.Provisional, then PlaceProvisional's
	previous      map[string]previousRow
	defaultDemand float64

	// The current table and its loads: the previous table until Dispatch, then Dispatch's, plus Place's rows.
	rows     []table.Assignment
	rowIndex map[string]int
	loads    []load                // by cluster index
	total    float64               // summed demand of the rows on usable clusters: what the targets share
	files    map[string][]fileLoad // job file -> clusters holding its balanced rows (built on first Place)
}

type groupPath struct {
	cluster string
	pattern string
	re      *regexp.Regexp
}

// previousRow is where a job ran before this run: a row of Input.Previous, or
// the dispatcher config's buildFarm when there is no previous table.
type previousRow struct {
	cluster string
	reason  table.Reason
	at      time.Time
}

// load is one cluster's share of the current table: every row on it, and
// the rows balancing placed.
type load struct {
	jobs, balancedJobs     int
	demand, balancedDemand float64
}

// New indexes the input and computes the loads of in.Previous, so Place can
// work before the first Dispatch. It fails only on input it cannot use: a
// missing config, an uncompilable group path, too many clusters.
func New(in Input) (*Engine, error) {
	if in.Config == nil {
		return nil, errors.New("engine input: no dispatcher config")
	}
	e := &Engine{
		in:         in,
		opts:       in.Options.withDefaults(),
		byName:     map[string]int{},
		capSets:    map[string]clusterSet{},
		providers:  map[string]clusterSet{},
		groupJobs:  map[string]string{},
		fileGroups: map[string]int{},
		overrides:  make(map[string]table.Override, len(in.Overrides)),
		rowIndex:   map[string]int{},
	}
	clusters, err := indexClusters(in.Clusters, in.Config.ManualClusters, serviceClusters(in))
	if err != nil {
		return nil, fmt.Errorf("engine input: %w", err)
	}
	applyDrains(clusters, in.Drains, in.Now)
	e.clusters = clusters
	e.loads = make([]load, len(clusters))
	for i := range e.clusters {
		c := &e.clusters[i]
		e.byName[c.name] = i
		if c.inventory {
			e.providers[c.provider] |= setOf(i)
			for _, cp := range c.caps {
				e.capSets[cp] |= setOf(i)
			}
		}
		if c.usable() {
			e.usable |= setOf(i)
			e.capacity += float64(c.capacity)
		}
	}
	e.balancedDetail = e.constraintDetail(nil, 0, e.usable)
	e.kvm = e.listSet(in.Config.KVM)
	e.noBuilds = e.listSet(in.Config.NoBuilds)
	if err := e.indexGroups(); err != nil {
		return nil, err
	}
	for job, o := range in.Overrides {
		if job == "" {
			job = o.Job
		}
		e.overrides[job] = o
	}
	e.provisional = make(map[string]float64, len(in.Provisional))
	for job, d := range in.Provisional {
		e.provisional[job] = d
	}
	e.defaultDemand = defaultDemand(in)
	e.indexPrevious()
	return e, nil
}

// serviceClusters lists the service clusters of the input: those of the
// dispatcher config (config.ServiceClusters), then the clusters that jobs of
// the job config pin to that no config knows, in job order, as long as the
// known clusters stay within maxKnownClusters. A pin to a name equal to a
// known cluster but for case is not one: the pinned rule ignores it.
func serviceClusters(in Input) []string {
	svc := config.ServiceClusters(in.Config, in.Clusters)
	out := make([]string, 0, len(svc))
	fold := map[string]bool{}
	for _, c := range in.Clusters.All() {
		fold[strings.ToLower(c.Name)] = true
	}
	for _, m := range in.Config.ManualClusters {
		fold[strings.ToLower(m)] = true
	}
	for _, s := range svc {
		out = append(out, s.Name)
		fold[strings.ToLower(s.Name)] = true
	}
	room := maxKnownClusters - len(fold)
	for i := range in.Jobs {
		pin := in.Jobs[i].Requirements.Pin
		if pin == "" || fold[strings.ToLower(pin)] || room <= 0 {
			continue
		}
		fold[strings.ToLower(pin)] = true
		out = append(out, pin)
		room--
	}
	return out
}

func (o Options) withDefaults() Options {
	if o.Tolerance <= 0 {
		o.Tolerance = DefaultTolerance
	}
	if o.MaxMoveFraction <= 0 {
		o.MaxMoveFraction = DefaultMaxMoveFraction
	}
	return o
}

// listSet returns the known clusters among names.
func (e *Engine) listSet(names []string) clusterSet {
	var s clusterSet
	for _, n := range names {
		if i, ok := e.byName[n]; ok {
			s |= setOf(i)
		}
	}
	return s
}

// indexGroups indexes the groups by job name and lists their path regexes,
// compiling Paths where the loader left PathREs unset.
func (e *Engine) indexGroups() error {
	names := make([]string, 0, len(e.in.Config.Groups))
	for n := range e.in.Config.Groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, cluster := range names {
		g := e.in.Config.Groups[cluster]
		for _, j := range g.Jobs {
			if _, dup := e.groupJobs[j]; !dup {
				e.groupJobs[j] = cluster
			}
		}
		for k, p := range g.Paths {
			var re *regexp.Regexp
			if k < len(g.PathREs) && g.PathREs[k] != nil {
				re = g.PathREs[k]
			} else {
				var err error
				if re, err = regexp.Compile(p); err != nil {
					return fmt.Errorf("engine input: dispatcher config groups[%q].paths[%d]: %w", cluster, k, err)
				}
			}
			e.groupPaths = append(e.groupPaths, groupPath{cluster: cluster, pattern: p, re: re})
		}
	}
	res := make([]*regexp.Regexp, len(e.groupPaths))
	for i := range e.groupPaths {
		res[i] = e.groupPaths[i].re
	}
	e.pathIndex = config.NewPathMatcher(res)
	return nil
}

// defaultDemand is Options.DefaultDemand, or the median demand of the input's
// jobs that have demand data, or 1 when none has.
func defaultDemand(in Input) float64 {
	if in.Options.DefaultDemand > 0 {
		return in.Options.DefaultDemand
	}
	known := make([]float64, 0, len(in.Demand))
	for _, j := range in.Jobs {
		if d, ok := in.Demand[j.Name]; ok && d >= 0 {
			known = append(known, d)
		}
	}
	if len(known) == 0 {
		return 1
	}
	sort.Float64s(known)
	m := len(known) / 2
	if len(known)%2 == 1 {
		return known[m]
	}
	return (known[m-1] + known[m]) / 2
}

// demandOf returns the job's demand for balancing.
func (e *Engine) demandOf(job string) float64 {
	if d, ok := e.in.Demand[job]; ok && d >= 0 {
		return d
	}
	if d, ok := e.provisional[job]; ok {
		return d
	}
	return e.defaultDemand
}

// indexPrevious records where each job ran before, and takes the previous
// table as the current one. Without a previous table, the dispatcher config's
// buildFarm (job file base name -> cluster) is the previous assignment.
func (e *Engine) indexPrevious() {
	if p := e.in.Previous; p != nil {
		e.previous = make(map[string]previousRow, len(p.Assignments))
		e.rows = make([]table.Assignment, 0, len(p.Assignments))
		for _, a := range p.Assignments {
			if _, dup := e.rowIndex[a.Job]; dup {
				continue
			}
			e.previous[a.Job] = previousRow{cluster: a.Cluster, reason: a.Reason, at: a.AssignedAt}
			e.addRow(a)
		}
		return
	}
	byFile := e.buildFarmFiles()
	if len(byFile) == 0 {
		return
	}
	e.previous = map[string]previousRow{}
	for _, j := range e.in.Jobs {
		if j.File == "" {
			continue
		}
		if c, ok := byFile[path.Base(j.File)]; ok {
			e.previous[j.Name] = previousRow{cluster: c, at: e.in.Now}
		}
	}
}

// buildFarmFiles maps each job file base name of the buildFarm to its
// cluster, skipping disabled clusters; the first in provider, then cluster name order wins.
func (e *Engine) buildFarmFiles() map[string]string {
	out := map[string]string{}
	providers := make([]string, 0, len(e.in.Config.BuildFarm))
	for p := range e.in.Config.BuildFarm {
		providers = append(providers, p)
	}
	sort.Strings(providers)
	for _, p := range providers {
		clusters := make([]string, 0, len(e.in.Config.BuildFarm[p]))
		for c := range e.in.Config.BuildFarm[p] {
			clusters = append(clusters, c)
		}
		sort.Strings(clusters)
		for _, c := range clusters {
			bf := e.in.Config.BuildFarm[p][c]
			if bf == nil || bf.Disabled {
				continue
			}
			for _, f := range bf.Filenames {
				if _, dup := out[f]; !dup {
					out[f] = c
				}
			}
		}
	}
	return out
}

// dispatched reports whether the dispatcher places the job: its agent is
// kubernetes (an empty agent is Prow's default, kubernetes).
func dispatched(j *jobs.Job) bool { return j.Agent == "" || j.Agent == jobs.Agent }
