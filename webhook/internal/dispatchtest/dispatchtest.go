package dispatchtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
)

// ExamplesDir returns the module's docs/examples, found from the test's
// working directory (its package's directory) up to the go.mod.
func ExamplesDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "docs", "examples")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's working directory")
		}
		dir = parent
	}
}

// New returns a *dispatch.Dispatcher over the docs' example configs, with
// its state in a temporary directory and no table yet. edit, when set,
// changes the options first.
func New(t testing.TB, edit func(*dispatch.Options)) *dispatch.Dispatcher {
	t.Helper()
	ex := ExamplesDir(t)
	opts := dispatch.Options{
		DispatcherConfigPath: filepath.Join(ex, "dispatcher.yaml"),
		ClusterConfigPath:    filepath.Join(ex, "clusters.yaml"),
		JobConfigDir:         filepath.Join(ex, "jobs"),
		Demand:               demand.File{Path: filepath.Join(ex, "demand.yaml")},
		Logger:               logr.Discard(),
	}
	if edit != nil {
		edit(&opts)
	}
	st, err := store.NewBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := dispatch.New(context.Background(), opts, st)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
