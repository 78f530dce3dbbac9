package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// ErrCorrupt marks a state file that exists but cannot be trusted: bad JSON,
// an unknown version or a checksum mismatch.
var ErrCorrupt = errors.New("corrupt state file")

const (
	checksumPrefix = "sha256:"
	// tempGlob matches the temp files of every file the store writes (FILE.tmp-RANDOM).
	tempGlob = "*.tmp-*"
)

// rawJSON is json.RawMessage; named so the envelope documents itself.
type rawJSON = json.RawMessage

// Store reads and writes the state file of one state dir. Save and Load are
// safe for concurrent use; concurrent Saves are serialized, the last wins.
type Store struct {
	dir string
	mu  sync.Mutex
	// base is the checksum of the state file this Store last wrote or
	// loaded: the journal it writes extends that file.
	base string
	// beforeRename, when set (tests only), runs after the temp file is
	// written and synced; an error aborts the Save there.
	beforeRename func(tmp string) error
}

// New returns a store for dir, creating dir if needed and removing temp
// files a crashed Save left behind. It does not lock the dir: a process that
// writes there holds LockDir first.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("state dir: empty path")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", dir, err)
	}
	if stale, err := filepath.Glob(filepath.Join(dir, tempGlob)); err == nil {
		for _, p := range stale {
			_ = os.Remove(p) // best effort: Load never reads temp files anyway
		}
	}
	return &Store{dir: dir}, nil
}

// Path is the state file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// PreviousPath is the previous generation of the state file.
func (s *Store) PreviousPath() string { return filepath.Join(s.dir, PreviousFileName) }

// Load reads the state: the state file, the journal written since it if it
// extends this very file, and the files kept apart (overrides, admission
// counts, demand). A missing state file gives an error matching
// fs.ErrNotExist. A corrupt state file is moved aside (state.json.corrupt-
// TIME, never overwritten) and the previous generation is loaded instead;
// with no good previous generation Load gives what the other files hold and
// an error wrapping ErrCorrupt. State.Recovered says what was done. A
// journal, overrides, admission counts' or demand file that is corrupt is
// left out, with an error wrapping ErrCorrupt next to the rest of the state.
// A journal that extends another state file (a crash between a state file
// write and the journal write that follows it, or a fallback to the
// previous generation) is not applied.
func (s *Store) Load() (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, sum, err := readDir(s.dir)
	if err != nil && st == nil && errors.Is(err, ErrCorrupt) {
		st, sum, err = s.recover(err)
	}
	if st != nil {
		s.base = sum
	}
	return st, err
}

