package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// TestBackendLoad: the port's Load tells no state, damaged state and a
// good one apart, and keeps the store's own message.
func TestBackendLoad(t *testing.T) {
	for _, tc := range []struct {
		name        string
		prepare     func(t *testing.T, b *Backend)
		wantMissing bool
		wantDamaged bool
		wantRows    int
	}{
		{name: "no state file", wantMissing: true},
		{name: "saved", prepare: func(t *testing.T, b *Backend) {
			if err := b.Save(func() *State { return sampleState(4) }); err != nil {
				t.Fatal(err)
			}
		}, wantRows: 4},
		{name: "corrupt, no previous generation", prepare: func(t *testing.T, b *Backend) {
			if err := b.Save(func() *State { return sampleState(4) }); err != nil {
				t.Fatal(err)
			}
			flipByte(t, b.s.Path())
		}, wantDamaged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBackend(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if tc.prepare != nil {
				tc.prepare(t, b)
			}
			st, err := b.Load(context.Background())
			if got := errors.Is(err, fs.ErrNotExist); got != tc.wantMissing {
				t.Errorf("Load: %v; missing %v, want %v", err, got, tc.wantMissing)
			}
			if got := errors.Is(err, state.ErrDamaged); got != tc.wantDamaged {
				t.Errorf("Load: %v; damaged %v, want %v", err, got, tc.wantDamaged)
			}
			if tc.wantDamaged && !errors.Is(err, ErrCorrupt) {
				t.Errorf("Load: %v, want the store's ErrCorrupt kept", err)
			}
			rows := 0
			if st != nil && st.Table != nil {
				rows = len(st.Table.Assignments)
			}
			if rows != tc.wantRows {
				t.Errorf("Load gave %d rows, want %d", rows, tc.wantRows)
			}
		})
	}
}

// TestBackendSaves: the saves write the dir's files; the shared writes
// write nothing, and a claim keeps this replica's row.
func TestBackendSaves(t *testing.T) {
	dir := t.TempDir()
	b, err := NewBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	row := table.Assignment{Job: "job-new", Cluster: "build02", Reason: table.ReasonBalanced}
	if err := b.SaveJournal(func() ([]table.Assignment, []state.Provisional) { return []table.Assignment{row}, nil }); !errors.Is(err, state.ErrNoBase) {
		t.Errorf("journal before any save: %v, want ErrNoBase", err)
	}
	o := table.Override{Job: "job-001", Cluster: "build03", Reason: "r"}
	if err := b.PutOverride(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.s.OverridesPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("PutOverride wrote %s (%v): the file store saves overrides in SaveOverrides", b.s.OverridesPath(), err)
	}
	if won, err := b.Claim(ctx, row, nil); err != nil || won != row {
		t.Errorf("Claim: %+v, %v; want this replica's row", won, err)
	}
	if err := b.Save(func() *State { return sampleState(2) }); err != nil {
		t.Fatal(err)
	}
	if err := b.SaveJournal(func() ([]table.Assignment, []state.Provisional) { return []table.Assignment{row}, nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.SaveOverrides([]table.Override{o}); err != nil {
		t.Fatal(err)
	}
	st, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Table.Assignments) != 3 || len(st.Overrides) != 1 || st.Overrides[0].Job != o.Job {
		t.Errorf("state dir holds %d rows and overrides %+v; want the 2 saved and the journal's one, and %s's override", len(st.Table.Assignments), st.Overrides, o.Job)
	}
}
