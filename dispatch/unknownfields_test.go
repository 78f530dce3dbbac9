package dispatch

import (
	"context"
	"os"
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