// recover moves a corrupt state file aside and reads the previous
// generation in its place. Callers hold mu.
func (s *Store) recover(bad error) (*State, string, error) {
	aside := fmt.Sprintf("%s.corrupt-%s", s.Path(), time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(s.Path(), aside); err != nil {
		return nil, "", errors.Join(bad, fmt.Errorf("moving the corrupt state file aside: %w", err))
	}
	_ = syncDir(s.dir)
	note := fmt.Sprintf("state file %s was corrupt (%v): moved aside to %s", s.Path(), bad, aside)
	prev, sum, err := readFile(s.PreviousPath())
	if err != nil {
		// Nothing to start from but what the files kept apart hold.
		st := &State{}
		others := s.readApart(st, "")
		st.Recovered = []string{note, fmt.Sprintf("no good previous generation (%v): starting without a table", err)}
		return st, "", errors.Join(append([]error{bad}, others...)...)
	}
	others := s.readApart(prev, sum)
	prev.Recovered = []string{note, fmt.Sprintf("started from the previous generation %s (dispatched %s)",
		s.PreviousPath(), prev.LastDispatch.UTC().Format(time.RFC3339))}
	return prev, sum, errors.Join(append([]error{bad}, others...)...)
}

// ReadDir reads the state a Store on dir would Load, without changing the
// dir (no temp file is removed, no corrupt file moved aside), so it is safe
// while a dispatcher writes there.
func ReadDir(dir string) (*State, error) {
	st, _, err := readDir(dir)
	return st, err
}

func readDir(dir string) (*State, string, error) {
	st, sum, err := readFile(filepath.Join(dir, FileName))
	if err != nil {
		return nil, "", err
	}
	errs := (&Store{dir: dir}).readApart(st, sum)
	return st, sum, errors.Join(errs...)
}

// readApart adds to st what the files beside the state file hold: the
// journal (when it extends the state file of checksum sum), the overrides,
// the admission counts and the demand. It returns the errors of the files
// it could not trust.
func (s *Store) readApart(st *State, sum string) []error {
	var errs []error
	switch j, err := readJournal(s.JournalPath()); {
	case err == nil && j.Base == sum:
		j.applyTo(st)
	case err == nil:
		// The state file is newer than the journal: nothing to apply.
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	migrate(st, time.Now())
	// The files kept apart are newer than what the state file and journal hold.
	var overrides []table.Override
	switch err := readEnvelope("overrides", s.OverridesPath(), &overrides); {
	case err == nil:
		st.Overrides = overrides
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	var drains []table.Drain
	switch err := readEnvelope("cluster overrides", s.DrainsPath(), &drains); {
	case err == nil:
		st.Drains = drains
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	var counts demand.AdmissionCounts
	switch err := readEnvelope("admission counts", s.AdmissionsPath(), &counts); {
	case err == nil:
		st.Admissions = &counts
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	var dm Demand
	switch err := readEnvelope("demand", s.DemandPath(), &dm); {
	case err == nil:
		st.Demand = &dm
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	return errs
}

// ReadFile reads a state file at any path, without its journal.
func ReadFile(path string) (*State, error) {
	st, _, err := readFile(path)
	return st, err
}

func readFile(path string) (*State, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("state file %s: %w", path, err)
	}
	return decode(path, data)
}

// Decode parses and verifies the bytes of a state file; name is used in errors.
func Decode(name string, data []byte) (*State, error) {
	st, _, err := decode(name, data)
	return st, err
}

// decode is Decode, also returning the file's checksum.
func decode(name string, data []byte) (*State, string, error) {
	raw, sum, err := openEnvelope("state file", name, data)
	if err != nil {
		return nil, "", err
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, "", fmt.Errorf("state file %s: %w: state: %v", name, ErrCorrupt, err)
	}
	return &st, sum, nil
}

// openEnvelope checks an envelope's version and checksum and returns its
// compacted content and checksum; what names the kind of file in errors.
func openEnvelope(what, name string, data []byte) ([]byte, string, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, "", fmt.Errorf("%s %s: %w: %v", what, name, ErrCorrupt, err)
	}
	if env.Version != Version {
		return nil, "", fmt.Errorf("%s %s: %w: version %d, want %d", what, name, ErrCorrupt, env.Version, Version)
	}
	if len(env.State) == 0 {
		return nil, "", fmt.Errorf("%s %s: %w: no state", what, name, ErrCorrupt)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, env.State); err != nil {
		return nil, "", fmt.Errorf("%s %s: %w: %v", what, name, ErrCorrupt, err)
	}
	if got := checksum(compact.Bytes()); got != env.Checksum {
		return nil, "", fmt.Errorf("%s %s: %w: checksum %q, content has %q", what, name, ErrCorrupt, env.Checksum, got)
	}
	return compact.Bytes(), env.Checksum, nil
}

// Encode returns the bytes of a state file holding st.
func Encode(st *State) ([]byte, error) {
	out, _, err := encode(st)
	return out, err
}

// encode is Encode, also returning the checksum.
func encode(v any) ([]byte, string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, "", fmt.Errorf("encode state: %w", err)
	}
	sum := checksum(raw)
	out, err := json.Marshal(envelope{Version: Version, Checksum: sum, State: raw})
	if err != nil {
		return nil, "", fmt.Errorf("encode state: %w", err)
	}
	return append(out, '\n'), sum, nil
}

// Save replaces the state file atomically: it writes a temp file in the same
// dir, fsyncs it, keeps the state file it replaces as the previous
// generation (state.prev.json, what Load falls back on when the state file
// is found corrupt), renames the temp file over the state file and fsyncs
// the dir. A failure at any step leaves the previous file untouched. A
// missing state dir is created again. The journal written before no longer
// applies (it extends the previous file; the state saved holds everything
// it held) and is removed.
func (s *Store) Save(st *State) error {
	data, sum, err := encode(st)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensureDir(); err != nil {
		return err
	}
	keepPrevious := func(tmp string) error {
		if s.beforeRename != nil {
			if err := s.beforeRename(tmp); err != nil {
				return err
			}
		}
		return s.keepPrevious()
	}
	if err := writeAtomic(s.dir, s.Path(), data, keepPrevious); err != nil {
		return err
	}
	s.base = sum
	// The journal extends the previous file, so Load would ignore it anyway;
	// removing it keeps the dir saying what it holds. A failure is harmless.
	_ = os.Remove(s.JournalPath())
	return nil
}

// keepPrevious makes the current state file, if any, the previous
// generation: a hard link renamed over state.prev.json, so the previous
// generation is replaced atomically too. Callers hold mu.
func (s *Store) keepPrevious() error {
	link := s.PreviousPath() + ".tmp-link"
	_ = os.Remove(link)
	if err := os.Link(s.Path(), link); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // no state file yet
		}
		return fmt.Errorf("state file %s: keeping the previous generation: %w", s.Path(), err)
	}
	if err := os.Rename(link, s.PreviousPath()); err != nil {
		_ = os.Remove(link)
		return fmt.Errorf("state file %s: keeping the previous generation: %w", s.Path(), err)
	}
	return nil
}

// ensureDir creates the state dir again if it was removed under a running
// dispatcher, so that saving recovers by itself. Callers hold mu.
func (s *Store) ensureDir() error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("state dir %s: %w", s.dir, err)
	}
	return nil
}

func writeAtomic(dir, path string, data []byte, beforeRename func(string) error) (err error) {
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("state file %s: create temp file: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("state file %s: write %s: %w", path, tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("state file %s: fsync %s: %w", path, tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("state file %s: close %s: %w", path, tmp.Name(), err)
	}
	if beforeRename != nil {
		if err = beforeRename(tmp.Name()); err != nil {
			return fmt.Errorf("state file %s: %w", path, err)
		}
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("state file %s: rename %s: %w", path, tmp.Name(), err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("state dir %s: fsync: %w", dir, err)
	}
	return nil
}

func checksum(b []byte) string {
	sum := sha256.Sum256(b)
	return checksumPrefix + hex.EncodeToString(sum[:])
}
