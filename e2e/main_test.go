// Package e2e proves prowjob-dispatcher end to end: ProwJobs created through
// a real kube-apiserver (envtest) are admitted by the dispatcher binary
// running as its own process, with demand read from a real Prometheus.
//
// The suite runs when E2E=1 (make e2e) and is skipped otherwise, so that
// `go test ./...` stays fast. See README.md.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
)

// env is the shared part of the suite, set up once by TestMain. It is nil
// when the suite is skipped.
var env *suite

type suite struct {
	assets    *framework.Assets
	api       *framework.APIServer
	prom      *framework.Prometheus
	workDir   string
	moduleDir string
	// blocks is the generated TSDB, copied for each Prometheus.
	blocks  string
	history framework.History

	buildOnce sync.Once
	bin       string
	buildErr  error
	skip      string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Getenv("E2E") != "1" {
		reason := "E2E=1 not set"
		if _, err := framework.FindAssets(); err == nil {
			reason += " (assets found: run with E2E=1, or make e2e)"
		}
		env = &suite{skip: reason}
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := setUp(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: setting up: %v\n", err)
		if s != nil {
			s.tearDown()
		}
		return 1
	}
	env = s
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "e2e: failed; process logs kept in %s\n", s.workDir)
		s.workDir = ""
	}
	s.tearDown()
	return code
}

// setUp finds the assets, starts the API server and a Prometheus with 14 days
// of job history, and starts building the binary.
func setUp(ctx context.Context) (*suite, error) {
	assets, err := framework.FindAssets()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "prowjob-dispatcher-e2e-")
	if err != nil {
		return nil, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	s := &suite{assets: assets, workDir: work, moduleDir: filepath.Dir(wd)}
	fmt.Fprintf(os.Stderr, "e2e: work dir %s (kept on failure, or with E2E_KEEP=1)\n", work)
	// The binary builds while the control plane starts.
	go s.binary()

	crds, err := filepath.Glob(filepath.Join(wd, "testdata", "crds", "*.yaml"))
	if err != nil {
		return s, err
	}
	start := time.Now()
	if s.api, err = framework.StartAPIServer(ctx, assets.Dir, work, crds...); err != nil {
		return s, err
	}
	fmt.Fprintf(os.Stderr, "e2e: kube-apiserver and etcd up with the ProwJob CRD in %s\n", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	end := time.Now().Add(-time.Minute).Truncate(time.Minute)
	s.history = framework.History{Demand: demand, Start: end.Add(-14 * 24 * time.Hour), End: end}
	s.blocks = filepath.Join(work, "tsdb-template")
	if err := s.history.CreateBlocks(ctx, assets.Promtool, s.blocks); err != nil {
		return s, err
	}
	if s.prom, err = s.startPrometheus(ctx, "shared"); err != nil {
		return s, err
	}
	fmt.Fprintf(os.Stderr, "e2e: Prometheus with 14 days of history up at %s in %s\n", s.prom.URL, time.Since(start).Round(time.Millisecond))
	return s, nil
}

// startPrometheus starts a Prometheus on a fresh copy of the generated history.
func (s *suite) startPrometheus(ctx context.Context, name string) (*framework.Prometheus, error) {
	dir := filepath.Join(s.workDir, "prometheus-"+name)
	if err := framework.CopyDir(s.blocks, dir); err != nil {
		return nil, fmt.Errorf("copying the history for %s: %w", name, err)
	}
	return framework.StartPrometheus(ctx, s.assets.Prometheus, dir, s.workDir)
}

// binary builds the dispatcher once, or takes E2E_BINARY when set.
func (s *suite) binary() (string, error) {
	s.buildOnce.Do(func() {
		if bin := os.Getenv("E2E_BINARY"); bin != "" {
			s.bin, s.buildErr = filepath.Abs(bin)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		s.bin, s.buildErr = framework.BuildBinary(ctx, s.moduleDir, s.workDir)
		fmt.Fprintf(os.Stderr, "e2e: built prowjob-dispatcher in %s (err=%v)\n", time.Since(start).Round(time.Millisecond), s.buildErr)
	})
	return s.bin, s.buildErr
}

func (s *suite) tearDown() {
	if s.prom != nil {
		s.prom.Kill()
	}
	if s.api != nil {
		if err := s.api.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: stopping the API server: %v\n", err)
		}
	}
	if s.workDir != "" && os.Getenv("E2E_KEEP") == "" {
		os.RemoveAll(s.workDir)
	}
}

// require returns the suite, skipping the test when the suite does not run.
func require(t *testing.T) *suite {
	t.Helper()
	if env == nil || env.skip != "" {
		reason := "suite not set up"
		if env != nil {
			reason = env.skip
		}
		t.Skip("e2e: " + reason)
	}
	return env
}

// requireBinary returns the dispatcher binary, failing the test if it does not build.
func (s *suite) requireBinary(t *testing.T) string {
	t.Helper()
	bin, err := s.binary()
	if err != nil {
		t.Fatalf("the dispatcher binary does not build: %v", err)
	}
	return bin
}
