package dispatch

import (
	"context"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Shared is the state every replica of a highly available dispatcher
// shares (the Kubernetes API with --state-backend=kubernetes). Each write
// is durable once it returns nil; an error means it was not made, and the
// operation that asked for it is refused.
type Shared interface {
	// PutOverride creates or replaces the job's override.
	PutOverride(ctx context.Context, o table.Override) error
	// DeleteOverride removes the job's override; a missing one is no error.
	DeleteOverride(ctx context.Context, job string) error
	// PutClusterOverride creates or replaces the cluster's drain or cap.
	PutClusterOverride(ctx context.Context, o table.ClusterOverride) error
	// DeleteClusterOverride removes the cluster's drain or cap; a missing one is no error.
	DeleteClusterOverride(ctx context.Context, cluster string) error
	// Claim records the row of a job the table lacked unless a row is
	// recorded for it already, and returns the row in force cluster-wide
	// (the first recorded). provisional is the job's record when the job
	// config lacks it. On error the caller keeps its row; Shared retries the
	// claim and reports a different winner through AdoptRows.
	Claim(ctx context.Context, row table.Assignment, provisional *jobs.Job) (table.Assignment, error)
	// ConfirmDrain waits, within a bound, until every other live replica
	// has the drain o in force, and returns those that did not.
	ConfirmDrain(ctx context.Context, o table.ClusterOverride) (unconfirmed []string, err error)
	// OtherLeader names the replica other than this one known to lead;
	// empty while this replica leads or no other one is known.
	OtherLeader() string
}
