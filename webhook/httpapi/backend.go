package httpapi

import (
	"context"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// What the HTTP API asks of the dispatcher; *dispatch.Dispatcher implements both.
type (
	// StatusReporter reports readiness and the last errors, for /readyz.
	StatusReporter interface {
		Status() dispatch.Status
	}

	// Backend answers the HTTP API.
	Backend interface {
		// StatusReporter gives the status page the table size and the last dispatch.
		StatusReporter
		// Lookup returns a job's row of the table in force.
		Lookup(job string) (table.Assignment, bool)
		// SearchJobs returns the jobs whose name contains query, those that
		// start with it first, at most limit; total counts them all.
		SearchJobs(query string, limit int) (matches []string, total int)
		// Overrides lists the overrides in force, sorted by job.
		Overrides() []table.Override
		// Explain says why a job is where it is.
		Explain(job string) (*engine.Explanation, error)
		// Clusters lists the clusters with their loads.
		Clusters() []dispatch.ClusterStatus
		// BuildFarmConfig renders the dispatcher config with buildFarm regenerated from the table.
		BuildFarmConfig() ([]byte, error)
		// Dispatch recomputes the whole table now.
		Dispatch(ctx context.Context) (*engine.Report, error)
		// Reschedule creates or replaces a job's override.
		Reschedule(ctx context.Context, req dispatch.RescheduleRequest) (*dispatch.RescheduleResult, error)
		// DeleteOverride removes a job's override.
		DeleteOverride(ctx context.Context, job string) error
		// Drains lists the drains and capacity caps in force, sorted by cluster.
		Drains() []table.Drain
		// PreviewDrain says what Drain would do, changing nothing.
		PreviewDrain(ctx context.Context, req dispatch.DrainRequest) (*dispatch.DrainPlan, error)
		// Drain drains or caps a cluster.
		Drain(ctx context.Context, req dispatch.DrainRequest) (*dispatch.DrainPlan, error)
		// WhatIf says what a dispatch on proposed configs would do, changing nothing.
		WhatIf(ctx context.Context, req dispatch.WhatIfRequest) (*dispatch.WhatIf, error)
		// Undrain cancels a cluster's drain or cap.
		Undrain(ctx context.Context, cluster, by string) (*engine.Report, error)
	}
)

var (
	_ StatusReporter = (*dispatch.Dispatcher)(nil)
	_ Backend        = (*dispatch.Dispatcher)(nil)
)
