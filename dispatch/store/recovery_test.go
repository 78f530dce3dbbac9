package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// flipByte corrupts one byte in the middle of the file at path.
func flipByte(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCorruptStateFileFallsBackToThePreviousGeneration(t *testing.T) {
	s := newStore(t)
	older, newer := sampleState(3), sampleState(5)
	for _, st := range []*State{older, newer} {
		if err := s.Save(st); err != nil {
			t.Fatal(err)
		}
	}
	overrides := []table.Override{{Job: "job-004", Cluster: "build03", Reason: "saved apart"}}
	if err := s.SaveOverrides(overrides); err != nil {
		t.Fatal(err)
	}
	bad := flipByte(t, s.Path())

	got, err := s.Load()
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Load: %v, want ErrCorrupt", err)
	}
	if got == nil || len(got.Table.Assignments) != 3 {
		t.Fatalf("Load gave %+v, want the previous generation's 3 rows", got)
	}
	if !reflect.DeepEqual(got.Overrides, overrides) {
		t.Errorf("overrides %+v, want those of overrides.json %+v", got.Overrides, overrides)
	}
	if len(got.Recovered) != 2 || !strings.Contains(got.Recovered[1], "previous generation") {
		t.Errorf("Recovered %q, want the file moved aside and the fallback", got.Recovered)
	}
	aside, _ := filepath.Glob(s.Path() + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt copies %v, want one", aside)
	}
	if kept, _ := os.ReadFile(aside[0]); string(kept) != string(bad) {
		t.Error("the corrupt copy differs from the corrupt file")
	}
	// The next save writes a new state file and leaves the copy alone.
	if err := s.Save(got); err != nil {
		t.Fatal(err)
	}
	if kept, _ := os.ReadFile(aside[0]); string(kept) != string(bad) {
		t.Error("a save overwrote the corrupt copy")
	}
	if again, err := s.Load(); err != nil || len(again.Table.Assignments) != 3 || len(again.Recovered) != 0 {
		t.Errorf("after the recovery save: %+v, %v", again, err)
	}
}

func TestCorruptStateFileWithoutPreviousKeepsTheFilesApart(t *testing.T) {
	s := newStore(t)
	if err := s.Save(sampleState(2)); err != nil {
		t.Fatal(err)
	}
	overrides := []table.Override{{Job: "job-001", Cluster: "build03", Reason: "r"}}
	if err := s.SaveOverrides(overrides); err != nil {
		t.Fatal(err)
	}
	flipByte(t, s.Path())
	got, err := s.Load()
	if !errors.Is(err, ErrCorrupt) || got == nil {
		t.Fatalf("Load: %+v, %v", got, err)
	}
	if got.Table != nil || !reflect.DeepEqual(got.Overrides, overrides) || len(got.Recovered) != 2 {
		t.Errorf("got %+v, want no table, the overrides, and what was done", got)
	}
}

func TestSaveRecreatesARemovedStateDir(t *testing.T) {
	s := newStore(t)
	if err := s.Save(sampleState(1)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		t.Fatal(err)
	}
	// A journal would extend a state file that is gone: the caller must save it first.
	if err := s.SaveJournal(&Journal{}); !errors.Is(err, ErrNoStateFile) {
		t.Errorf("journal after the dir was removed: %v, want ErrNoStateFile", err)
	}
	if err := s.SaveOverrides(nil); err != nil {
		t.Errorf("overrides after the dir was removed: %v", err)
	}
	if err := s.Save(sampleState(2)); err != nil {
		t.Errorf("state after the dir was removed: %v", err)
	}
	if got, err := ReadDir(s.dir); err != nil || len(got.Table.Assignments) != 2 {
		t.Errorf("ReadDir: %+v, %v", got, err)
	}
}

func TestDemandIsKept(t *testing.T) {
	s := newStore(t)
	if err := s.Save(&State{}); err != nil {
		t.Fatal(err)
	}
	want := &Demand{At: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), Jobs: map[string]float64{"a": 185, "b": 2.5}}
	if err := s.SaveDemand(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil || !reflect.DeepEqual(got.Demand, want) {
		t.Errorf("Load: demand %+v, %v; want %+v", got.Demand, err, want)
	}
}

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	first, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockDir(dir)
	if err == nil || !strings.Contains(err.Error(), "in use by another prowjob-dispatcher") ||
		!strings.Contains(err.Error(), "pid ") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second LockDir: %v, want an error naming the dir and the holder", err)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after Release: %v", err)
	}
	_ = again.Release()
}
