package jobs

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	prowconfig "sigs.k8s.io/prow/pkg/config"
)

// Load reads the Prow job config tree under dir (presubmits, postsubmits and
// periodics in YAML files, in nested folders, as openshift/release
// ci-operator/jobs has) and returns its jobs sorted by name. File is the
// job's file relative to dir; an empty agent becomes "kubernetes"; the
// requirements come from labels (DefaultLabels when labels is zero). A job
// name defined twice is an error naming both files; all such errors are
// returned together.
func Load(dir string, labels Labels) ([]Job, error) {
	if labels == (Labels{}) {
		labels = DefaultLabels()
	}
	jc, err := prowconfig.ReadJobConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("job config %s: %w", dir, err)
	}
	var all []Job
	add := func(t Type, base prowconfig.JobBase) {
		agent := base.Agent
		if agent == "" {
			agent = Agent
		}
		all = append(all, Job{
			Name:         base.Name,
			File:         relativeFile(dir, base.SourcePath),
			Type:         t,
			Agent:        agent,
			Cluster:      base.Cluster,
			Requirements: labels.Requirements(base.Labels),
		})
	}
	for _, ps := range jc.PresubmitsStatic {
		for _, p := range ps {
			add(Presubmit, p.JobBase)
		}
	}
	for _, ps := range jc.PostsubmitsStatic {
		for _, p := range ps {
			add(Postsubmit, p.JobBase)
		}
	}
	for _, p := range jc.Periodics {
		add(Periodic, p.JobBase)
	}
	// Sort by name, then file and type, so duplicates sit side by side in a stable order.
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Type < b.Type
	})
	if err := duplicates(dir, all); err != nil {
		return nil, err
	}
	return all, nil
}

// duplicates reports every job name defined more than once in the sorted jobs.
func duplicates(dir string, sorted []Job) error {
	var errs []error
	for i := 1; i < len(sorted); i++ {
		prev, cur := sorted[i-1], sorted[i]
		if prev.Name == cur.Name {
			errs = append(errs, fmt.Errorf("job config %s: job %q defined twice: %s %s and %s %s",
				dir, cur.Name, prev.Type, prev.File, cur.Type, cur.File))
		}
	}
	return errors.Join(errs...)
}

// relativeFile returns the job's file relative to the job config dir (its
// base name when dir is the file itself).
func relativeFile(dir, source string) string {
	rel, err := filepath.Rel(dir, source)
	if err != nil || rel == "." {
		return filepath.Base(source)
	}
	return filepath.ToSlash(rel)
}
