package dispatch

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// releaseFixture is shaped like openshift/release's real dispatcher inputs
// (see its gen.go): _config.yaml with every key the real file has, the real
// _clusters.yaml, and a job config tree.
const releaseFixture = "testdata/openshift-release"

// releaseDispatcher dispatches the fixture, with the dispatcher config
// changed by mutate (nil: as it is), and returns the dispatcher.
func releaseDispatcher(t *testing.T, mutate func(*config.DispatcherConfig)) (*Dispatcher, *engine.Report) {
	t.Helper()
	cfgPath := filepath.Join(releaseFixture, "_config.yaml")
	if mutate != nil {
		cfg, err := config.LoadDispatcher(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		mutate(cfg)
		data, err := cfg.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		cfgPath = filepath.Join(t.TempDir(), "_config.yaml")
		writeFile(t, cfgPath, string(data))
	}
	d, err := New(context.Background(), Options{
		DispatcherConfigPath: cfgPath, ClusterConfigPath: filepath.Join(releaseFixture, "_clusters.yaml"),
		JobConfigDir: filepath.Join(releaseFixture, "jobs"), Logger: testLogger(t),
		Engine: engine.Options{ClusterJobs: compiled(t, engine.DefaultClusterJobPatterns)},
	}, state.Memory{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := d.Dispatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d, rep
}

// TestOpenShiftReleaseConfig: the real configs' shape loads, and app.ci, a
// cluster only groups name, runs exactly the jobs that name it.
func TestOpenShiftReleaseConfig(t *testing.T) {
	d, rep := releaseDispatcher(t, nil)
	if rep.Jobs < 300 {
		t.Fatalf("%d jobs dispatched, want the fixture's 300+", rep.Jobs)
	}
	roles := map[string]string{}
	for _, c := range d.Clusters() {
		roles[c.Name] = c.Role
	}
	for c, want := range map[string]string{"app.ci": config.RoleService, "vsphere02": config.RoleService, "build01": config.RoleBuild, "build04": config.RoleBuild} {
		if roles[c] != want {
			t.Errorf("cluster %s has role %q, want %q", c, roles[c], want)
		}
	}
	for job, want := range map[string]struct {
		cluster string
		reason  table.Reason
	}{
		"periodic-openshift-release-master-build04-apply": {"app.ci", table.ReasonGroupJob},  // a cluster job's name, but the group lists it
		"pull-ci-openshift-release-master-build01-dry":    {"app.ci", table.ReasonGroupJob},  //
		"periodic-prow-auto-config-brancher":              {"app.ci", table.ReasonGroupPath}, // infra-periodics.yaml: '[^-]infra-periodics.yaml'
		"periodic-image-mirroring-openshift":              {"app.ci", table.ReasonGroupPath}, // infra-image-mirroring.yaml
		"periodic-openshift-azure-cleanup":                {"build01", table.ReasonGroupPath},
		"periodic-build01-upgrade":                        {"build01", table.ReasonClusterJob},
		"periodic-build04-upgrade":                        {"build04", table.ReasonClusterJob}, // blocked, kept
		"release-openshift-origin-installer-launch-metal": {"build05", table.ReasonGroupJob},
		"pull-ci-openshift-ci-tools-main-e2e-vsphere":     {"vsphere02", table.ReasonPinned}, // a pin no config names: a service cluster
	} {
		a := mustLookup(t, d, job)
		if a.Cluster != want.cluster || a.Reason != want.reason {
			t.Errorf("%s on %s (%s: %s), want %s (%s)", job, a.Cluster, a.Reason, a.Detail, want.cluster, want.reason)
		}
	}
	// openshift-release-infra-periodics.yaml has a '-' before infra-periodics: not app.ci's.
	if a := mustLookup(t, d, "periodic-openshift-release-fast-forward"); a.Cluster == "app.ci" {
		t.Errorf("periodic-openshift-release-fast-forward on app.ci: %s", a.Detail)
	}
	for _, a := range d.cache.Snapshot().Assignments {
		if (a.Cluster == "app.ci" || a.Cluster == "vsphere02") && a.Reason.Balanced() {
			t.Errorf("%s balanced onto service cluster %s", a.Job, a.Cluster)
		}
	}
}

// TestEveryKeyOfTheRealConfigIsUnderstood changes each top-level key of the
// fixture's _config.yaml, one at a time, and checks that the placement
// changes as the key means: a key that were merely tolerated would change
// nothing. Every key of the file must have a case.
func TestEveryKeyOfTheRealConfigIsUnderstood(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(releaseFixture, "_config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	const (
		metal    = "pull-ci-openshift-installer-main-e2e-metal-ipi" // cloud equinix-ocp-metal
		gcp      = "pull-ci-openshift-origin-main-e2e-gcp"          // cloud gcp
		kvm      = "pull-ci-openshift-oc-main-e2e-kubevirt"         // kvm label
		bastion  = "pull-ci-redhat-developer-odo-main-e2e-intranet" // ssh-bastion label, intranet capability
		infra    = "periodic-prow-auto-config-brancher"             // infra-periodics.yaml
		applyJob = "periodic-openshift-release-master-build01-apply"
	)
	providerOf := func(d *Dispatcher, cluster string) string {
		for _, c := range d.Clusters() {
			if c.Name == cluster {
				return c.Provider
			}
		}
		return ""
	}
	cases := map[string]struct {
		mutate func(*config.DispatcherConfig)
		check  func(t *testing.T, base, changed *Dispatcher, baseRep, changedRep *engine.Report)
	}{
		"buildFarm": { // the previous assignment: moves are counted against it
			mutate: func(c *config.DispatcherConfig) { c.BuildFarm = nil },
			check: func(t *testing.T, _, _ *Dispatcher, baseRep, changedRep *engine.Report) {
				if len(baseRep.Moves) == 0 || len(changedRep.Moves) != 0 {
					t.Errorf("moves with buildFarm %d, without %d; want some, then none", len(baseRep.Moves), len(changedRep.Moves))
				}
			},
		},
		"cloudMapping": {
			mutate: func(c *config.DispatcherConfig) { c.CloudMapping = nil },
			check: func(t *testing.T, base, changed *Dispatcher, _, _ *engine.Report) {
				if a := mustLookup(t, base, metal); a.Reason != table.ReasonCloud || providerOf(base, a.Cluster) != "aws" {
					t.Errorf("with cloudMapping, %s: %+v; want cloud, on aws", metal, a)
				}
				if a := mustLookup(t, changed, metal); a.Reason == table.ReasonCloud {
					t.Errorf("without cloudMapping, %s still placed by cloud: %s", metal, a.Detail)
				}
			},
		},
		"default": {
			mutate: func(c *config.DispatcherConfig) { c.Default = "build03" },
			check: func(t *testing.T, base, changed *Dispatcher, _, _ *engine.Report) {
				for d, want := range map[*Dispatcher]string{base: "build01", changed: "build03"} {
					x, err := d.Explain(infra)
					if err != nil {
						t.Fatal(err)
					}
					if last := x.Steps[len(x.Steps)-1]; last.Rule != table.ReasonDefault || !strings.Contains(last.Detail, "default "+want) {
						t.Errorf("default step %+v, want it to name %s", last, want)
					}
				}
			},
		},
		"determineE2EByJob": {
			mutate: func(c *config.DispatcherConfig) { c.DetermineE2EByJob = false },
			check: func(t *testing.T, base, changed *Dispatcher, _, _ *engine.Report) {
				if a := mustLookup(t, base, gcp); a.Reason != table.ReasonCloud || a.Cluster != "build02" {
					t.Errorf("with determineE2EByJob, %s: %+v; want cloud, build02 (the one usable gcp cluster)", gcp, a)
				}
				if a := mustLookup(t, changed, gcp); a.Reason == table.ReasonCloud {
					t.Errorf("without determineE2EByJob, %s still placed by cloud", gcp)
				}
			},
		},
		"groups": {
			mutate: func(c *config.DispatcherConfig) { delete(c.Groups, "app.ci") },
			check: func(t *testing.T, base, changed *Dispatcher, _, _ *engine.Report) {
				for _, job := range []string{infra, applyJob} {
					if a := mustLookup(t, base, job); a.Cluster != "app.ci" {
						t.Errorf("with group app.ci, %s on %s", job, a.Cluster)
					}
				}
				if a := mustLookup(t, changed, infra); a.Cluster == "app.ci" || !a.Reason.Balanced() {
					t.Errorf("without group app.ci, %s: %+v; want balanced", infra, a)
				}
				if a := mustLookup(t, changed, applyJob); a.Cluster != "build01" || a.Reason != table.ReasonClusterJob {
					t.Errorf("without group app.ci, %s: %+v; want build01 (cluster-job)", applyJob, a)
				}
			},
		},
		"kvm": {
			mutate: func(c *config.DispatcherConfig) { c.KVM = []string{"build03"} },
			check: func(t *testing.T, base, changed *Dispatcher, _, _ *engine.Report) {
				if a := mustLookup(t, base, kvm); a.Cluster != "build02" || a.Reason != table.ReasonKVM {
					t.Errorf("kvm [build02]: %s on %s (%s)", kvm, a.Cluster, a.Reason)
				}
				if a := mustLookup(t, changed, kvm); a.Cluster != "build03" || a.Reason != table.ReasonKVM {
					t.Errorf("kvm [build03]: %s on %s (%s)", kvm, a.Cluster, a.Reason)
				}
			},
		},
		"sshBastion": {
			mutate: func(c *config.DispatcherConfig) { c.SSHBastion = "build05" },
			check: func(t *testing.T, base, changed *Dispatcher, _, _ *engine.Report) {
				if a := mustLookup(t, base, bastion); a.Cluster != "build01" || a.Reason != table.ReasonSSHBastion {
					t.Errorf("sshBastion build01: %s on %s (%s)", bastion, a.Cluster, a.Reason)
				}
				if a := mustLookup(t, changed, bastion); a.Cluster != "build05" || a.Reason != table.ReasonSSHBastion {
					t.Errorf("sshBastion build05: %s on %s (%s)", bastion, a.Cluster, a.Reason)
				}
			},
		},
	}
	for key := range raw {
		if _, ok := cases[key]; !ok {
			t.Errorf("key %q of the real config has no case: show what it changes", key)
		}
	}
	base, baseRep := releaseDispatcher(t, nil)
	for _, key := range slices.Sorted(maps.Keys(cases)) {
		t.Run(key, func(t *testing.T) {
			if _, ok := raw[key]; !ok {
				t.Fatalf("the fixture lacks key %q", key)
			}
			changed, changedRep := releaseDispatcher(t, cases[key].mutate)
			cases[key].check(t, base, changed, baseRep, changedRep)
		})
	}
}

func compiled(t *testing.T, patterns []string) []*regexp.Regexp {
	t.Helper()
	out := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		out[i] = regexp.MustCompile(p)
	}
	return out
}

// TestServiceClusterMarkedBlocked: the only way to mark app.ci blocked is to
// list it in the cluster config, which makes it a build cluster; blocked, it
// runs nothing, and the jobs its group names go where the next rules say,
// each saying why, instead of failing the load or being sent there anyway.
func TestServiceClusterMarkedBlocked(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(releaseFixture, "_clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	clusters := filepath.Join(t.TempDir(), "_clusters.yaml")
	writeFile(t, clusters, string(data)+"service:\n  - name: app.ci\n    blocked: true\n")
	d, err := New(context.Background(), Options{
		DispatcherConfigPath: filepath.Join(releaseFixture, "_config.yaml"), ClusterConfigPath: clusters,
		JobConfigDir: filepath.Join(releaseFixture, "jobs"), Logger: testLogger(t),
		Engine: engine.Options{ClusterJobs: compiled(t, engine.DefaultClusterJobPatterns)},
	}, state.Memory{})
	if err != nil {
		t.Fatalf("a blocked app.ci in the cluster config: %v; want it to load", err)
	}
	if _, err := d.Dispatch(context.Background()); err != nil {
		t.Fatal(err)
	}
	var appCI *engine.ClusterLoad
	for _, c := range d.Clusters() {
		if c.Name == "app.ci" {
			appCI = &c.ClusterLoad
		}
	}
	if appCI == nil || appCI.Role != config.RoleBuild || !appCI.Blocked || appCI.Jobs != 0 {
		t.Fatalf("app.ci: %+v; want role build, blocked, no jobs", appCI)
	}
	const applyJob = "periodic-openshift-release-master-build01-apply" // groups["app.ci"].jobs
	a := mustLookup(t, d, applyJob)
	if a.Cluster == "app.ci" || a.Reason == table.ReasonGroupJob {
		t.Errorf("%s on %s (%s): a blocked group cluster must be skipped", applyJob, a.Cluster, a.Reason)
	}
	x, err := d.Explain(applyJob)
	if err != nil {
		t.Fatal(err)
	}
	said := false
	for _, s := range x.Steps {
		said = said || (s.Rule == table.ReasonGroupJob && strings.Contains(s.Detail, "app.ci is blocked"))
	}
	if !said {
		t.Errorf("explanation of %s does not say its group's cluster is blocked: %+v", applyJob, x.Steps)
	}
}
