// Package plugin is a Prow external plugin that lets people ask the
// dispatcher, from a pull request, where its jobs run (/dispatch), refresh
// the assignment (/dispatch refresh), preview a config PR (/dispatch plan,
// and a plan comment on every push of a PR changing the config files) and
// move a job to another cluster (/reschedule). It talks to the dispatcher
// only through webhook/api.
package plugin
