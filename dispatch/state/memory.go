package state

import (
	"context"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Memory is the state of a dispatcher without a state dir: one replica,
// nothing kept across a restart. Every write and save succeeds and does
// nothing.
type Memory struct{}

var _ Backend = Memory{}

// Where is "memory".
func (Memory) Where() string { return "memory" }

// Load returns no state.
func (Memory) Load(context.Context) (*State, error) { return nil, nil }

// Watch says that this replica leads.
func (Memory) Watch(w Watcher) { w.SetLeading(true) }

// PutOverride does nothing.
func (Memory) PutOverride(context.Context, table.Override) error { return nil }

// DeleteOverride does nothing.
func (Memory) DeleteOverride(context.Context, string) error { return nil }

// PutDrain does nothing.
func (Memory) PutDrain(context.Context, table.Drain) error { return nil }

// DeleteDrain does nothing.
func (Memory) DeleteDrain(context.Context, string) error { return nil }

// Claim returns row: this replica's row is the one in force.
func (Memory) Claim(_ context.Context, row table.Assignment, _ *jobs.Job) (table.Assignment, error) {
	return row, nil
}

// ConfirmDrain has no other replica to wait for.
func (Memory) ConfirmDrain(context.Context, table.Drain) ([]string, error) { return nil, nil }

// OtherLeader is empty: this replica leads.
func (Memory) OtherLeader() string { return "" }

// Stamp returns t.
func (Memory) Stamp(t time.Time) time.Time { return t }

// Save does nothing.
func (Memory) Save(func() *State) error { return nil }

// SaveJournal does nothing.
func (Memory) SaveJournal(func() ([]table.Assignment, []Provisional)) error { return nil }

// SaveOverrides does nothing.
func (Memory) SaveOverrides([]table.Override) error { return nil }

// SaveDrains does nothing.
func (Memory) SaveDrains([]table.Drain) error { return nil }

// SaveAdmissions does nothing.
func (Memory) SaveAdmissions(func() *demand.AdmissionCounts) error { return nil }

// SaveDemand does nothing.
func (Memory) SaveDemand(*Demand) error { return nil }
