package config

import (
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

func TestServiceClusters(t *testing.T) {
	clusters, err := LoadClusters(filepath.Join("testdata", "clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDispatcher("svc.yaml", []byte(`
default: build01
sshBastion: app.ci
kvm: [build02, kvm01]
noBuilds: [Build03]
manualClusters: [hive]
groups:
  app.ci:
    jobs: [periodic-openshift-release-master-app-ci-apply]
  hive:
    jobs: [periodic-hive-cleanup]
  build01:
    jobs: [periodic-build01-upgrade]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []ServiceCluster{
		{Name: "app.ci", NamedBy: []string{`groups["app.ci"]`, "sshBastion"}},
		{Name: "kvm01", NamedBy: []string{"kvm[1]"}},
	}
	// build02 and build01 are build clusters, hive is manual, and Build03 is
	// a case variant of build03 (Validate refuses it): none is a service cluster.
	if got := ServiceClusters(d, clusters); !reflect.DeepEqual(got, want) {
		t.Errorf("ServiceClusters = %+v, want %+v", got, want)
	}
	assertErrors(t, Validate(d, clusters), []string{
		`dispatcher config svc.yaml (with cluster config testdata/clusters.yaml): noBuilds[0]: cluster "Build03" differs only in case from "build03"`,
	})
	if got := ServiceClusters(nil, clusters); got != nil {
		t.Errorf("ServiceClusters(nil) = %v", got)
	}
}

func TestMatchPath(t *testing.T) {
	for _, tc := range []struct {
		pattern, file string
		want          bool
	}{
		{`[^-]infra-periodics.yaml`, "infra-periodics.yaml", true}, // top level: matched as /infra-periodics.yaml
		{`[^-]infra-periodics.yaml`, "openshift/release/infra-periodics.yaml", true},
		{`[^-]infra-periodics.yaml`, "openshift/release/openshift-release-infra-periodics.yaml", false},
		{`infra-image-mirroring.yaml`, "infra-image-mirroring.yaml", true},
		{`^openshift/hive/`, "openshift/hive/openshift-hive-master-presubmits.yaml", true},
		{`^openshift/hive/`, "x/openshift/hive/a.yaml", false},
	} {
		if got := MatchPath(regexp.MustCompile(tc.pattern), tc.file); got != tc.want {
			t.Errorf("MatchPath(%q, %q) = %v, want %v", tc.pattern, tc.file, got, tc.want)
		}
	}
}
