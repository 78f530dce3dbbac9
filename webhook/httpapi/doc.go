// Package httpapi serves the dispatcher's HTTP API (the paths and wire types
// of package api), the HTML status page, and /healthz, /readyz and /metrics.
// It holds no scheduling logic: every answer comes from the Backend it is
// given.
//
// Auth (bearer token files, the replica secret) and forwarding of writes to
// the leader stay in this package rather than packages of their own: they
// wrap these handlers, answer with the same JSON errors, and their tests
// drive them through the API.
package httpapi
