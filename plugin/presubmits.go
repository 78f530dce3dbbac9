package plugin

import (
	"os"
	"path/filepath"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
)

// PresubmitsFunc lists the names of the presubmits of org/repo that could run
// against a base branch.
type PresubmitsFunc func(org, repo, branch string) ([]string, error)

// JobConfigPresubmits reads presubmits from a Prow job config (a file or a
// directory) with jobs.PresubmitsFor, at each call so config changes are
// seen. When path/org/repo exists (the OpenShift CI layout,
// ci-operator/jobs/ORG/REPO/*.yaml) only that folder is read, which keeps a
// lookup cheap in a job config of tens of thousands of jobs; otherwise the
// whole path is read.
func JobConfigPresubmits(path string) PresubmitsFunc {
	return func(org, repo, branch string) ([]string, error) {
		root := path
		sub := filepath.Join(path, org, repo)
		if st, err := os.Stat(sub); err == nil && st.IsDir() {
			root = sub
		}
		return jobs.PresubmitsFor(root, org, repo, branch)
	}
}
