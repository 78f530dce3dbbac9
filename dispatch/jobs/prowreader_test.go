package jobs

import (
	"fmt"

	prowconfig "sigs.k8s.io/prow/pkg/config"
)

// loadWithProwReader is Load as it was before the fast reader: prow's
// ReadJobConfig decodes every job in full, then the same Jobs are built,
// sorted and checked for duplicates. Tests compare Load with it.
func loadWithProwReader(dir string, labels Labels) ([]Job, error) {
	if labels == (Labels{}) {
		labels = DefaultLabels()
	}
	jc, err := prowconfig.ReadJobConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("job config %s: %w", dir, err)
	}
	var all []Job
	eachJob(&jc, func(t Type, base prowconfig.JobBase) {
		all = append(all, labels.jobOf(t, base, relativeFile(dir, base.SourcePath)))
	})
	sortJobs(all)
	if err := duplicates(dir, all); err != nil {
		return nil, err
	}
	return all, nil
}
