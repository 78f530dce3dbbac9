package e2e

// The jobs of testdata/jobs and their demand: each is the increase of its
// prowjob_state_transitions{state="pending"} counter over the 14 days of
// generated Prometheus history.
var demand = map[string]float64{
	jobOriginUnit:    900,
	jobOriginE2E:     400,
	jobOriginARM64:   120,
	jobInstallerUnit: 300,
	jobInstallerE2E:  250,
	jobConsoleUnit:   500,
	jobConsolePinned: 50,
	jobAPIVerify:     600,
	jobNightly:       200,
	jobNightlyARM64:  80,
	jobRemoved:       1000, // ran, then left the job config
}

const (
	jobOriginUnit     = "pull-ci-openshift-origin-main-unit"
	jobOriginE2E      = "pull-ci-openshift-origin-main-e2e-aws"
	jobOriginARM64    = "pull-ci-openshift-origin-main-e2e-aws-arm64" // capability/arm64
	jobInstallerUnit  = "pull-ci-openshift-installer-main-unit"
	jobInstallerE2E   = "pull-ci-openshift-installer-main-e2e-gcp"
	jobConsoleUnit    = "pull-ci-openshift-console-main-unit"
	jobConsolePinned  = "pull-ci-openshift-console-main-e2e-pinned" // pinned to build03
	jobAPIVerify      = "pull-ci-openshift-api-main-verify"
	jobNightly        = "periodic-ci-openshift-release-nightly"
	jobNightlyARM64   = "periodic-ci-openshift-release-arm64-nightly" // capability/arm64
	jobRemoved        = "pull-ci-openshift-removed-main-unit"         // in Prometheus only
	clusterARM64      = "build01"                                     // the only arm64 cluster
	clusterPinned     = "build03"
	clusterBlocked    = "build04"
	clusterManual     = "vsphere02"
	labelCapARM64     = "capability/arm64"
	labelPin          = "ci-operator.openshift.io/cluster"
	defaultCluster    = "default" // spec.cluster as Prow sets it before admission
	prowJobsNamespace = "ci"
)

// usableClusters are the clusters balancing may choose: not blocked, not manual.
var usableClusters = map[string]bool{"build01": true, "build02": true, "build03": true}

// balancedJobs are the jobs no rule but balancing places, by job file.
var balancedJobs = map[string][]string{
	"openshift/origin":    {jobOriginUnit, jobOriginE2E},
	"openshift/installer": {jobInstallerUnit, jobInstallerE2E},
	"openshift/console":   {jobConsoleUnit},
	"openshift/api":       {jobAPIVerify},
	"periodics":           {jobNightly},
}

// jobLabels are the labels each job carries in testdata/jobs (ProwJobs carry them too).
var jobLabels = map[string]map[string]string{
	jobOriginARM64:   {labelCapARM64: "arm64"},
	jobNightlyARM64:  {labelCapARM64: "arm64"},
	jobConsolePinned: {labelPin: clusterPinned},
}
