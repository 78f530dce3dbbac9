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
				DispatcherConfig: []byte("default: build01\nbogus: 1\n"), DispatcherConfigPath: repoDispatcher,
				ClusterConfig: []byte("aws:\n- name: build01\n  capacity: 101\n- name: build01\n"), ClusterConfigPath: repoClusters,
			},
			wantProblems: []string{repoDispatcher + `: error unmarshaling JSON`, repoClusters + ": aws[0].capacity", repoClusters + `: aws[1].name: cluster "build01" listed twice`},
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
