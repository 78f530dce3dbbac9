package config

import (
	"fmt"
	"os"
	"regexp"
	"regexp/syntax"
)

// LoadDispatcher reads and validates the dispatcher config at path.
func LoadDispatcher(path string) (*DispatcherConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dispatcher config: %w", err)
	}
	return ParseDispatcher(path, data)
}

// ParseDispatcher decodes the dispatcher config (keys it does not know are
// ignored and listed in Unknown), compiles the group path regexes and validates it. name is the
// file name used in error messages. All validation errors are returned
// together; on error the returned config is nil.
func ParseDispatcher(name string, data []byte) (*DispatcherConfig, error) {
	errs := fieldErrors{prefix: dispatcherPrefix(name)}
	var d DispatcherConfig
	unknown, err := decode(data, &d)
	if err != nil {
		errs.addErr(err)
		return nil, errs.err()
	}
	d.File, d.Unknown = name, unknown
	d.compile(&errs)
	d.validate(&errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Bounds of the group path regexes. A real dispatcher config has a handful
// (OpenShift CI's has 3, of at most 46 bytes); every regex is matched
// against every job file at each load and each plan, so their number and
// size bound what a proposed config can cost.
const (
	// MaxGroupPaths bounds the path regexes of all groups together.
	MaxGroupPaths = 200
	// MaxGroupPathBytes bounds one path regex.
	MaxGroupPathBytes = 512
	// MaxGroupPathInsts bounds the compiled size (instructions of the
	// regexp program) of all path regexes together: it bounds the cost of
	// matching one job file against them all.
	MaxGroupPathInsts = 20000
)

// compile sets every group's PathREs from its Paths, within the bounds.
func (d *DispatcherConfig) compile(errs *fieldErrors) {
	total, insts := 0, 0
	for _, cluster := range sortedKeys(d.Groups) {
		total += len(d.Groups[cluster].Paths)
	}
	if total > MaxGroupPaths {
		errs.add("groups", "%d path regexes, more than the %d a dispatcher config may hold: list job names, or match many files with one regex", total, MaxGroupPaths)
		return
	}
	for _, cluster := range sortedKeys(d.Groups) {
		g := d.Groups[cluster]
		g.PathREs = make([]*regexp.Regexp, 0, len(g.Paths))
		for i, p := range g.Paths {
			at := index(key("groups", cluster)+".paths", i)
			if len(p) > MaxGroupPathBytes {
				errs.add(at, "path regex of %d bytes, more than the %d one may have", len(p), MaxGroupPathBytes)
				continue
			}
			re, err := regexp.Compile(p)
			if err != nil {
				errs.add(at, "invalid regex %q: %v", p, err)
				continue
			}
			if insts += progSize(p); insts > MaxGroupPathInsts {
				errs.add(at, "path regex %q: the path regexes compile to more than %d instructions together: simplify them (fewer repetitions and alternatives)", p, MaxGroupPathInsts)
				return
			}
			g.PathREs = append(g.PathREs, re)
		}
		d.Groups[cluster] = g
	}
}

// progSize is the number of instructions p compiles to; p compiles.
func progSize(p string) int {
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return 0
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0
	}
	return len(prog.Inst)
}

// validate checks the rules that need only the dispatcher config itself.
func (d *DispatcherConfig) validate(errs *fieldErrors) {
	if d.Default == "" {
		errs.add("default", "required")
	}
	d.validateGroups(errs)
	checkNames(errs, "kvm", d.KVM)
	checkNames(errs, "noBuilds", d.NoBuilds)
	checkNames(errs, "manualClusters", d.ManualClusters)
	d.validateBuildFarm(errs)
}

// validateGroups rejects empty cluster names, a job listed twice and a path
// regex listed twice, in one group or across groups.
func (d *DispatcherConfig) validateGroups(errs *fieldErrors) {
	jobAt := map[string]string{}
	pathAt := map[string]string{}
	for _, cluster := range sortedKeys(d.Groups) {
		g := d.Groups[cluster]
		field := key("groups", cluster)
		if cluster == "" {
			errs.add(field, "empty cluster name")
		}
		for i, job := range g.Jobs {
			at := index(field+".jobs", i)
			switch prev, dup := jobAt[job]; {
			case job == "":
				errs.add(at, "empty job name")
			case dup:
				errs.add(at, "job %q listed twice (also at %s)", job, prev)
			default:
				jobAt[job] = at
			}
		}
		for i, p := range g.Paths {
			at := index(field+".paths", i)
			if prev, dup := pathAt[p]; dup {
				errs.add(at, "path regex %q listed twice (also at %s)", p, prev)
				continue
			}
			pathAt[p] = at
		}
	}
}

// validateBuildFarm rejects empty provider and cluster names and a file
// listed under two clusters.
func (d *DispatcherConfig) validateBuildFarm(errs *fieldErrors) {
	fileAt := map[string]string{}
	for _, provider := range sortedKeys(d.BuildFarm) {
		pfield := key("buildFarm", provider)
		if provider == "" {
			errs.add(pfield, "empty provider name")
		}
		clusters := d.BuildFarm[provider]
		for _, cluster := range sortedKeys(clusters) {
			cfield := key(pfield, cluster)
			if cluster == "" {
				errs.add(cfield, "empty cluster name")
			}
			bf := clusters[cluster]
			if bf == nil {
				continue
			}
			for i, f := range bf.Filenames {
				at := index(cfield+".filenames", i)
				if prev, dup := fileAt[f]; dup {
					errs.add(at, "file %q listed twice (also at %s)", f, prev)
					continue
				}
				fileAt[f] = at
			}
		}
	}
}

// checkNames rejects empty and duplicate cluster names in a list.
func checkNames(errs *fieldErrors, field string, names []string) {
	seen := map[string]int{}
	for i, n := range names {
		at := index(field, i)
		if n == "" {
			errs.add(at, "empty cluster name")
			continue
		}
		if prev, dup := seen[n]; dup {
			errs.add(at, "cluster %q listed twice (also at %s)", n, index(field, prev))
			continue
		}
		seen[n] = i
	}
}
