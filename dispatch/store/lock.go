package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DirLock is the exclusive lock a process holds on a state dir while it
// writes there, so that two dispatchers never overwrite each other's state.
type DirLock struct {
	f *os.File
}

// LockDir takes the exclusive lock on dir (creating dir if needed) and
// writes the holder's pid, host and start time into the lock file. When
// another process holds it, LockDir fails at once with an error naming that
// holder. The lock is released by Release or when the process ends, however
// it ends.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: lock: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state dir %s is in use by another prowjob-dispatcher (%s): two processes on one state dir would overwrite each other's state",
				dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("state dir %s: lock %s: %w", dir, path, err)
	}
	host, _ := os.Hostname()
	stamp := fmt.Sprintf("pid %d on host %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(stamp), 0)
	}
	return &DirLock{f: f}, nil
}

// Release lets another process take the lock.
func (l *DirLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}
