package jobs

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoad(t *testing.T) {
	got, err := Load(filepath.Join("testdata", "jobs"), DefaultLabels())
	if err != nil {
		t.Fatal(err)
	}
	const (
		originPre  = "openshift/origin/openshift-origin-main-presubmits.yaml"
		origin418  = "openshift/origin/openshift-origin-release-4.18-presubmits.yaml"
		originPost = "openshift/origin/openshift-origin-main-postsubmits.yaml"
		installer  = "openshift/installer/openshift-installer-main-presubmits.yaml"
		periodics  = "infra/periodics/openshift-release-infra-periodics.yaml"
	)
	want := []Job{
		{Name: "branch-ci-openshift-origin-main-images", File: originPost, Type: Postsubmit, Agent: "kubernetes", Cluster: "build01",
			Requirements: Requirements{NoBuilds: true}},
		{Name: "periodic-ci-kubevirt-kvm-nested-e2e", File: periodics, Type: Periodic, Agent: "kubernetes", Cluster: "build02",
			Requirements: Requirements{KVM: true}},
		{Name: "periodic-jenkins-legacy-sync", File: periodics, Type: Periodic, Agent: "jenkins", Cluster: "default"},
		{Name: "periodic-ssh-bastion-check", File: periodics, Type: Periodic, Agent: "kubernetes",
			Requirements: Requirements{SSHBastion: true}},
		{Name: "periodic-tekton-image-mirror", File: periodics, Type: Periodic, Agent: "tekton-pipeline",
			Requirements: Requirements{Capabilities: []string{"arm64"}}},
		{Name: "pull-ci-openshift-installer-main-e2e-gcp", File: installer, Type: Presubmit, Agent: "kubernetes", Cluster: "build02",
			Requirements: Requirements{Cloud: "gcp"}},
		{Name: "pull-ci-openshift-origin-backport-check", File: origin418, Type: Presubmit, Agent: "kubernetes"},
		{Name: "pull-ci-openshift-origin-main-e2e-aws", File: originPre, Type: Presubmit, Agent: "kubernetes", Cluster: "build03",
			Requirements: Requirements{Cloud: "aws"}},
		{Name: "pull-ci-openshift-origin-main-e2e-aws-arm64", File: originPre, Type: Presubmit, Agent: "kubernetes", Cluster: "build09",
			Requirements: Requirements{Capabilities: []string{"arm64"}}},
		{Name: "pull-ci-openshift-origin-main-unit", File: originPre, Type: Presubmit, Agent: "kubernetes",
			Requirements: Requirements{Pin: "build05", Capabilities: []string{"intranet"}}},
		{Name: "pull-ci-openshift-origin-release-4.18-unit", File: origin418, Type: Presubmit, Agent: "kubernetes", Cluster: "build01"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
}

func TestLoadZeroLabelsMeansDefault(t *testing.T) {
	dir := filepath.Join("testdata", "jobs")
	withDefault, err := Load(dir, DefaultLabels())
	if err != nil {
		t.Fatal(err)
	}
	withZero, err := Load(dir, Labels{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(withDefault, withZero); diff != "" {
		t.Errorf("zero labels differ from defaults (-default +zero):\n%s", diff)
	}
}

func TestLoadCustomLabels(t *testing.T) {
	labels := DefaultLabels()
	labels.CapabilityPrefix = "needs/"
	got, err := Load(filepath.Join("testdata", "jobs"), labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range got {
		if len(j.Requirements.Capabilities) != 0 {
			t.Errorf("job %s: capabilities %v under prefix needs/", j.Name, j.Requirements.Capabilities)
		}
	}
}

func TestLoadSingleFile(t *testing.T) {
	file := filepath.Join("testdata", "jobs", "openshift", "origin", "openshift-origin-main-postsubmits.yaml")
	got, err := Load(file, DefaultLabels())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].File != "openshift-origin-main-postsubmits.yaml" {
		t.Errorf("got %+v", got)
	}
}

func TestLoadDuplicates(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "dup"), DefaultLabels())
	if err == nil {
		t.Fatal("no error for duplicate job names")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	dir := filepath.Join("testdata", "dup")
	want := []string{
		`job config ` + dir + `: job "pull-ci-openshift-origin-main-lint" defined twice: presubmit a/openshift-origin-main-presubmits.yaml and periodic b/openshift-origin-main-periodics.yaml`,
		`job config ` + dir + `: job "pull-ci-openshift-origin-main-unit" defined twice: presubmit a/openshift-origin-main-presubmits.yaml and periodic b/openshift-origin-main-periodics.yaml`,
	}
	for i, e := range joined.Unwrap() {
		if e.Error() != want[i] {
			t.Errorf("error %d:\n got %s\nwant %s", i, e, want[i])
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "absent"), DefaultLabels()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir: want not-exist error, got %v", err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "x", "broken-presubmits.yaml"), "presubmits: [")
	_, err := Load(dir, DefaultLabels())
	if err == nil || !strings.Contains(err.Error(), "broken-presubmits.yaml") {
		t.Errorf("broken file: want an error naming the file, got %v", err)
	}
}
