package engine_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// now is the time of the fixture inputs.
var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// usableFixture are the fixture's usable clusters: not blocked, not manual.
var usableFixture = []string{"build01", "build02", "build03", "build05"}

// fixture returns an input over testdata/dispatcher.json and testdata/clusters.json with the given jobs.
func fixture(t testing.TB, js ...jobs.Job) engine.Input {
	t.Helper()
	var dc config.DispatcherConfig
	readJSON(t, "dispatcher.json", &dc)
	var providers map[string][]config.Cluster
	readJSON(t, "clusters.json", &providers)
	for p, list := range providers {
		for i := range list {
			list[i].Provider = p
		}
	}
	return engine.Input{
		Jobs:      js,
		Config:    &dc,
		Clusters:  &config.Clusters{Providers: providers},
		Demand:    map[string]float64{},
		Overrides: map[string]table.Override{},
		Now:       now,
	}
}

func readJSON(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("testdata/%s: %v", name, err)
	}
}

// job returns a kubernetes job in its own file.
func job(name string) jobs.Job {
	return jobs.Job{Name: name, File: "openshift/" + name + "-presubmits.yaml", Agent: jobs.Agent}
}

// dispatch runs New and Dispatch, failing the test on error.
func dispatch(t testing.TB, in engine.Input) (*engine.Engine, *table.Table, *engine.Report) {
	t.Helper()
	e, err := engine.New(in)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tb, rep, err := e.Dispatch()
	if err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	return e, tb, rep
}

// usableOf returns the usable clusters of a report.
func usableOf(rep *engine.Report) []string {
	var out []string
	for _, c := range rep.Clusters {
		if c.Capacity > 0 && !c.Blocked && !c.Manual {
			out = append(out, c.Name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
