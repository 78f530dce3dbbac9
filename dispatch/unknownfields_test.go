package dispatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
)

// TestUnknownConfigFields: a key of the cluster config this version does not
// know (ipCapacity, which ci-tools adds) is ignored; it is named in Status
// (/readyz), in a metric and once in the log, however many dispatches run,
// and goes from all three when the file drops it.
func TestUnknownConfigFields(t *testing.T) {
	e := newEnv(t)
	data, err := os.ReadFile(e.clusterConfig)
	if err != nil {
		t.Fatal(err)
	}
	withIP := strings.Replace(string(data), "- name: build03\n", "- name: build03\n  ipCapacity: 40\n", 1)
	writeFile(t, e.clusterConfig, withIP)

	var mu sync.Mutex
	logged := 0
	opts := e.options()
	opts.Logger = funcr.New(func(_, args string) {
		if strings.Contains(args, "aws[1].ipCapacity") {
			mu.Lock()
			logged++
			mu.Unlock()
		}
	}, funcr.Options{})
	d := e.newDispatcher(opts)
	e.dispatch(d)
	e.dispatch(d)

	field := "cluster config " + e.clusterConfig + ": aws[1].ipCapacity"
	if diff := cmp.Diff([]string{field}, d.Status().UnknownFields); diff != "" {
		t.Errorf("Status().UnknownFields (-want +got):\n%s", diff)
	}
	if got := e.metricValue("prowjob_dispatcher_config_unknown_field", "file", e.clusterConfig, "field", "aws[1].ipCapacity"); got != 1 {
		t.Errorf("prowjob_dispatcher_config_unknown_field = %v, want 1", got)
	}
	if got := e.metricValue("prowjob_dispatcher_config_unknown_fields"); got != 1 {
		t.Errorf("prowjob_dispatcher_config_unknown_fields = %v, want 1", got)
	}
	mu.Lock()
	if logged != 1 {
		t.Errorf("the unknown field was logged %d times over a start and two dispatches, want once", logged)
	}
	mu.Unlock()
	if a := mustLookup(t, d, "periodic-import-to-build03"); a.Cluster == "" {
		t.Errorf("jobs are not dispatched with the unknown field: %+v", a)
	}

	writeFile(t, e.clusterConfig, string(data))
	if _, err := d.Dispatch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := d.Status().UnknownFields; len(got) != 0 {
		t.Errorf("Status().UnknownFields = %v after the key was dropped", got)
	}
	if got := e.metricValue("prowjob_dispatcher_config_unknown_fields"); got != 0 {
		t.Errorf("prowjob_dispatcher_config_unknown_fields = %v after the key was dropped, want 0", got)
	}
}

// TestFlatJobConfigNamesUnmatchablePaths: on a flat job config (a
// ConfigMap keys files by base name) a group path regex naming a dir can
// never match; the load says so in Status (/readyz) and the dispatch goes
// on. The same config on the tree has no such note.
func TestFlatJobConfigNamesUnmatchablePaths(t *testing.T) {
	for _, flat := range []bool{false, true} {
		t.Run(fmt.Sprintf("flat=%v", flat), func(t *testing.T) {
			e := newEnv(t)
			data, err := os.ReadFile(e.dispatcherConfig)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, e.dispatcherConfig, strings.Replace(string(data), "groups:\n", "groups:\n  build02:\n    paths: [\"^org/repo/\"]\n", 1))
			if flat {
				for _, f := range []string{"org/repo/org-repo-main-postsubmits.yaml", "org/repo/org-repo-main-presubmits.yaml", "periodics/periodics.yaml"} {
					if err := os.Rename(filepath.Join(e.jobDir, f), filepath.Join(e.jobDir, filepath.Base(f))); err != nil {
						t.Fatal(err)
					}
				}
				for _, dir := range []string{"org", "periodics"} {
					if err := os.RemoveAll(filepath.Join(e.jobDir, dir)); err != nil {
						t.Fatal(err)
					}
				}
			}
			d := e.newDispatcher(e.options())
			e.dispatch(d)
			got := d.Status().UnmatchablePaths
			if !flat {
				if len(got) != 0 {
					t.Errorf("UnmatchablePaths %q on a tree, want none", got)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0], `groups["build02"].paths[0]: path regex "^org/repo/"`) {
				t.Errorf("UnmatchablePaths %q, want the group's regex named", got)
			}
		})
	}
}

// TestRefreshBeforeDispatch: Options.Refresh runs before each full
// dispatch, so a change it brings (the job config fetched from Git) is in
// that dispatch; a failing refresh leaves the dispatch on the files on disk.
func TestRefreshBeforeDispatch(t *testing.T) {
	e := newEnv(t)
	opts := e.options()
	var fail bool
	pinned := ""
	opts.Refresh = func(context.Context) error {
		if fail {
			return fmt.Errorf("fetch failed")
		}
		if pinned != "" {
			writeFile(t, e.dispatcherConfig, strings.Replace(readFile(t, e.dispatcherConfig), "  build03:\n", "  "+pinned+":\n", 1))
		}
		return nil
	}
	d := e.newDispatcher(opts)
	e.dispatch(d)
	if a := mustLookup(t, d, "periodic-import-to-build03"); a.Cluster != "build03" {
		t.Fatalf("group job on %s, want build03", a.Cluster)
	}
	pinned = "build01"
	e.dispatch(d)
	if a := mustLookup(t, d, "periodic-import-to-build03"); a.Cluster != "build01" {
		t.Errorf("after a refresh that moved the group, the job is on %s, want build01", a.Cluster)
	}
	fail = true
	if _, err := d.Dispatch(context.Background()); err != nil {
		t.Errorf("a failing refresh failed the dispatch: %v", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
