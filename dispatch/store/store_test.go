package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func sampleState(n int) *State {
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	t := &table.Table{GeneratedAt: at}
	for i := 0; i < n; i++ {
		t.Assignments = append(t.Assignments, table.Assignment{
			Job: fmt.Sprintf("job-%03d", i), Cluster: "build0" + fmt.Sprint(i%3+1), Reason: table.ReasonBalanced,
			Detail: "lowest load", File: "org/repo/file.yaml", Demand: float64(i) + 0.5, AssignedAt: at,
		})
	}
	return &State{
		Table: t,
		Overrides: []table.Override{{
			Job: "job-001", Cluster: "build02", Reason: "flaky <node>", By: "alice",
			CreatedAt: at, Expires: at.Add(72 * time.Hour),
		}},
		Admissions: &demand.AdmissionCounts{Days: []demand.DayCounts{
			{Day: at.Truncate(24 * time.Hour), Jobs: map[string]float64{"job-001": 3}},
		}},
		LastDispatch: at,
	}
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state *State
	}{
		{"empty", &State{}},
		{"full", sampleState(50)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if err := s.Save(tc.state); err != nil {
				t.Fatal(err)
			}
			got, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.state) {
				t.Errorf("round trip changed the state:\n got %+v\nwant %+v", got, tc.state)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := newStore(t).Load()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Fatalf("a missing file is not corrupt: %v", err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	good, err := Encode(sampleState(20))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"truncated mid-write", good[:len(good)/2], "unexpected end"},
		{"empty", nil, "unexpected end"},
		{"not json", []byte("hello"), "invalid character"},
		{"unknown version", []byte(strings.Replace(string(good), `"version":1`, `"version":2`, 1)), "version 2"},
		{"no state", []byte(`{"version":1,"checksum":"sha256:00"}`), "no state"},
		{"checksum mismatch", []byte(strings.Replace(string(good), `"cluster":"build02"`, `"cluster":"build09"`, 1)), "checksum"},
		{"bad checksum field", []byte(strings.Replace(string(good), `"checksum":"sha256:`, `"checksum":"md5:`, 1)), "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if err := os.WriteFile(s.Path(), tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := s.Load()
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load: %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), s.Path()) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should name the file and contain %q", err, tc.want)
			}
		})
	}
}

// TestLoadToleratesReformatting: the checksum covers the state's content, not its whitespace.
func TestLoadToleratesReformatting(t *testing.T) {
	s := newStore(t)
	good, err := Encode(sampleState(3))
	if err != nil {
		t.Fatal(err)
	}
	pretty := strings.ReplaceAll(string(good), `,"`, ",\n  \"")
	if err := os.WriteFile(s.Path(), []byte(pretty), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); err != nil {
		t.Fatalf("reformatted file: %v", err)
	}
}

func TestFailedSaveKeepsPreviousFile(t *testing.T) {
	s := newStore(t)
	old := sampleState(5)
	if err := s.Save(old); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	// A temp file cannot be created in a "dir" that is a plain file, whoever we
	// run as (root ignores permission bits, so the read-only case below needs a user).
	broken := &Store{dir: s.Path()}
	if err := broken.Save(sampleState(6)); err == nil {
		t.Fatal("Save into a non-directory succeeded")
	}
	after, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatal("failed Save changed the previous state file")
	}
	// A crash after the new content is fully written, before the rename: the
	// old file is still whole and the temp file is cleaned up.
	var sawTemp string
	s.beforeRename = func(tmp string) error {
		sawTemp = tmp
		if got, _ := os.ReadFile(tmp); len(got) <= len(before) {
			t.Errorf("temp file holds %d bytes, want the new, larger state", len(got))
		}
		return errors.New("simulated crash")
	}
	if err := s.Save(sampleState(60)); err == nil || !strings.Contains(err.Error(), "simulated crash") {
		t.Fatalf("Save with a failing rename step: %v", err)
	}
	s.beforeRename = nil
	if got, _ := os.ReadFile(s.Path()); string(got) != string(before) {
		t.Fatal("Save that failed before its rename changed the state file")
	}
	if _, err := os.Stat(sawTemp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed Save left its temp file %s: %v", sawTemp, err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(s.dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(s.dir, 0o755) })
		if err := s.Save(sampleState(7)); err == nil {
			t.Fatal("Save into a read-only dir succeeded")
		}
		if got, _ := os.ReadFile(s.Path()); string(got) != string(before) {
			t.Fatal("failed Save into a read-only dir changed the state file")
		}
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, old) {
		t.Fatal("previous state not intact after failed Saves")
	}
}

// TestCrashMidSave: a Save that died after writing half its temp file leaves
// the state file as it was; Load ignores the temp file and New removes it.
func TestCrashMidSave(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := sampleState(4)
	if err := s.Save(old); err != nil {
		t.Fatal(err)
	}
	next, err := Encode(sampleState(40))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, FileName+".tmp-123")
	if err := os.WriteFile(tmp, next[:len(next)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil || !reflect.DeepEqual(got, old) {
		t.Fatalf("Load with a half-written temp file beside it: %v", err)
	}
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("New left the stale temp file: %v", err)
	}
}

func TestConcurrentSaves(t *testing.T) {
	s := newStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 1; i <= 16; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			if err := s.Save(sampleState(n)); err != nil {
				errs <- err
			}
			if _, err := s.Load(); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.Table.Assignments); n < 1 || n > 16 {
		t.Errorf("final state has %d rows, want one of the saved states", n)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{FileName, PreviousFileName}) {
		t.Errorf("state dir holds %v after concurrent saves, want only %s and %s", names, FileName, PreviousFileName)
	}
}

func TestReadTable(t *testing.T) {
	dir := t.TempDir()
	st := sampleState(3)
	s, _ := New(dir)
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(dir, "table.json")
	if err := os.WriteFile(bare, []byte(`{"generatedAt":"2026-11-01T12:00:00Z","assignments":[
		{"job":"b","cluster":"build02","reason":"balanced","demand":1,"assignedAt":"2026-11-01T12:00:00Z"},
		{"job":"a","cluster":"build01","reason":"pinned","demand":2,"assignedAt":"2026-11-01T12:00:00Z"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	typo := filepath.Join(dir, "typo.json")
	if err := os.WriteFile(typo, []byte(`{"assignmnets":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path    string
		wantJob []string
		wantErr string
	}{
		{s.Path(), []string{"job-000", "job-001", "job-002"}, ""},
		{bare, []string{"a", "b"}, ""},
		{typo, nil, "unknown field"},
		{filepath.Join(dir, "missing.json"), nil, "no such file"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			got, err := ReadTable(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var jobs []string
			for _, a := range got.Assignments {
				jobs = append(jobs, a.Job)
			}
			if !reflect.DeepEqual(jobs, tc.wantJob) {
				t.Errorf("jobs = %v, want %v", jobs, tc.wantJob)
			}
		})
	}
}

func BenchmarkSave(b *testing.B) {
	s, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	st := sampleState(30000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Save(st); err != nil {
			b.Fatal(err)
		}
	}
}
