package dispatch

import "errors"

// Errors the Dispatcher wraps, so the HTTP API can map them to status codes.
var (
	// ErrNotFound: an unknown job, or a job without an override (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a refused request, wrapped with the reason (HTTP 400).
	ErrInvalid = errors.New("invalid")
	// ErrNotReady: there is no table yet to place a new job against (HTTP 503).
	ErrNotReady = errors.New("not ready")
	// ErrNotSaved: a change is in force in memory but could not be saved, so a
	// restart would lose it (HTTP 507); every later save retries.
	ErrNotSaved = errors.New("not saved")
	// ErrTimedOut: a what-if or a preview did not finish within
	// Options.PreviewTimeout (HTTP 503); it changed nothing.
	ErrTimedOut = errors.New("timed out")
	// ErrNotLeader: another replica of a highly available dispatcher leads,
	// and only the leader makes this write (HTTP 503: send it to the leader).
	ErrNotLeader = errors.New("not the leader")
)
