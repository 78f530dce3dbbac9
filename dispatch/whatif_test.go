package dispatch

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	repoClusters   = "core-services/sanitize-prow-jobs/_clusters.yaml"
	repoDispatcher = "core-services/sanitize-prow-jobs/_config.yaml"
)

// TestWhatIf: a proposed config gives the moves, flows, loads and new
// unplaceable jobs a dispatch would give, bounded, and changes nothing; an
// invalid one gives every validation error naming the repository file and
// the field.
func TestWhatIf(t *testing.T) {
	blockBuild03 := "aws:\n- name: build01\n  capabilities: [arm64]\n- name: build03\n  capacity: 50\n  blocked: true\ngcp:\n- name: build02\n  capabilities: [kvm]\n- name: build04\n  blocked: true\n"
	blockBuild01 := "aws:\n- name: build01\n  capabilities: [arm64]\n  blocked: true\n- name: build03\n  capacity: 50\ngcp:\n- name: build02\n  capabilities: [kvm]\n- name: build04\n  blocked: true\n"
	for name, tc := range map[string]struct {
		req             WhatIfRequest
		wantProblems    []string // each a substring of one problem, in order
		wantNoMoves     bool
		offCluster      string // no job may stay or go there
		maxListed       int
		wantUnplaceable string
	}{
		"nothing proposed moves nothing": {req: WhatIfRequest{}, wantNoMoves: true},
		"a blocked cluster's jobs move": {
			req:        WhatIfRequest{ClusterConfig: []byte(blockBuild03), ClusterConfigPath: repoClusters},
			offCluster: "build03",
		},
		"the lists are bounded, the totals are not": {
			req:        WhatIfRequest{ClusterConfig: []byte(blockBuild03), ClusterConfigPath: repoClusters, MaxMoves: 1},
			offCluster: "build03", maxListed: 1,
		},
		"blocking the last arm64 cluster makes the arm64 job unplaceable": {
			req:             WhatIfRequest{ClusterConfig: []byte(blockBuild01), ClusterConfigPath: repoClusters},
			wantUnplaceable: "pull-ci-org-repo-main-e2e-arm64",
		},
		"capacity 0": {
			req:          WhatIfRequest{ClusterConfig: []byte("aws:\n- name: build01\n  capacity: 0\n"), ClusterConfigPath: repoClusters},
			wantProblems: []string{"cluster config " + repoClusters + ": aws[0].capacity: cluster \"build01\": capacity 0 not in 1..100"},
		},
		"a job listed twice in groups": {
			req: WhatIfRequest{
				DispatcherConfig:     []byte("default: build01\ngroups:\n  build03:\n    jobs: [a, a]\n"),
				DispatcherConfigPath: repoDispatcher,
			},
			wantProblems: []string{"dispatcher config " + repoDispatcher + `: groups["build03"].jobs[1]: job "a" listed twice`},
		},
		"both files invalid: every error": {
			req: WhatIfRequest{
				DispatcherConfig: []byte("default: build01\nkvm: 1\n"), DispatcherConfigPath: repoDispatcher,
				ClusterConfig: []byte("aws:\n- name: build01\n  capacity: 101\n- name: build01\n"), ClusterConfigPath: repoClusters,
			},
			wantProblems: []string{repoDispatcher + `: kvm: 1 is a number, want []string`, repoClusters + ": aws[0].capacity", repoClusters + `: aws[1].name: cluster "build01" listed twice`},
		},
		"a config that names an unknown cluster": {
			req:          WhatIfRequest{DispatcherConfig: []byte("default: build99\n"), DispatcherConfigPath: repoDispatcher},
			wantProblems: []string{repoDispatcher + " (with cluster config "},
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			d := e.newDispatcher(e.options())
			e.dispatch(d)
			before := d.cache.Snapshot()
			w, err := d.WhatIf(context.Background(), tc.req)
			if !reflect.DeepEqual(d.cache.Snapshot(), before) {
				t.Error("WhatIf changed the table in force")
			}
			if tc.wantProblems != nil {
				var ce *ConfigError
				if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v, want a *ConfigError wrapping ErrInvalid", err)
				}
				if len(ce.Problems) < len(tc.wantProblems) {
					t.Fatalf("problems %q, want at least %d", ce.Problems, len(tc.wantProblems))
				}
				for _, want := range tc.wantProblems {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("problems %q lack %q", ce.Problems, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("WhatIf: %v", err)
			}
			if len(w.Clusters) == 0 {
				t.Error("no cluster loads")
			}
			if tc.wantNoMoves {
				if w.MovedJobs != 0 || len(w.Moves) != 0 || w.UnplaceableJobs != 0 {
					t.Errorf("moved %d (%v), %d unplaceable; want nothing", w.MovedJobs, w.Moves, w.UnplaceableJobs)
				}
				return
			}
			if w.MovedJobs == 0 && w.UnplaceableJobs == 0 {
				t.Fatal("nothing moves")
			}
			sum := func(m map[string]Flow) (n int) {
				for _, f := range m {
					n += f.Jobs
				}
				return n
			}
			if sum(w.To) != w.MovedJobs || sum(w.From) != w.MovedJobs {
				t.Errorf("flows to %v, from %v do not sum to %d moves", w.To, w.From, w.MovedJobs)
			}
			if tc.offCluster != "" {
				var onBefore int
				for _, a := range before.Assignments {
					if a.Cluster == tc.offCluster {
						onBefore++
					}
				}
				if _, ok := w.To[tc.offCluster]; ok || w.From[tc.offCluster].Jobs != onBefore || onBefore == 0 {
					t.Errorf("flows to %v from %v; want all %d jobs off %s", w.To, w.From, onBefore, tc.offCluster)
				}
				for _, c := range w.Clusters {
					if c.Name == tc.offCluster && (!c.Blocked || c.Jobs != 0) {
						t.Errorf("load after of %s: %+v, want blocked and empty", c.Name, c)
					}
				}
			}
			if tc.maxListed > 0 && (len(w.Moves) != tc.maxListed || w.MovedJobs <= tc.maxListed) {
				t.Errorf("listed %d of %d moves, want %d of more", len(w.Moves), w.MovedJobs, tc.maxListed)
			}
			if tc.maxListed == 0 && len(w.Moves) != w.MovedJobs {
				t.Errorf("listed %d of %d moves", len(w.Moves), w.MovedJobs)
			}
			if tc.wantUnplaceable != "" {
				if w.UnplaceableJobs != 1 || len(w.Unplaceable) != 1 || w.Unplaceable[0].Job != tc.wantUnplaceable {
					t.Errorf("unplaceable %d %+v, want %s", w.UnplaceableJobs, w.Unplaceable, tc.wantUnplaceable)
				}
			}
		})
	}
}

