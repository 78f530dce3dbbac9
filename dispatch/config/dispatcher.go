// Package config loads and validates prowjob-dispatcher's two config files:
// the dispatcher config (OpenShift CI's sanitize-prow-jobs _config.yaml
// format) and the cluster config (providers -> clusters). Every error names
// the file, the field and the offending value; all errors of a file are
// reported together.
package config

import (
	"regexp"

	"sigs.k8s.io/yaml"
)

// DispatcherConfig is the dispatcher config (--dispatcher-config), compatible with the _config.yaml that
// OpenShift CI's sanitize-prow-jobs and its dispatcher read.
type DispatcherConfig struct {
	// Default is the cluster for jobs no rule places.
	Default string `json:"default"`
	// SSHBastion is the cluster for jobs that need the ssh bastion.
	SSHBastion string `json:"sshBastion,omitempty"`
	// KVM lists the clusters that run jobs needing KVM devices.
	KVM []string `json:"kvm,omitempty"`
	// NoBuilds lists the clusters that run jobs that do no builds.
	NoBuilds []string `json:"noBuilds,omitempty"`
	// ManualClusters are valid targets (pins, groups, overrides) that never take part in balancing.
	ManualClusters []string `json:"manualClusters,omitempty"`
	// Groups place jobs on a cluster by job name or by job-file path regex.
	Groups map[string]Group `json:"groups,omitempty"`
	// BuildFarm is the previous assignment: provider -> cluster -> job file names.
	BuildFarm map[string]map[string]*BuildFarmCluster `json:"buildFarm,omitempty"`
	// DetermineE2EByJob places a job on a cluster of the cloud its e2e test runs on.
	DetermineE2EByJob bool `json:"determineE2EByJob,omitempty"`
	// CloudMapping maps a job's cloud label value to a provider of the cluster config.
	CloudMapping map[string]string `json:"cloudMapping,omitempty"`
	// File is the file the config was read from, named in error messages (set by loading).
	File string `json:"-"`
	// Unknown are the keys of the file this version does not know and
	// ignored, as field paths (set by loading).
	Unknown []string `json:"-"`
}

// Group is a set of jobs that must run on one cluster.
type Group struct {
	// Jobs are job names.
	Jobs []string `json:"jobs,omitempty"`
	// Paths are regexes matched against job-file paths relative to the job config dir.
	Paths []string `json:"paths,omitempty"`
	// PathREs are the compiled Paths, set by loading.
	PathREs []*regexp.Regexp `json:"-"`
}

// BuildFarmCluster is one cluster's share of the previous assignment.
type BuildFarmCluster struct {
	// Filenames are job config file base names assigned to the cluster.
	Filenames []string `json:"filenames,omitempty"`
	// Disabled clusters take no new jobs.
	Disabled bool `json:"disabled,omitempty"`
}

// Marshal renders the config as YAML in the dispatcher config format. Map
// keys come out sorted, so equal configs give byte-identical output.
func (d *DispatcherConfig) Marshal() ([]byte, error) {
	return yaml.Marshal(d)
}

// MatchPath reports whether a group path regex matches a job file, a path
// relative to the job config dir. The regex is tried on the path and on the
// path with a leading "/": OpenShift CI's dispatcher matched paths that
// began with the job config dir, so its configs hold regexes such as
// `[^-]infra-periodics.yaml`, meant to match a top-level
// infra-periodics.yaml but not openshift-release-infra-periodics.yaml,
// while anchored ones such as `^openshift/hive/` match the relative path.
func MatchPath(re *regexp.Regexp, file string) bool {
	return re.MatchString(file) || re.MatchString("/"+file)
}
