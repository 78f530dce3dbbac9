package state

import (
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// State is what survives a restart.
type State struct {
	// Table is the table in force (nil before the first dispatch).
	Table *table.Table `json:"table,omitempty"`
	// Overrides are the operators' reschedules, sorted by job. The file
	// store also keeps them apart, in overrides.json, so a bad state file
	// never costs an override.
	Overrides []table.Override `json:"overrides,omitempty"`
	// Drains are the operators' cluster drains and capacity caps,
	// sorted by cluster, kept in cluster-overrides.json alone (written on
	// every change).
	Drains []table.Drain `json:"-"`
	// Provisional are the jobs first seen at admission that the job config
	// lacks, sorted by name: a restart keeps their rows, their demand and
	// when they were last admitted.
	Provisional []Provisional `json:"provisional,omitempty"`
	// DeltaJobs are Provisional as releases before it wrote them (jobs only);
	// Load moves them into Provisional.
	DeltaJobs []jobs.Job `json:"deltaJobs,omitempty"`
	// Admissions are the admission counts of the embedded demand source.
	// The file store keeps them in admissions.json; state files of earlier
	// releases hold them here.
	Admissions *demand.AdmissionCounts `json:"admissions,omitempty"`
	// LastDispatch is when the last full dispatch succeeded.
	LastDispatch time.Time `json:"lastDispatch,omitempty"`

	// Demand is the last good demand, so a restart places new jobs with
	// real demand before its first query.
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
