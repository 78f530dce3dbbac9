package config

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func TestBuildFarmFromTable(t *testing.T) {
	clusters, err := LoadClusters(filepath.Join("testdata", "clusters.yaml"))
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
	previous := map[string]map[string]*BuildFarmCluster{
		"aws": {"build03": {Disabled: true, Filenames: []string{"old.yaml"}}, "build01": {Filenames: []string{"old.yaml"}}},
		"gcp": {"build05": {Disabled: true}, "gone": {Disabled: true}},
	}
	got := BuildFarmFromTable(clusters, tbl, previous)
	want := map[string]map[string]*BuildFarmCluster{
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
	d, err := LoadDispatcher(filepath.Join("testdata", "dispatcher", "good.yaml"))
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
	again, err := ParseDispatcher("regenerated.yaml", first)
	if err != nil {
		t.Fatalf("regenerated config does not load: %v\n%s", err, first)
	}
	if err := Validate(again, clusters); err != nil {
		t.Errorf("regenerated config does not validate: %v", err)
	}
}
