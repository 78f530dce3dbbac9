package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	prowconfig "sigs.k8s.io/prow/pkg/config"
)

// PresubmitsFunc lists the names of the presubmits of org/repo that could run
// against a base branch.
type PresubmitsFunc func(org, repo, branch string) ([]string, error)

// JobConfigPresubmits reads presubmits from a Prow job config (a file or a
// directory) with Prow's own config loading, at each call so config changes
// are seen. When dir/org/repo exists (the OpenShift CI layout,
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
		jc, err := prowconfig.ReadJobConfig(root)
		if err != nil {
			return nil, fmt.Errorf("job config %s: %w", root, err)
		}
		return presubmitsFor(jc, org, repo, branch)
	}
}

// presubmitsFor returns the sorted names of org/repo's presubmits whose branch
// rules admit branch.
func presubmitsFor(jc prowconfig.JobConfig, org, repo, branch string) ([]string, error) {
	var names []string
	for _, ps := range jc.PresubmitsStatic[org+"/"+repo] {
		// Only the branch regexes matter here; the trigger is checked by Prow
		// against the rerun command, which the raw config need not set.
		ps.Trigger, ps.RerunCommand = "", ""
		one := []prowconfig.Presubmit{ps}
		if err := prowconfig.SetPresubmitRegexes(one); err != nil {
			return nil, fmt.Errorf("job config: presubmit %s: %w", ps.Name, err)
		}
		if one[0].CouldRun(branch) {
			names = append(names, ps.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}