func TestWhatIfBeforeTheFirstTable(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	if _, err := d.WhatIf(context.Background(), WhatIfRequest{}); !errors.Is(err, ErrNotReady) {
		t.Errorf("error %v, want ErrNotReady", err)
	}
}

const (
	repoJobs     = "ci-operator/jobs"
	presubmits   = "org/repo/org-repo-main-presubmits.yaml"
	newJobFile   = "org/other/org-other-main-presubmits.yaml"
	periodicFile = "periodics/periodics.yaml"
)

// otherPresubmits is a new job file: a balanced job, an arm64 job, a job
// pinned to build02 and a jenkins job.
const otherPresubmits = `presubmits:
  org/other:
  - name: pull-ci-org-other-main-unit
    always_run: true
  - name: pull-ci-org-other-main-e2e-arm64
    labels:
      capability/arm64: arm64
  - name: pull-ci-org-other-main-e2e-gcp
    labels:
      ci-operator.openshift.io/cluster: build02
  - name: pull-ci-org-other-main-legacy
    agent: jenkins
`

// TestWhatIfJobConfigFiles: proposed job config files add and remove jobs,
// each with its cluster, bounded with full totals, changing nothing; files
// that do not load give a ConfigError naming the repository path; paths
// outside the job config dir are refused.
func TestWhatIfJobConfigFiles(t *testing.T) {
	type change struct{ job, cluster, reason string }
	for name, tc := range map[string]struct {
		files        map[string][]byte
		maxMoves     int
		cluster      []byte // a proposed cluster config, if any
		wantAdded    []change
		addedJobs    int // when the list is bounded
		wantRemoved  []string
		wantProblems []string // each a substring of the error, in order
		wantRefused  string
	}{
		"a new job file adds its jobs with their clusters": {
			files: map[string][]byte{newJobFile: []byte(otherPresubmits)},
			wantAdded: []change{
				{"pull-ci-org-other-main-e2e-arm64", "build01", "capability"},
				{"pull-ci-org-other-main-e2e-gcp", "build02", "pinned"},
				{"pull-ci-org-other-main-legacy", "", "agent"},
				{"pull-ci-org-other-main-unit", "", "balanced"}, // any balanced cluster
			},
		},
		"the added list is bounded, the total is not": {
			files: map[string][]byte{newJobFile: []byte(otherPresubmits)}, maxMoves: 1,
			wantAdded: []change{{"pull-ci-org-other-main-e2e-arm64", "build01", "capability"}}, addedJobs: 4,
		},
		"a deleted file removes its jobs": {
			files:       map[string][]byte{presubmits: nil},
			wantRemoved: []string{"pull-ci-org-repo-main-e2e-arm64", "pull-ci-org-repo-main-e2e-gcp", "pull-ci-org-repo-main-lint", "pull-ci-org-repo-main-unit"},
		},
		"a job moved to another file is neither added nor removed": {
			files: map[string][]byte{
				presubmits: []byte("presubmits:\n  org/repo:\n  - name: pull-ci-org-repo-main-unit\n  - name: pull-ci-org-repo-main-lint\n  - name: pull-ci-org-repo-main-e2e-gcp\n    labels:\n      ci-operator.openshift.io/cluster: build02\n"),
				"org/repo/org-repo-arm64-presubmits.yaml": []byte("presubmits:\n  org/repo:\n  - name: pull-ci-org-repo-main-e2e-arm64\n    labels:\n      capability/arm64: arm64\n"),
			},
		},
		"new and deleted files with a cluster config": {
			files:   map[string][]byte{newJobFile: []byte(otherPresubmits), presubmits: nil},
			cluster: []byte("aws:\n- name: build01\n  capabilities: [arm64]\n- name: build03\n  capacity: 50\ngcp:\n- name: build02\n  capabilities: [kvm]\n"),
			wantAdded: []change{
				{"pull-ci-org-other-main-e2e-arm64", "build01", "capability"},
				{"pull-ci-org-other-main-e2e-gcp", "build02", "pinned"},
				{"pull-ci-org-other-main-legacy", "", "agent"},
				{"pull-ci-org-other-main-unit", "", "balanced"},
			},
			wantRemoved: []string{"pull-ci-org-repo-main-e2e-arm64", "pull-ci-org-repo-main-e2e-gcp", "pull-ci-org-repo-main-lint", "pull-ci-org-repo-main-unit"},
		},
		"a job defined in another file": {
			files:        map[string][]byte{"org/dup/org-dup-periodics.yaml": []byte("periodics:\n- name: periodic-nightly-1\n  interval: 1h\n")},
			wantProblems: []string{"job config " + repoJobs + `: job "periodic-nightly-1" defined twice: periodic org/dup/org-dup-periodics.yaml and periodic ` + periodicFile},
		},
		"malformed YAML": {
			files:        map[string][]byte{presubmits: []byte("presubmits: [")},
			wantProblems: []string{"job config " + repoJobs + ": error unmarshalling " + repoJobs + "/" + presubmits + ": "},
		},
		"every error of every file and config": {
			files:        map[string][]byte{presubmits: []byte("presubmits: ["), newJobFile: []byte("periodics: {")},
			cluster:      []byte("aws:\n- name: build01\n  capacity: 0\n"),
			wantProblems: []string{repoClusters + ": aws[0].capacity", repoJobs + "/" + newJobFile, repoJobs + "/" + presubmits},
		},
		"a base name another file has": {
			files:        map[string][]byte{"other/periodics.yaml": []byte("periodics:\n- name: periodic-other\n")},
			wantProblems: []string{"job config " + repoJobs + ": " + repoJobs + "/other/periodics.yaml: duplicated basename is not allowed: periodics.yaml (" + repoJobs + "/" + periodicFile + " has it)"},
		},
		"deleting every job file": {
			files:        map[string][]byte{presubmits: nil, periodicFile: nil, "org/repo/org-repo-main-postsubmits.yaml": nil},
			wantProblems: []string{"job config " + repoJobs + ": no jobs"},
		},
		"a path escaping the dir": {files: map[string][]byte{"../x.yaml": {}}, wantRefused: "escapes the job config dir"},
		"an absolute path":        {files: map[string][]byte{"/etc/x.yaml": {}}, wantRefused: "not a path relative"},
		"an unclean path":         {files: map[string][]byte{"org/../../x.yaml": {}}, wantRefused: "not a clean path"},
		"not a YAML file":         {files: map[string][]byte{"org/OWNERS": {}}, wantRefused: "not a .yaml or .yml file"},
		"a file the loader skips": {files: map[string][]byte{"..data/x.yaml": {}}, wantRefused: "named ..*"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			d := e.newDispatcher(e.options())
			e.dispatch(d)
			before := d.cache.Snapshot()
			w, err := d.WhatIf(context.Background(), WhatIfRequest{
				JobConfigFiles: tc.files, JobConfigDirPath: repoJobs, MaxMoves: tc.maxMoves,
				ClusterConfig: tc.cluster, ClusterConfigPath: repoClusters,
			})
			if !reflect.DeepEqual(d.cache.Snapshot(), before) {
				t.Error("WhatIf changed the table in force")
			}
			if tc.wantRefused != "" {
				var ce *ConfigError
				if !errors.Is(err, ErrInvalid) || errors.As(err, &ce) || !strings.Contains(err.Error(), tc.wantRefused) {
					t.Fatalf("error %v, want ErrInvalid (not a ConfigError) saying %q", err, tc.wantRefused)
				}
				return
			}
			if tc.wantProblems != nil {
				var ce *ConfigError
				if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v, want a *ConfigError wrapping ErrInvalid", err)
				}
				joined := strings.Join(ce.Problems, "\n")
				at := 0
				for _, want := range tc.wantProblems {
					i := strings.Index(joined[at:], want)
					if i < 0 {
						t.Fatalf("problems %q lack %q (in order)", ce.Problems, want)
					}
					at += i + len(want)
				}
				return
			}
			if err != nil {
				t.Fatalf("WhatIf: %v", err)
			}
			byJob := before.ByJob()
			var got []change
			addedTo := map[string]Flow{}
			for _, a := range w.Added {
				if _, known := byJob[a.Job]; known {
					t.Errorf("added %s is in the table in force", a.Job)
				}
				c := change{a.Job, a.Cluster, string(a.Reason)}
				if a.Reason == "balanced" {
					if a.Cluster == "" || a.Cluster == "build04" {
						t.Errorf("added %s balanced onto %q", a.Job, a.Cluster)
					}
					c.cluster = ""
				}
				if a.File != newJobFile {
					t.Errorf("added %s of file %q, want %s", a.Job, a.File, newJobFile)
				}
				got = append(got, c)
				if a.Cluster != "" {
					addFlow(addedTo, a.Cluster, a.Demand)
				}
			}
			if !reflect.DeepEqual(got, tc.wantAdded) {
				t.Errorf("added %+v, want %+v", got, tc.wantAdded)
			}
			wantTotal := tc.addedJobs
			if wantTotal == 0 {
				wantTotal = len(tc.wantAdded)
				if !reflect.DeepEqual(w.AddedTo, addedTo) {
					t.Errorf("added to %v, want %v", w.AddedTo, addedTo)
				}
			}
			if w.AddedJobs != wantTotal {
				t.Errorf("%d jobs added, want %d", w.AddedJobs, wantTotal)
			}
			var removed []string
			removedFrom := map[string]Flow{}
			for _, r := range w.Removed {
				removed = append(removed, r.Job)
				row, ok := byJob[r.Job]
				if !ok || row.Cluster != r.Cluster || row.Reason != r.Reason || r.File != presubmits {
					t.Errorf("removed %+v, want its row in force %+v of %s", r, row, presubmits)
				}
				addFlow(removedFrom, r.Cluster, r.Demand)
			}
			if !reflect.DeepEqual(removed, tc.wantRemoved) || w.RemovedJobs != len(tc.wantRemoved) {
				t.Errorf("removed %d %v, want %v", w.RemovedJobs, removed, tc.wantRemoved)
			}
			if !reflect.DeepEqual(w.RemovedFrom, removedFrom) {
				t.Errorf("removed from %v, want %v", w.RemovedFrom, removedFrom)
			}
			for _, m := range w.Moves {
				if _, known := byJob[m.Job]; !known {
					t.Errorf("move of %s, which has no row in force", m.Job)
				}
			}
			if tc.cluster == nil && w.MovedJobs != 0 {
				t.Errorf("%d moves, want none: %+v", w.MovedJobs, w.Moves)
			}
		})
	}
}
