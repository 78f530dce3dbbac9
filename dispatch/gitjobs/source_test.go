package gitjobs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/internal/gittest"
)

const (
	org, repo = "openshift", "release"
	jobsDir   = "ci-operator/jobs"
	cfgFile   = "core-services/sanitize-prow-jobs/_config.yaml"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url               string
		host, org, repo   string
		insecure, wantErr bool
	}{
		{url: "https://github.com/openshift/release", host: "github.com", org: "openshift", repo: "release"},
		{url: "http://127.0.0.1:8080/openshift/release.git", host: "127.0.0.1:8080", org: "openshift", repo: "release", insecure: true},
		{url: "git@github.com:openshift/release.git", wantErr: true},
		{url: "https://github.com/openshift", wantErr: true},
		{url: "https://github.com/a/b/c", wantErr: true},
	} {
		host, o, r, insecure, err := ParseURL(tc.url)
		if (err != nil) != tc.wantErr || host != tc.host || o != tc.org || r != tc.repo || insecure != tc.insecure {
			t.Errorf("ParseURL(%q) = %q %q %q %v %v", tc.url, host, o, r, insecure, err)
		}
	}
}

// TestSync: the first fetch puts the tree in force through the link, a
// fetch without a new commit changes nothing, a new commit is swapped in
// and announced, and a fetch that fails (the repository gone, or a
// revision lacking a path) keeps the last good tree and shows the error
// in Status and the metrics until a fetch works again. Only the sparse
// paths are checked out.
func TestSync(t *testing.T) {
	srv := gittest.NewServer(t, org, repo)
	commit := func(files map[string]string) { t.Helper(); srv.Commit(t, files) }
	commit(map[string]string{jobsDir + "/org/repo/a-presubmits.yaml": "v1", cfgFile: "default: build01\n", "other/big.bin": "not read"})

	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	var changes atomic.Int32
	s, err := New(Options{URL: srv.URL, Branch: "master", Paths: []string{jobsDir, cfgFile},
		Dir: dir, OnChange: func() { changes.Add(1) }, Logger: logr.Discard(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	read := func() string {
		t.Helper()
		b, err := os.ReadFile(s.Path(jobsDir + "/org/repo/a-presubmits.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sync := func(wantChanged bool) {
		t.Helper()
		changed, err := s.Sync(ctx)
		if err != nil || changed != wantChanged {
			t.Fatalf("Sync = %v, %v; want %v, nil", changed, err, wantChanged)
		}
	}

	sync(true)
	if got := read(); got != "v1" {
		t.Errorf("job file %q, want v1", got)
	}
	if _, err := os.Stat(s.Path(cfgFile)); err != nil {
		t.Errorf("the config file is not checked out: %v", err)
	}
	if _, err := os.Stat(s.Path("other/big.bin")); !os.IsNotExist(err) {
		t.Errorf("a path outside the sparse dirs is checked out: %v", err)
	}
	first := s.Status().Revision
	sync(false)

	commit(map[string]string{jobsDir + "/org/repo/a-presubmits.yaml": "v2"})
	sync(true)
	if got := read(); got != "v2" {
		t.Errorf("job file %q after a new commit, want v2", got)
	}
	if st := s.Status(); st.Revision == first || st.Error != "" || changes.Load() != 2 {
		t.Errorf("status %+v, %d changes announced; want a new revision, no error, 2 changes", st, changes.Load())
	}

	commit(map[string]string{jobsDir + "/org/repo/a-presubmits.yaml": "v3"})
	sync(true)
	if trees, err := os.ReadDir(filepath.Join(dir, "trees")); err != nil || len(trees) != 2 {
		t.Errorf("after 3 revisions, %d trees are kept (%v), want 2: the one in force and the one before", len(trees), err)
	}
	// A revision without the job config dir is refused.
	commit(map[string]string{jobsDir + "/org/repo/a-presubmits.yaml": ""})
	if _, err := s.Sync(ctx); err == nil || !strings.Contains(err.Error(), jobsDir) {
		t.Errorf("Sync of a revision without %s = %v, want an error naming it", jobsDir, err)
	}
	// The server down: the fetch fails.
	srv.SetDown(true)
	if _, err := s.Sync(ctx); err == nil {
		t.Error("Sync of a removed repository: no error")
	}
	st := s.Status()
	if got := read(); got != "v3" || st.Error == "" || st.Failures != 2 {
		t.Errorf("after failed fetches: job file %q, status %+v; want v3 kept, the error, 2 failures", got, st)
	}
	if got := testutil.ToFloat64(s.metrics.failing); got != 2 {
		t.Errorf("failing fetches metric %v, want 2", got)
	}
	if got := testutil.ToFloat64(s.metrics.fetches.WithLabelValues("error")); got != 2 {
		t.Errorf("error fetches %v, want 2", got)
	}
	if changes.Load() != 3 {
		t.Errorf("%d changes announced, want 3", changes.Load())
	}
}
