package jobs

import "sort"

// Agent is the ProwJob agent the dispatcher places; jobs of other agents are left alone.
const Agent = "kubernetes"

// Type is a Prow job type.
type Type string

// The Prow job types.
const (
	Presubmit  Type = "presubmit"
	Postsubmit Type = "postsubmit"
	Periodic   Type = "periodic"
)

// Job is the engine's view of one Prow job.
type Job struct {
	// Name is the job name, unique across the job config.
	Name string `json:"name"`
	// File is the job's config file, relative to the job config dir ("openshift/foo/openshift-foo-main-presubmits.yaml").
	File string `json:"file,omitempty"`
	// Type is presubmit, postsubmit or periodic.
	Type Type `json:"type,omitempty"`
	// Agent is the ProwJob agent ("kubernetes" when empty in the config).
	Agent string `json:"agent"`
	// Cluster is the cluster the job config names, if any (the file-based assignment).
	Cluster string `json:"cluster,omitempty"`
	// Requirements are what the job's labels ask of its cluster.
	Requirements Requirements `json:"requirements"`
}

// Files returns the distinct job files of js, sorted.
func Files(js []Job) []string {
	seen := make(map[string]bool, len(js)/4)
	var files []string
	for _, j := range js {
		if j.File != "" && !seen[j.File] {
			seen[j.File] = true
			files = append(files, j.File)
		}
	}
	sort.Strings(files)
	return files
}
