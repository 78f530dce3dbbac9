package store

import (
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Version is the state file format version this package writes and reads.
const Version = 1

// FileName is the state file's name inside the state dir.
const FileName = "state.json"

// State is what survives a restart.
type State struct {
	// Table is the table in force (nil before the first dispatch).
	Table *table.Table `json:"table,omitempty"`
	// Overrides are the operators' reschedules, sorted by job.
	Overrides []table.Override `json:"overrides,omitempty"`
	// DeltaJobs are the jobs assigned at admission that the job config lacked,
	// with the requirements their labels carried, sorted by name: a restart
	// keeps their rows through the next dispatch and checks reschedules against them.
	DeltaJobs []jobs.Job `json:"deltaJobs,omitempty"`
	// Admissions are the admission counts of the embedded demand source.
	// Load takes them from admissions.json (SaveAdmissions) when it exists;
	// state files of earlier releases hold them here.
	Admissions *demand.AdmissionCounts `json:"admissions,omitempty"`
	// LastDispatch is when the last full dispatch succeeded.
	LastDispatch time.Time `json:"lastDispatch,omitempty"`

	// JournalRows is how many rows Load took from the journal (not saved):
	// a caller that keeps them only in memory should Save to fold them in.
	JournalRows int `json:"-"`
}

// envelope is the file format: the state, its format version and its checksum.
type envelope struct {
	Version  int    `json:"version"`
	Checksum string `json:"checksum"`
	// State is kept raw so the checksum covers exactly the bytes written.
	State rawJSON `json:"state"`
}
