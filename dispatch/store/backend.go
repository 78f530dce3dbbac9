package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Backend is the state of one replica in a state dir (state.Backend): it
// makes a change durable in the saves, after it is in force; its shared
// writes do nothing, as no other replica shares the dir.
type Backend struct{ s *Store }

var _ state.Backend = (*Backend)(nil)

// NewBackend returns the backend of the state dir dir (see New).
func NewBackend(dir string) (*Backend, error) {
	s, err := New(dir)
	if err != nil {
		return nil, err
	}
	return &Backend{s: s}, nil
}

// Where is the state file's path.
func (b *Backend) Where() string { return b.s.Path() }

// Load reads the state dir (Store.Load). A missing state file matches
// fs.ErrNotExist; any other error is state.Damaged.
func (b *Backend) Load(context.Context) (*State, error) {
	st, err := b.s.Load()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		err = state.Damaged(err)
	}
	return st, err
}

// Watch says that this replica leads: it is the only one.
func (b *Backend) Watch(w state.Watcher) { w.SetLeading(true) }

// PutOverride does nothing: SaveOverrides saves it.
func (b *Backend) PutOverride(context.Context, table.Override) error { return nil }

// DeleteOverride does nothing: SaveOverrides saves it.
func (b *Backend) DeleteOverride(context.Context, string) error { return nil }

// PutDrain does nothing: SaveDrains saves it.
func (b *Backend) PutDrain(context.Context, table.Drain) error { return nil }

// DeleteDrain does nothing: SaveDrains saves it.
func (b *Backend) DeleteDrain(context.Context, string) error { return nil }

// Claim returns row: no other replica places jobs. SaveJournal saves it.
func (b *Backend) Claim(_ context.Context, row table.Assignment, _ *jobs.Job) (table.Assignment, error) {
	return row, nil
}

// ConfirmDrain has no other replica to wait for.
func (b *Backend) ConfirmDrain(context.Context, table.Drain) ([]string, error) {
	return nil, nil
}

// OtherLeader is empty: this replica leads.
func (b *Backend) OtherLeader() string { return "" }

// Stamp returns t: the files keep times whole.
func (b *Backend) Stamp(t time.Time) time.Time { return t }

// Save writes the state file (Store.Save).
func (b *Backend) Save(snapshot func() *State) error { return b.s.Save(snapshot()) }

// SaveJournal writes the journal (Store.SaveJournal); without a state file
// to extend it wraps state.ErrNoBase.
func (b *Backend) SaveJournal(changes func() ([]table.Assignment, []state.Provisional)) error {
	rows, provisional := changes()
	err := b.s.SaveJournal(&Journal{Rows: rows, Provisional: provisional})
	if errors.Is(err, ErrNoStateFile) {
		return fmt.Errorf("%w: %w", state.ErrNoBase, err)
	}
	return err
}

// SaveOverrides writes the overrides' file.
func (b *Backend) SaveOverrides(os []table.Override) error { return b.s.SaveOverrides(os) }

// SaveDrains writes the cluster overrides' file.
func (b *Backend) SaveDrains(cs []table.Drain) error {
	return b.s.SaveDrains(cs)
}

// SaveAdmissions writes the admission counts' file.
func (b *Backend) SaveAdmissions(counts func() *demand.AdmissionCounts) error {
	return b.s.SaveAdmissions(counts())
}

// SaveDemand writes the last good demand's file.
func (b *Backend) SaveDemand(d *Demand) error { return b.s.SaveDemand(d) }
