package store

import (
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
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
	// ClusterOverridesFileName holds the cluster drains and capacity caps.
	ClusterOverridesFileName = "cluster-overrides.json"
	// AdmissionsFileName holds the admission counts.
	AdmissionsFileName = "admissions.json"
	// DemandFileName holds the last good demand.
	DemandFileName = "demand.json"
	// LockFileName is the lock a writing process holds (LockDir).
	LockFileName = "lock"
)

// State is what survives a restart.
type State struct {
	// Table is the table in force (nil before the first dispatch).
	Table *table.Table `json:"table,omitempty"`
	// Overrides are the operators' reschedules, sorted by job. Load takes
	// them from overrides.json (SaveOverrides) when it holds a good copy, so
	// a bad state file never costs an override.
	Overrides []table.Override `json:"overrides,omitempty"`
	// ClusterOverrides are the operators' cluster drains and capacity caps,
	// sorted by cluster, kept in cluster-overrides.json alone (written on
	// every change).
	ClusterOverrides []table.ClusterOverride `json:"-"`
	// Provisional are the jobs first seen at admission that the job config
	// lacks, sorted by name: a restart keeps their rows, their demand and
	// when they were last admitted.
	Provisional []Provisional `json:"provisional,omitempty"`
	// DeltaJobs are Provisional as releases before it wrote them (jobs only);
	// Load moves them into Provisional.
	DeltaJobs []jobs.Job `json:"deltaJobs,omitempty"`
	// Admissions are the admission counts of the embedded demand source.
	// Load takes them from admissions.json (SaveAdmissions) when it exists;
	// state files of earlier releases hold them here.
	Admissions *demand.AdmissionCounts `json:"admissions,omitempty"`
	// LastDispatch is when the last full dispatch succeeded.
	LastDispatch time.Time `json:"lastDispatch,omitempty"`

	// Demand is the last good demand (SaveDemand), so a restart places new
	// jobs with real demand before its first query.
	Demand *Demand `json:"-"`

	// JournalRows is how many rows Load took from the journal (not saved):
	// a caller that keeps them only in memory should Save to fold them in.
	JournalRows int `json:"-"`
	// Recovered says what Load had to do to give this state, for people:
	// a corrupt file moved aside, the previous generation used instead.
	// Empty when every file was good.
	Recovered []string `json:"-"`
}

// Provisional is a job first seen at admission that the job config lacks.
type Provisional struct {
	// Job is the job with the requirements its labels carried.
	Job jobs.Job `json:"job"`
	// LastAdmitted is when a ProwJob of it was last admitted.
	LastAdmitted time.Time `json:"lastAdmitted"`
	// Admissions counts its admitted ProwJobs: its demand while provisional.
	Admissions int `json:"admissions"`
}

// Demand is a demand snapshot: each job's demand and when it was measured.
type Demand struct {
	At   time.Time          `json:"at"`
	Jobs map[string]float64 `json:"jobs"`
}

// migrate moves fields of older releases into their current place.
func (st *State) migrate(now time.Time) {
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
