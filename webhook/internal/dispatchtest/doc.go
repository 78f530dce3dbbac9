// Package dispatchtest gives the webhook packages' tests a real
// *dispatch.Dispatcher over the docs' example configs, so admission and the
// HTTP API are also tested against the dispatcher they serve in production.
package dispatchtest
