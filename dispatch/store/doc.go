// Package store persists the dispatcher's state in a state dir: the state
// file (the table, the overrides, the admission-time jobs, the admission
// counts and the last dispatch time) and a journal of what changed since it
// was written. Both are versioned, checksummed and replaced atomically, so a
// crash mid-write leaves the previous state intact; frequent small changes
// write only the journal.
package store
