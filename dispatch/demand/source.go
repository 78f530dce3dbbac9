// Package demand gets each job's demand: how much it ran over a window,
// optionally weighted by run duration. Demand comes from Prometheus, from a
// file, or is counted from the ProwJobs the webhook admits.
package demand

import "context"

// Source returns demand by job name. Implementations are safe for concurrent use.
type Source interface {
	Demand(ctx context.Context) (map[string]float64, error)
}
