// Package webhook is prowjob-dispatcher's network edge: the mutating
// admission webhook that sets spec.cluster on new ProwJobs, the HTTP API
// (schedule, assignments, reschedule, ...) and the health, readiness and
// metrics endpoints. It holds no scheduling logic: every decision comes
// from the Dispatcher it is given.
package webhook
