package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestLoadDispatcherGood(t *testing.T) {
	path := filepath.Join("testdata", "dispatcher", "good.yaml")
	d, err := LoadDispatcher(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &DispatcherConfig{
		Default:           "build01",
		SSHBastion:        "build01",
		KVM:               []string{"build02"},
		NoBuilds:          []string{"build03"},
		ManualClusters:    []string{"hive", "vsphere02"},
		DetermineE2EByJob: true,
		CloudMapping:      map[string]string{"aws": "aws", "gcp": "gcp"},
		Groups: map[string]Group{
			"build05":   {Jobs: []string{"periodic-ci-openshift-release-master-intranet-check"}, Paths: []string{".*openshift-priv/.*"}},
			"vsphere02": {Paths: []string{`.*-vsphere-.*\.yaml$`, "^openshift/installer/"}},
		},
		BuildFarm: map[string]map[string]*BuildFarmCluster{
			"aws": {
				"build01": {Filenames: []string{"openshift-origin-main-presubmits.yaml", "openshift-origin-main-postsubmits.yaml"}},
				"build03": {Filenames: []string{"openshift-installer-main-presubmits.yaml"}},
			},
			"gcp": {
				"build02": {Filenames: []string{"openshift-release-master-periodics.yaml"}},
				"build04": {Disabled: true},
			},
		},
		File: path,
	}
	if diff := cmp.Diff(want, d, cmpopts.IgnoreFields(Group{}, "PathREs")); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	vs := d.Groups["vsphere02"]
	if len(vs.PathREs) != len(vs.Paths) {
		t.Fatalf("PathREs %d, want %d", len(vs.PathREs), len(vs.Paths))
	}
	for file, match := range map[string]bool{
		"openshift/installer/openshift-installer-main-presubmits.yaml":  true,
		"openshift/origin/openshift-origin-main-vsphere-periodics.yaml": true,
		"openshift/origin/openshift-origin-main-presubmits.yaml":        false,
	} {
		got := vs.PathREs[0].MatchString(file) || vs.PathREs[1].MatchString(file)
		if got != match {
			t.Errorf("group vsphere02 matches %s = %v, want %v", file, got, match)
		}
	}
}

func TestLoadDispatcherErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"no-default.yaml", []string{`dispatcher config testdata/dispatcher/no-default.yaml: default: required`}},
		{"duplicate-job.yaml", []string{
			`dispatcher config testdata/dispatcher/duplicate-job.yaml: groups["build02"].jobs[1]: job "pull-ci-openshift-origin-main-e2e" listed twice (also at groups["build01"].jobs[0])`,
		}},
		{"duplicate-path.yaml", []string{
			`dispatcher config testdata/dispatcher/duplicate-path.yaml: groups["build02"].paths[1]: path regex "^openshift/origin/" listed twice (also at groups["build01"].paths[0])`,
		}},
		{"invalid-regex.yaml", []string{
			`dispatcher config testdata/dispatcher/invalid-regex.yaml: groups["build01"].paths[2]: invalid regex "a(": error parsing regexp`,
		}},
		{"empty-cluster.yaml", []string{
			`dispatcher config testdata/dispatcher/empty-cluster.yaml: groups[""]: empty cluster name`,
			`dispatcher config testdata/dispatcher/empty-cluster.yaml: kvm[0]: empty cluster name`,
			`dispatcher config testdata/dispatcher/empty-cluster.yaml: noBuilds[1]: empty cluster name`,
		}},
		{"duplicate-manual.yaml", []string{
			`dispatcher config testdata/dispatcher/duplicate-manual.yaml: manualClusters[2]: cluster "hive" listed twice (also at manualClusters[0])`,
		}},
		{"empty-provider.yaml", []string{
			`dispatcher config testdata/dispatcher/empty-provider.yaml: buildFarm[""]: empty provider name`,
		}},
		{"duplicate-file.yaml", []string{
			`dispatcher config testdata/dispatcher/duplicate-file.yaml: buildFarm["gcp"]["build02"].filenames[1]: file "openshift-origin-main-presubmits.yaml" listed twice (also at buildFarm["aws"]["build01"].filenames[0])`,
		}},
		{"many-errors.yaml", []string{
			`dispatcher config testdata/dispatcher/many-errors.yaml: groups["build01"].paths[0]: invalid regex "a("`,
			`dispatcher config testdata/dispatcher/many-errors.yaml: default: required`,
			`dispatcher config testdata/dispatcher/many-errors.yaml: manualClusters[1]: cluster "hive" listed twice (also at manualClusters[0])`,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			d, err := LoadDispatcher(filepath.Join("testdata", "dispatcher", tc.file))
			assertErrors(t, err, tc.want)
			if d != nil {
				t.Errorf("got a config with an error: %+v", d)
			}
		})
	}
}

// TestLoadDispatcherUnknownFields: a key this version does not know, at
// the top or inside a group or buildFarm entry, is ignored and named.
func TestLoadDispatcherUnknownFields(t *testing.T) {
	path := filepath.Join("testdata", "dispatcher", "unknown-field.yaml")
	d, err := LoadDispatcher(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Default != "build01" || len(d.Groups["build02"].Jobs) != 1 || !d.BuildFarm["aws"]["build01"].Disabled {
		t.Errorf("the known keys were not read: %+v", d)
	}
	want := []string{
		"dispatcher config " + path + `: buildFarm.aws.build01.weight`,
		"dispatcher config " + path + `: groups.build02.owner`,
		"dispatcher config " + path + `: kvmClusters`,
	}
	if diff := cmp.Diff(want, UnknownFields(d, nil)); diff != "" {
		t.Errorf("unknown fields (-want +got):\n%s", diff)
	}
}

func TestLoadDispatcherMissingFile(t *testing.T) {
	_, err := LoadDispatcher(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want a not-exist error, got %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	d, err := LoadDispatcher(filepath.Join("testdata", "dispatcher", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseDispatcher("marshalled", out)
	if err != nil {
		t.Fatalf("marshalled config does not parse: %v\n%s", err, out)
	}
	if diff := cmp.Diff(d, again, cmpopts.IgnoreFields(Group{}, "PathREs"), cmpopts.IgnoreFields(DispatcherConfig{}, "File")); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	out2, err := again.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(out2) {
		t.Errorf("Marshal is not deterministic:\n%s\n---\n%s", out, out2)
	}
}
