package store

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func sampleJournal() *Journal {
	return &Journal{
		Rows: []table.Assignment{
			{Job: "job-002", Cluster: "build09", Reason: table.ReasonOverride},   // replaces a row
			{Job: "new-job", Cluster: "build01", Reason: table.ReasonCapability}, // joins the table
		},
		Provisional: []Provisional{{
			Job:          jobs.Job{Name: "new-job", Agent: jobs.Agent, Requirements: jobs.Requirements{Capabilities: []string{"arm64"}}},
			LastAdmitted: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Admissions: 3,
		}},
	}
}

func TestJournalExtendsStateFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := New(dir)
	base := sampleState(4)
	if err := s.Save(base); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveJournal(sampleJournal()); err != nil {
		t.Fatal(err)
	}

	reopened, _ := New(dir)
	got, err := reopened.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := sampleState(4)
	want.Table.Assignments[2] = table.Assignment{Job: "job-002", Cluster: "build09", Reason: table.ReasonOverride}
	want.Table.Assignments = append(want.Table.Assignments, table.Assignment{Job: "new-job", Cluster: "build01", Reason: table.ReasonCapability})
	want.Provisional = sampleJournal().Provisional
	want.JournalRows = 2
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load with a journal:\n got %+v\nwant %+v", got, want)
	}
	// Load made the loaded file the base: a journal written now extends it.
	if err := reopened.SaveJournal(&Journal{}); err != nil {
		t.Fatal(err)
	}
	if again, err := reopened.Load(); err != nil || again.JournalRows != 0 || len(again.Provisional) != 0 {
		t.Errorf("an empty journal on the loaded file: %+v, %v", again, err)
	}
}

// TestStaleJournalIsIgnored: a crash after a state file write and before the
// journal write that follows leaves a journal naming the previous state
// file. The newer state file wins, unchanged.
func TestStaleJournalIsIgnored(t *testing.T) {
	dir := t.TempDir()
	s, _ := New(dir)
	if err := s.Save(sampleState(4)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveJournal(sampleJournal()); err != nil {
		t.Fatal(err)
	}
	journal, err := os.ReadFile(s.JournalPath())
	if err != nil {
		t.Fatal(err)
	}
	newer := sampleState(6)
	if err := s.Save(newer); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.JournalPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Save left the journal it superseded: %v", err)
	}
	// Had the process died before removing it, the journal would still be there.
	if err := os.WriteFile(s.JournalPath(), journal, 0o644); err != nil {
		t.Fatal(err)
	}
	reopened, _ := New(dir)
	got, err := reopened.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, newer) {
		t.Errorf("a stale journal was applied:\n got %+v\nwant %+v", got, newer)
	}
}

func TestCorruptJournalKeepsStateFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := New(dir)
	base := sampleState(3)
	if err := s.Save(base); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveJournal(sampleJournal()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(s.JournalPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.JournalPath(), data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), JournalFileName) {
		t.Errorf("Load with a torn journal: %v, want ErrCorrupt naming %s", err, JournalFileName)
	}
	if !reflect.DeepEqual(got, base) {
		t.Errorf("Load with a torn journal should give the state file's state:\n got %+v\nwant %+v", got, base)
	}
}

func TestSaveJournalNeedsAStateFile(t *testing.T) {
	s := newStore(t)
	if err := s.SaveJournal(sampleJournal()); err == nil || !strings.Contains(err.Error(), "no state file") {
		t.Fatalf("SaveJournal before any Save: %v", err)
	}
	if _, err := os.Stat(s.JournalPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a journal was written without a state file: %v", err)
	}
}

func TestAdmissionsFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := New(dir)
	old := sampleState(2) // its admission counts are in the state file, as earlier releases wrote them
	if err := s.Save(old); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(); err != nil || !reflect.DeepEqual(got.Admissions, old.Admissions) {
		t.Fatalf("counts from the state file: %+v, %v", got.Admissions, err)
	}
	newer := &demand.AdmissionCounts{Days: []demand.DayCounts{{Day: old.LastDispatch.Truncate(24 * time.Hour), Jobs: map[string]float64{"job-001": 7, "job-000": 1}}}}
	if err := s.SaveAdmissions(newer); err != nil {
		t.Fatal(err)
	}
	stateBefore, _ := os.ReadFile(s.Path())
	got, err := s.Load()
	if err != nil || !reflect.DeepEqual(got.Admissions, newer) {
		t.Errorf("counts from admissions.json: %+v, %v; want %+v", got.Admissions, err, newer)
	}
	if stateAfter, _ := os.ReadFile(s.Path()); string(stateAfter) != string(stateBefore) {
		t.Error("SaveAdmissions rewrote the state file")
	}

	// A torn counts file is reported; the rest of the state loads.
	if err := os.WriteFile(s.AdmissionsPath(), []byte(`{"version":1,"chec`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = s.Load()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), AdmissionsFileName) {
		t.Errorf("torn admissions.json: %v, want ErrCorrupt naming it", err)
	}
	if got == nil || len(got.Table.Assignments) != 2 {
		t.Errorf("torn admissions.json lost the table: %+v", got)
	}
}
