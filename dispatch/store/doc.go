// Package store persists the dispatcher's state (the table, the overrides,
// the admission counts and the last dispatch time) in one versioned,
// checksummed file that is replaced atomically, so a crash mid-write leaves
// the previous state intact.
package store
