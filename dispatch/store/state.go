package store

import (
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
)

// Version is the state file format version this package writes and reads.
const Version = 1

// The files of a state dir.
const (
	// FileName is the state file: the table and the provisional jobs.
	FileName = "state.json"
	// PreviousFileName is the state file's previous generation.
	PreviousFileName = "state.prev.json"
	// JournalFileName is the journal: rows set since the state file.
	JournalFileName = "journal.json"
	// OverridesFileName holds the overrides.
	OverridesFileName = "overrides.json"
	// DrainsFileName holds the cluster drains and capacity caps.
	DrainsFileName = "cluster-overrides.json"
	// AdmissionsFileName holds the admission counts.
	AdmissionsFileName = "admissions.json"
	// DemandFileName holds the last good demand.
	DemandFileName = "demand.json"
	// LockFileName is the lock a writing process holds (LockDir).
	LockFileName = "lock"
)

// State, Provisional and Demand are the state model (package state),
// named here for the callers of this package.
type (
	State       = state.State
	Provisional = state.Provisional
	Demand      = state.Demand
)

// migrate moves fields of older releases into their current place.
func migrate(st *State, now time.Time) {
	if len(st.DeltaJobs) == 0 {
		st.DeltaJobs = nil
		return
	}
	for _, j := range st.DeltaJobs {
		if j.Name != "" {
			st.Provisional = append(st.Provisional, Provisional{Job: j, LastAdmitted: now, Admissions: 1})
		}
	}
	st.DeltaJobs = nil
}

// envelope is the file format: the state, its format version and its checksum.
type envelope struct {
	Version  int    `json:"version"`
	Checksum string `json:"checksum"`
	// State is kept raw so the checksum covers exactly the bytes written.
	State rawJSON `json:"state"`
}
