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
)

// ErrCorrupt marks a state file that exists but cannot be trusted: bad JSON,
// an unknown version or a checksum mismatch.
var ErrCorrupt = errors.New("corrupt state file")

const (
	checksumPrefix = "sha256:"
	tempPattern    = FileName + ".tmp-*"
)

// rawJSON is json.RawMessage; named so the envelope documents itself.
type rawJSON = json.RawMessage

// Store reads and writes the state file of one state dir. Save and Load are
// safe for concurrent use; concurrent Saves are serialized, the last wins.
type Store struct {
	dir string
	mu  sync.Mutex
	// beforeRename, when set (tests only), runs after the temp file is
	// written and synced; an error aborts the Save there.
	beforeRename func(tmp string) error
}

// New returns a store for dir, creating dir if needed and removing temp
// files a crashed Save left behind.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("state dir: empty path")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", dir, err)
	}
	if stale, err := filepath.Glob(filepath.Join(dir, tempPattern)); err == nil {
		for _, p := range stale {
			_ = os.Remove(p) // best effort: Load never reads temp files anyway
		}
	}
	return &Store{dir: dir}, nil
}

// Path is the state file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// Load reads the state file. A missing file gives an error matching
// fs.ErrNotExist; an untrustworthy one an error wrapping ErrCorrupt.
func (s *Store) Load() (*State, error) {
	return ReadFile(s.Path())
}

// ReadFile reads a state file at any path (Load's rules apply).
func ReadFile(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return Decode(path, data)
}

// Decode parses and verifies the bytes of a state file; name is used in errors.
func Decode(name string, data []byte) (*State, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("state file %s: %w: %v", name, ErrCorrupt, err)
	}
	if env.Version != Version {
		return nil, fmt.Errorf("state file %s: %w: version %d, want %d", name, ErrCorrupt, env.Version, Version)
	}
	if len(env.State) == 0 {
		return nil, fmt.Errorf("state file %s: %w: no state", name, ErrCorrupt)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, env.State); err != nil {
		return nil, fmt.Errorf("state file %s: %w: %v", name, ErrCorrupt, err)
	}
	if got := checksum(compact.Bytes()); got != env.Checksum {
		return nil, fmt.Errorf("state file %s: %w: checksum %q, content has %q", name, ErrCorrupt, env.Checksum, got)
	}
	var st State
	if err := json.Unmarshal(compact.Bytes(), &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w: state: %v", name, ErrCorrupt, err)
	}
	return &st, nil
}

// Encode returns the bytes of a state file holding st.
func Encode(st *State) ([]byte, error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	out, err := json.Marshal(envelope{Version: Version, Checksum: checksum(raw), State: raw})
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return append(out, '\n'), nil
}

// Save replaces the state file atomically: it writes a temp file in the same
// dir, fsyncs it, renames it over the state file and fsyncs the dir. A
// failure at any step leaves the previous file untouched.
func (s *Store) Save(st *State) error {
	data, err := Encode(st)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return writeAtomic(s.dir, s.Path(), data, s.beforeRename)
}

func writeAtomic(dir, path string, data []byte, beforeRename func(string) error) (err error) {
	tmp, err := os.CreateTemp(dir, tempPattern)
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
