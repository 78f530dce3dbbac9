package dispatch

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// watcher reports changes to the dispatcher config, the cluster config and
// the job config. It watches the configs' dirs, not the files, because a
// ConfigMap mount replaces files by swapping a "..data" symlink, and the job
// config dir tree, adding dirs as they appear.
type watcher struct {
	fs      *fsnotify.Watcher
	jobDir  string
	configs map[string]bool // the config files' clean paths
}

func newWatcher(dispatcherConfig, clusterConfig, jobDir string) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	w := &watcher{fs: fw, jobDir: filepath.Clean(jobDir), configs: map[string]bool{
		filepath.Clean(dispatcherConfig): true, filepath.Clean(clusterConfig): true,
	}}
	for p := range w.configs {
		if err := fw.Add(filepath.Dir(p)); err != nil {
			_ = fw.Close()
			return nil, fmt.Errorf("watch %s: %w", filepath.Dir(p), err)
		}
	}
	if err := w.addTree(w.jobDir); err != nil {
		_ = fw.Close()
		return nil, err
	}
	return w, nil
}

// addTree watches dir and every dir below it.
func (w *watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil // removed while we walked
			}
			return fmt.Errorf("watch %s: %w", p, err)
		}
		if !e.IsDir() {
			return nil
		}
		if err := w.fs.Add(p); err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	})
}

// relevant reports whether the event may change an input (and watches new
// dirs of the job config tree).
func (w *watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Clean(ev.Name)
	if name == w.jobDir || strings.HasPrefix(name, w.jobDir+string(filepath.Separator)) {
		if ev.Has(fsnotify.Create) {
			_ = w.addTree(name) // a new dir; a plain file is skipped by the walk
		}
		return true
	}
	if w.configs[name] {
		return true
	}
	// A ConfigMap update: "..data" and its timestamped target dir are replaced.
	return strings.HasPrefix(filepath.Base(name), "..")
}

func (w *watcher) close() error { return w.fs.Close() }
