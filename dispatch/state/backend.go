package state

import (
	"context"
	"errors"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// ErrDamaged wraps Load's error when part of the state could not be trusted
// (a corrupt file): the state returned with it, if any, holds the rest, and
// the dispatcher starts from it.
var ErrDamaged = errors.New("state damaged")

// Damaged wraps err as ErrDamaged, keeping its message.
func Damaged(err error) error { return damaged{err} }

type damaged struct{ err error }

func (e damaged) Error() string        { return e.err.Error() }
func (e damaged) Unwrap() error        { return e.err }
func (e damaged) Is(target error) bool { return target == ErrDamaged }

// ErrNoBase is SaveJournal's error when there is no full save to extend:
// Save first.
var ErrNoBase = errors.New("no saved state to extend: save the state first")

// Backend is where the dispatcher's state lives: the one port through
// which package dispatch reads and writes it.
//
// A change reaches a backend twice. Before it is in force, the shared
// writes (PutOverride, DeleteOverride, PutDrain,
// DeleteDrain, Claim) make it visible to every replica: an error
// means it was not made and the change is refused. Once it is in force, the
// saves (Save, SaveJournal, SaveOverrides, ...) make it durable: an error
// leaves it in force, not saved, and the next save retries. A backend of
// one replica (the file store) has nobody to show a change to and makes it
// durable in the saves; a backend shared by replicas (the Kubernetes API)
// makes it durable in the shared writes and has nothing left to save.
type Backend interface {
	// Where names the state for logs and messages: a state file, "shared
	// state", "memory".
	Where() string

	// Load returns the state to start from; nil when there is none. An
	// error matching fs.ErrNotExist says there is no state yet; one
	// wrapping ErrDamaged comes with what could be trusted (nil: nothing).
	// Any other error is fatal.
	Load(ctx context.Context) (*State, error)
	// Watch registers w, to which the backend gives, from now on, the
	// changes made elsewhere (by other replicas, by kubectl) and whether
	// this replica leads. A backend of one replica says at once that it
	// leads, and has nothing else to give. The dispatcher calls it once,
	// as New ends, so that it is whole before any change arrives.
	Watch(w Watcher)

	// PutOverride creates or replaces the job's override.
	PutOverride(ctx context.Context, o table.Override) error
	// DeleteOverride removes the job's override; a missing one is no error.
	DeleteOverride(ctx context.Context, job string) error
	// PutDrain creates or replaces the cluster's drain or cap.
	PutDrain(ctx context.Context, o table.Drain) error
	// DeleteDrain removes the cluster's drain or cap; a missing
	// one is no error.
	DeleteDrain(ctx context.Context, cluster string) error
	// Claim records the row of a job the table lacked unless a row is
	// recorded for it already, and returns the row in force (the first
	// recorded). provisional is the job's record when the job config lacks
	// it. On error the caller keeps its row; the backend retries the claim
	// and reports a different winner through Watcher.AdoptRows.
	Claim(ctx context.Context, row table.Assignment, provisional *jobs.Job) (table.Assignment, error)
	// ConfirmDrain waits, within a bound, until every other live replica
	// has the drain o in force, and returns those that did not.
	ConfirmDrain(ctx context.Context, o table.Drain) (unconfirmed []string, err error)
	// OtherLeader names the replica other than this one known to lead;
	// empty while this replica leads or no other one is known.
	OtherLeader() string
	// Stamp is t as the backend keeps times (the Kubernetes API keeps
	// seconds), so that every replica holds the same override.
	Stamp(t time.Time) time.Time

	// Save saves the state that snapshot gives whole (its table,
	// overrides, provisional jobs and last dispatch time); the journal
	// starts over. The snapshots of Save, SaveJournal and SaveAdmissions
	// copy much: a backend that has nothing to save does not take them.
	Save(snapshot func() *State) error
	// SaveJournal saves what changed since the last Save: the rows set
	// since and the provisional jobs as they are now, as changes gives
	// them. Without a Save to extend it fails with ErrNoBase.
	SaveJournal(changes func() (rows []table.Assignment, provisional []Provisional)) error
	// SaveOverrides saves the job overrides, SaveDrains the
	// drains and caps, each whole.
	SaveOverrides(os []table.Override) error
	SaveDrains(cs []table.Drain) error
	// SaveAdmissions saves this replica's admission counts; SaveDemand the
	// last good demand.
	SaveAdmissions(counts func() *demand.AdmissionCounts) error
	SaveDemand(d *Demand) error
}

// Watcher is what a backend gives the changes of the state to, and reads
// the table to share from: the dispatcher registers one with
// Backend.Watch as it starts.
type Watcher interface {
	// SetLeading says whether this replica leads.
	SetLeading(leading bool)
	// AdoptTable replaces the table and provisional jobs by the leader's
	// publication; it is ignored while this replica leads.
	AdoptTable(st *State)
	// AdoptRows sets rows that replicas placed for jobs the table lacked,
	// with the provisional records of those the job config lacks.
	AdoptRows(rows []table.Assignment, provisional []Provisional)
	// SetOverrides gives the full set of job overrides; SetDrains
	// the drains and caps.
	SetOverrides(os []table.Override)
	SetDrains(cs []table.Drain)
	// CheckRow returns why a row read from the state (a published table, a
	// placement) may not be put in force: an unknown cluster, or a blocked
	// or incapable one for a job the rules may move. Nil while the configs
	// are not loaded.
	CheckRow(a table.Assignment, provisional *Provisional) error

	// Published returns the table and provisional jobs to share, and the
	// table's version, which changes with every change of either.
	Published() (*State, uint64)
	// TableVersion is Published's version without the copy.
	TableVersion() uint64
	// RowsChangedSince returns the rows set since a table version, or false
	// when rows were removed or the table replaced since.
	RowsChangedSince(version uint64) ([]table.Assignment, bool)
	// AdmissionCounts are this replica's admission counts; nil when demand
	// is not counted from admissions.
	AdmissionCounts() *demand.AdmissionCounts
}
