package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// ErrNoStateFile is SaveJournal's error when no state file was saved or
// loaded yet: a journal extends one.
var ErrNoStateFile = errors.New("no state file to extend: save the state first")

// Journal is what changed since the state file was written: the rows set
// since (assignments made at admission, jobs placed anew by a reschedule)
// and the overrides and admission-time jobs as they are now. It is small
// next to a state file holding tens of thousands of rows, so the frequent
// changes are saved by writing it alone; a full Save folds it in.
//
// Crash safety: each file is replaced atomically, and the journal names the
// state file it extends by its checksum. A crash while either is written
// leaves the previous version of that file. A crash after a state file write
// and before the next journal write leaves a journal that names an older
// state file: Load ignores it, and loses nothing, since the state file was
// written from the dispatcher's whole state.
type Journal struct {
	// Base is the checksum of the state file this journal extends; SaveJournal sets it.
	Base string `json:"base"`
	// Rows are the assignments set since the state file was written, by job.
	Rows []table.Assignment `json:"rows,omitempty"`
	// Provisional replaces the state file's provisional jobs.
	Provisional []Provisional `json:"provisional,omitempty"`
	// Overrides and DeltaJobs are what journals of older releases held;
	// Load still applies them (overrides.json, when there is one, wins).
	Overrides []table.Override `json:"overrides,omitempty"`
	DeltaJobs []jobs.Job       `json:"deltaJobs,omitempty"`
}

// SaveJournal replaces the journal atomically, as an extension of the state
// file last saved or loaded. Without one there is nothing to extend: it fails.
func (s *Store) SaveJournal(j *Journal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base == "" {
		return fmt.Errorf("journal %s: %w", s.JournalPath(), ErrNoStateFile)
	}
	if err := s.ensureDir(); err != nil {
		return err
	}
	if _, err := os.Stat(s.Path()); errors.Is(err, fs.ErrNotExist) {
		s.base = "" // the state file is gone (its dir was removed): save it again first
		return fmt.Errorf("journal %s: the state file %s is gone: %w", s.JournalPath(), s.Path(), ErrNoStateFile)
	}
	stamped := *j
	stamped.Base = s.base
	data, _, err := encode(&stamped)
	if err != nil {
		return err
	}
	return writeAtomic(s.dir, s.JournalPath(), data, s.beforeRename)
}

// readJournal reads and verifies a journal file.
func readJournal(path string) (*Journal, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	raw, _, err := openEnvelope("journal", path, data)
	if err != nil {
		return nil, err
	}
	var j Journal
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("journal %s: %w: %v", path, ErrCorrupt, err)
	}
	if j.Base == "" {
		return nil, fmt.Errorf("journal %s: %w: no base", path, ErrCorrupt)
	}
	return &j, nil
}

// applyTo folds the journal into st: its rows replace or join the table's,
// its overrides and admission-time jobs replace the state file's.
func (j *Journal) applyTo(st *State) {
	st.Provisional = j.Provisional
	if j.Overrides != nil || j.DeltaJobs != nil { // an older release's journal
		st.Overrides, st.DeltaJobs = j.Overrides, j.DeltaJobs
	}
	st.JournalRows = len(j.Rows)
	if len(j.Rows) == 0 {
		return
	}
	if st.Table == nil {
		st.Table = &table.Table{}
	}
	at := make(map[string]int, len(st.Table.Assignments))
	for i, a := range st.Table.Assignments {
		at[a.Job] = i
	}
	for _, a := range j.Rows {
		if i, ok := at[a.Job]; ok {
			st.Table.Assignments[i] = a
		} else {
			st.Table.Assignments = append(st.Table.Assignments, a)
		}
	}
	st.Table.Sort()
}
