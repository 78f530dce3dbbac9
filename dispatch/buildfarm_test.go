package dispatch

import (
	"github.com/google/go-cmp/cmp"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"path/filepath"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
)

func TestBuildFarmConfig(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	out, err := d.BuildFarmConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ParseDispatcher("regenerated.yaml", out)
	if err != nil {
		t.Fatalf("the regenerated config does not load: %v\n%s", err, out)
	}
	// Every file of a balanced job is in the section, under its job's cluster.
	files := map[string]string{}
	for _, clusters := range cfg.BuildFarm {
		for cluster, bf := range clusters {
			for _, f := range bf.Filenames {
				files[f] = cluster
			}
		}
	}
	unit := mustLookup(t, d, "pull-ci-org-repo-main-unit")
	if got := files["org-repo-main-presubmits.yaml"]; got != unit.Cluster {
		t.Errorf("buildFarm puts org-repo-main-presubmits.yaml on %q, the table has its balanced jobs on %s\n%s", got, unit.Cluster, out)
	}
	// The rest of the config is the one in force.
	if cfg.Default != "build01" || len(cfg.Groups["build03"].Jobs) != 1 {
		t.Errorf("regenerated config lost fields:\n%s", out)
	}
	// A config that changed on disk but was not reloaded is not what is rendered.
	writeFile(t, e.dispatcherConfig, "default: build03\n")
	if again, _ := d.BuildFarmConfig(); string(again) != string(out) {
		t.Errorf("rendered a config that is not in force:\n%s", again)
	}
}

func TestBuildFarmFromTable(t *testing.T) {
	clusters, err := config.LoadClusters(filepath.Join("config", "testdata", "clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		origin    = "openshift/origin/openshift-origin-main-presubmits.yaml"
		installer = "openshift/installer/openshift-installer-main-presubmits.yaml"
		periodics = "openshift/release/openshift-release-master-periodics.yaml"
		kubevirt  = "kubevirt/kubevirt/kubevirt-kubevirt-main-periodics.yaml"
		pinned    = "openshift/ci-tools/openshift-ci-tools-master-presubmits.yaml"
	)
	tbl := &table.Table{Assignments: []table.Assignment{
		// origin splits 2:1 between build03 and build01: build03 wins.
		{Job: "o1", File: origin, Cluster: "build01", Reason: table.ReasonBalanced},
		{Job: "o2", File: origin, Cluster: "build03", Reason: table.ReasonBalanced},
		{Job: "o3", File: origin, Cluster: "build03", Reason: table.ReasonCapability},
		// installer ties 1:1 between build05 and build01: the lower name wins.
		{Job: "i1", File: installer, Cluster: "build05", Reason: table.ReasonBalanced},
		{Job: "i2", File: installer, Cluster: "build01", Reason: table.ReasonCloud},
		// periodics: the group placement does not count, the no-builds one does.
		{Job: "p1", File: periodics, Cluster: "build01", Reason: table.ReasonGroupPath},
		{Job: "p2", File: periodics, Cluster: "build01", Reason: table.ReasonGroupJob},
		{Job: "p3", File: periodics, Cluster: "build02", Reason: table.ReasonNoBuilds},
		{Job: "k1", File: kubevirt, Cluster: "build02", Reason: table.ReasonKVM},
		// pins, overrides, defaults, manual clusters and file-less jobs are left out.
		{Job: "c1", File: pinned, Cluster: "build01", Reason: table.ReasonPinned},
		{Job: "c2", File: pinned, Cluster: "build01", Reason: table.ReasonOverride},
		{Job: "c3", File: pinned, Cluster: "build01", Reason: table.ReasonDefault},
		{Job: "m1", File: "manual/x-periodics.yaml", Cluster: "hive", Reason: table.ReasonBalanced},
		{Job: "adhoc", Cluster: "build01", Reason: table.ReasonBalanced},
	}}
	// build03 and build05 were disabled in the section being replaced: they
	// stay so, build05 without files; a cluster gone from the inventory is dropped.
	previous := map[string]map[string]*config.BuildFarmCluster{
		"aws": {"build03": {Disabled: true, Filenames: []string{"old.yaml"}}, "build01": {Filenames: []string{"old.yaml"}}},
		"gcp": {"build05": {Disabled: true}, "gone": {Disabled: true}},
	}
	got := BuildFarmFromTable(clusters, tbl, previous)
	want := map[string]map[string]*config.BuildFarmCluster{
		"aws": {
			"build01": {Filenames: []string{"openshift-installer-main-presubmits.yaml"}},
			"build03": {Filenames: []string{"openshift-origin-main-presubmits.yaml"}, Disabled: true},
			"build05": {Disabled: true},
		},
		"gcp": {
			"build02": {Filenames: []string{"kubevirt-kubevirt-main-periodics.yaml", "openshift-release-master-periodics.yaml"}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("buildFarm (-want +got):\n%s", diff)
	}

	// The regenerated section goes into a valid config with deterministic output.
	d, err := config.LoadDispatcher(filepath.Join("config", "testdata", "dispatcher", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d.BuildFarm = got
	first, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	reversed := &table.Table{}
	for i := len(tbl.Assignments) - 1; i >= 0; i-- {
		reversed.Assignments = append(reversed.Assignments, tbl.Assignments[i])
	}
	d.BuildFarm = BuildFarmFromTable(clusters, reversed, previous)
	second, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(second) {
		t.Errorf("output depends on row order:\n%s\n---\n%s", first, second)
	}
	again, err := config.ParseDispatcher("regenerated.yaml", first)
	if err != nil {
		t.Fatalf("regenerated config does not load: %v\n%s", err, first)
	}
	if err := config.Validate(again, clusters); err != nil {
		t.Errorf("regenerated config does not validate: %v", err)
	}
}
