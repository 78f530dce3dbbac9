package plugin

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestJobConfigPresubmits(t *testing.T) {
	cases := []struct {
		name                    string
		path, org, repo, branch string
		want                    []string
		wantErr                 string
	}{
		{name: "the repo's folder, main", path: "testdata/jobs", org: "openshift", repo: "origin", branch: "main",
			want: []string{"pull-ci-openshift-origin-main-e2e-aws", "pull-ci-openshift-origin-main-e2e-aws-arm64", "pull-ci-openshift-origin-main-unit"}},
		{name: "the repo's folder, a release branch and a skip_branches job", path: "testdata/jobs", org: "openshift", repo: "origin", branch: "release-4.18",
			want: []string{"pull-ci-openshift-origin-any-branch-lint", "pull-ci-openshift-origin-release-4.18-unit"}},
		{name: "no folder for the repo: the whole job config is read", path: "testdata/jobs", org: "example", repo: "widget", branch: "dev",
			want: []string{"pull-widget-unit"}},
		{name: "a single file", path: "testdata/jobs/flat/presubmits.yaml", org: "openshift", repo: "origin", branch: "main",
			want: []string{"pull-origin-from-flat-file"}},
		{name: "unknown repo", path: "testdata/jobs", org: "openshift", repo: "installer", branch: "main"},
		{name: "missing job config", path: "testdata/no-such-dir", org: "openshift", repo: "origin", branch: "main", wantErr: "testdata/no-such-dir"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := JobConfigPresubmits(tc.path)(tc.org, tc.repo, tc.branch)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestJobConfigPresubmitsBadBranchRegex(t *testing.T) {
	dir := t.TempDir()
	bad := "presubmits:\n  o/r:\n  - name: bad\n    branches: ['(']\n    spec: {containers: [{image: x}]}\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := JobConfigPresubmits(dir)("o", "r", "main"); err == nil || !strings.Contains(err.Error(), "for bad") {
		t.Errorf("error = %v, want one naming the presubmit", err)
	}
}
