// Package gitbackup keeps the release repository's dispatcher config in step
// with the live table: after a full dispatch that moved jobs, at most once per
// period, it opens or updates one pull request that rewrites the file's
// buildFarm section from the table, so that ProwJobs the admission webhook
// never saw (failurePolicy Ignore) run where the dispatcher would send them.
//
// It uses prow's git client (clone, commit, force-push of one head branch)
// and prow's GitHub client (find, create or update the pull request, add
// labels). A failing GitHub or git is retried with a bounded exponential
// backoff, counted and reported by Status; it never blocks the dispatch loop.
package gitbackup
