package webhook

import "github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"

// The dispatcher's types and errors the webhook package speaks, aliased so
// *dispatch.Dispatcher satisfies Dispatcher and tests can use a fake.
type (
	// Status is the dispatcher's readiness.
	Status = dispatch.Status
	// RescheduleRequest asks for an override.
	RescheduleRequest = dispatch.RescheduleRequest
	// RescheduleResult reports an override.
	RescheduleResult = dispatch.RescheduleResult
)

// ErrNotFound (HTTP 404) and ErrInvalid (HTTP 400) are the dispatcher's sentinel errors.
var (
	ErrNotFound = dispatch.ErrNotFound
	ErrInvalid  = dispatch.ErrInvalid
)
