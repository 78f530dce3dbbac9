package jobs

import (
	"fmt"
	"sort"

	prowconfig "sigs.k8s.io/prow/pkg/config"
)

// PresubmitsFor returns, sorted, the names of the presubmits of org/repo in
// the job config tree under dir that could run on a pull request to branch
// (Prow's Presubmit.CouldRun: the job's branches and skip_branches). Jobs of
// every agent are returned.
func PresubmitsFor(dir, org, repo, branch string) ([]string, error) {
	jc, err := prowconfig.ReadJobConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("job config %s: %w", dir, err)
	}
	fullName := org + "/" + repo
	presubmits := jc.PresubmitsStatic[fullName]
	// CouldRun needs the branch regexes compiled; reading alone does not
	// compile them. Only the branches matter here, so the trigger checks,
	// which a job without defaults can fail, are left out.
	for i := range presubmits {
		presubmits[i].Trigger, presubmits[i].RerunCommand = "", ""
	}
	if err := prowconfig.SetPresubmitRegexes(presubmits); err != nil {
		return nil, fmt.Errorf("job config %s: presubmits of %s: %w", dir, fullName, err)
	}
	var names []string
	for _, p := range presubmits {
		if p.CouldRun(branch) {
			names = append(names, p.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}
