package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
)

func parseBackupFlags(t *testing.T, args ...string) (*backupFlags, error) {
	t.Helper()
	var f backupFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &f, f.Validate()
}

func TestBackupFlagErrors(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // "" for valid
	}{
		{name: "off", args: nil},
		{name: "off ignores the rest", args: []string{"--backup-interval", "0"}},
		{name: "valid", args: []string{"--backup-repo", "openshift/release", "--github-token-path", token, "--backup-labels", "lgtm, approved,"}},
		{name: "dry run needs no token", args: []string{"--backup-repo", "openshift/release", "--backup-dry-run"}},
		{name: "no token", args: []string{"--backup-repo", "openshift/release"}, want: "needs --github-token-path"},
		{name: "repo form", args: []string{"--backup-repo", "release", "--backup-dry-run"}, want: `--backup-repo "release": want org/repo`},
		{name: "repo too deep", args: []string{"--backup-repo", "a/b/c", "--backup-dry-run"}, want: "want org/repo"},
		{name: "same branches", args: []string{"--backup-repo", "o/r", "--backup-dry-run", "--backup-branch", "master"}, want: "two different branches"},
		{name: "interval", args: []string{"--backup-repo", "o/r", "--backup-dry-run", "--backup-interval", "0s"}, want: "--backup-interval 0s"},
		{name: "retry delay", args: []string{"--backup-repo", "o/r", "--backup-dry-run", "--backup-retry-delay", "-1s"}, want: "--backup-retry-delay -1s"},
		{name: "github endpoint", args: []string{"--backup-repo", "o/r", "--backup-dry-run", "--github-endpoint", "not a url"}, want: "github-endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseBackupFlags(t, tc.args...)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				if tc.name == "valid" && strings.Join(f.parsedLabels, ",") != "lgtm,approved" {
					t.Errorf("labels %q, want lgtm,approved", f.parsedLabels)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestBackupBuild: without --backup-repo there is no backup; with it, build
// makes no network call (GitHub is only asked when a backup runs), and its
// temporary git cache is removed by the cleanup it returns.
func TestBackupBuild(t *testing.T) {
	farm := func() map[string]map[string]*config.BuildFarmCluster { return nil }
	f, err := parseBackupFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	b, cleanup, err := f.build(farm, nil, logr.Discard(), io.Discard, io.Discard)
	if b != nil || err != nil {
		t.Fatalf("without --backup-repo: %v, %v; want no backup", b, err)
	}
	cleanup()

	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(t.TempDir(), "cache")
	// An endpoint nothing listens on: build must not call it.
	f, err = parseBackupFlags(t, "--backup-repo", "openshift/release", "--github-token-path", token,
		"--github-endpoint", "http://127.0.0.1:1", "--backup-cache-dir", cache, "--backup-labels", "lgtm")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	b, cleanup, err = f.build(farm, reg, logr.Discard(), io.Discard, io.Discard)
	if err != nil || b == nil {
		t.Fatalf("build: %v, %v", b, err)
	}
	defer cleanup()
	if st := b.Status(); st.Repo != "openshift/release:core-services/sanitize-prow-jobs/_config.yaml" || st.Pending || st.DryRun {
		t.Errorf("status of a new backup: %+v", st)
	}
	if _, err := os.Stat(cache); err != nil {
		t.Errorf("--backup-cache-dir not created: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "prowjob_dispatcher_backup_runs_total"
	}
	if !found {
		t.Error("prowjob_dispatcher_backup_runs_total is not registered")
	}
}
