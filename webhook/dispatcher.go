package webhook

import (
	"context"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Admitter is what admission and readiness need of the dispatcher. Its
// methods match *dispatch.Dispatcher's, so main passes the real one.
type Admitter interface {
	// Status reports readiness and the last errors.
	Status() Status
	// Lookup returns the job's assignment from the table, without delta-assigning; it does not allocate.
	Lookup(job string) (table.Assignment, bool)
	// Assign returns the job's cluster, delta-assigning an unknown job from its labels.
	Assign(ctx context.Context, job string, labels map[string]string, dryRun bool) (table.Assignment, error)
	// IsManual reports whether cluster is a manual cluster.
	IsManual(cluster string) bool
	// RecordAdmission counts one admitted run of job toward its demand.
	RecordAdmission(job string)
}

// Dispatcher is everything the webhook package calls: admission, the HTTP
// API and readiness. *dispatch.Dispatcher implements it.
type Dispatcher interface {
	Admitter
	// Dispatch runs a full dispatch now.
	Dispatch(ctx context.Context) (*engine.Report, error)
	// Reschedule creates an override.
	Reschedule(ctx context.Context, req RescheduleRequest) (*RescheduleResult, error)
	// DeleteOverride removes a job's override.
	DeleteOverride(ctx context.Context, job string) error
	// Overrides lists the overrides in force.
	Overrides() []table.Override
	// Explain says why a job is where it is.
	Explain(job string) (*engine.Explanation, error)
	// Clusters lists the clusters and their loads.
	Clusters() []engine.ClusterLoad
	// BuildFarmConfig renders the dispatcher config with buildFarm regenerated from the table.
	BuildFarmConfig() ([]byte, error)
}
