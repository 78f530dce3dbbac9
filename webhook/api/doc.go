// Package api is the dispatcher's HTTP API: its paths, its request and
// response types (the wire format, owned here and converted at the edge, so
// the engine's types can change without changing the API) and a client for
// them. Package httpapi serves it; the plugin, e2e and operators call it.
// It imports no other package of webhook/, so its callers do not pull in
// the server.
package api
