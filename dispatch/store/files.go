package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// The small files kept apart from the state file, each written on its own
// schedule and each versioned, checksummed and replaced atomically like it.

// OverridesPath is the overrides' file.
func (s *Store) OverridesPath() string { return filepath.Join(s.dir, OverridesFileName) }

// DrainsPath is the cluster overrides' file.
func (s *Store) DrainsPath() string { return filepath.Join(s.dir, DrainsFileName) }

// SaveDrains replaces the cluster overrides' file; it is written
// on every drain, cap and cancel.
func (s *Store) SaveDrains(overrides []table.Drain) error {
	if overrides == nil {
		overrides = []table.Drain{}
	}
	return s.saveApart(s.DrainsPath(), overrides)
}

// AdmissionsPath is the admission counts' file.
func (s *Store) AdmissionsPath() string { return filepath.Join(s.dir, AdmissionsFileName) }

// DemandPath is the last good demand's file.
func (s *Store) DemandPath() string { return filepath.Join(s.dir, DemandFileName) }

// JournalPath is the journal's path.
func (s *Store) JournalPath() string { return filepath.Join(s.dir, JournalFileName) }

// SaveOverrides replaces the overrides' file. It is written on every
// override change, so an override outlives any damage to the state file.
func (s *Store) SaveOverrides(overrides []table.Override) error {
	if overrides == nil {
		overrides = []table.Override{}
	}
	return s.saveApart(s.OverridesPath(), overrides)
}

// SaveAdmissions replaces the admission counts' file. The counts (per day
// and job, for the demand window) are kept apart from the state file so
// that counting them, each minute, never rewrites the table.
func (s *Store) SaveAdmissions(c *demand.AdmissionCounts) error {
	return s.saveApart(s.AdmissionsPath(), c)
}

// SaveDemand replaces the last good demand's file.
func (s *Store) SaveDemand(d *Demand) error {
	return s.saveApart(s.DemandPath(), d)
}

func (s *Store) saveApart(path string, v any) error {
	data, _, err := encode(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensureDir(); err != nil {
		return err
	}
	return writeAtomic(s.dir, path, data, s.beforeRename)
}

// readEnvelope reads and verifies the file at path into v; what names the
// kind of file in errors. A missing file matches fs.ErrNotExist.
func readEnvelope(what, path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	raw, _, err := openEnvelope(what, path, data)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s %s: %w: %v", what, path, ErrCorrupt, err)
	}
	return nil
}
