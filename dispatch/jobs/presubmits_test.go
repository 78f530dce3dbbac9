package jobs

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPresubmitsFor(t *testing.T) {
	dir := filepath.Join("testdata", "jobs")
	for _, tc := range []struct {
		org, repo, branch string
		want              []string
	}{
		{"openshift", "origin", "main", []string{
			"pull-ci-openshift-origin-main-e2e-aws",
			"pull-ci-openshift-origin-main-e2e-aws-arm64",
			"pull-ci-openshift-origin-main-unit",
		}},
		{"openshift", "origin", "main-fips", []string{
			"pull-ci-openshift-origin-backport-check",
			"pull-ci-openshift-origin-main-e2e-aws",
		}},
		{"openshift", "origin", "release-4.18", []string{
			"pull-ci-openshift-origin-backport-check",
			"pull-ci-openshift-origin-release-4.18-unit",
		}},
		{"openshift", "installer", "main", []string{"pull-ci-openshift-installer-main-e2e-gcp"}},
		{"openshift", "installer", "release-4.18", nil},
		{"openshift", "unknown", "main", nil},
	} {
		t.Run(tc.org+"/"+tc.repo+"@"+tc.branch, func(t *testing.T) {
			got, err := PresubmitsFor(dir, tc.org, tc.repo, tc.branch)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("presubmits (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPresubmitsForErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "o", "r", "o-r-main-presubmits.yaml"),
		"presubmits:\n  o/r:\n  - name: bad\n    branches: ['(']\n")
	_, err := PresubmitsFor(dir, "o", "r", "main")
	if err == nil || !strings.Contains(err.Error(), "presubmits of o/r") || !strings.Contains(err.Error(), "bad") {
		t.Errorf("want an error naming repo and job, got %v", err)
	}
	if _, err := PresubmitsFor(filepath.Join(dir, "absent"), "o", "r", "main"); err == nil {
		t.Error("missing dir: no error")
	}
}
