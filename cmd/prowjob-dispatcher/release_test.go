package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// releaseFixture is shaped like openshift/release's real dispatcher inputs.
const releaseFixture = "../../dispatch/testdata/openshift-release"

func releaseArgs(extra ...string) []string {
	return append([]string{
		"--dispatcher-config", filepath.Join(releaseFixture, "_config.yaml"),
		"--cluster-config", filepath.Join(releaseFixture, "_clusters.yaml"),
		"--job-config", filepath.Join(releaseFixture, "jobs"),
	}, extra...)
}

// TestPlanLoadsTheOpenShiftReleaseConfig: plan accepts the real config's
// shape and shows app.ci and the pinned vsphere02 as service clusters.
func TestPlanLoadsTheOpenShiftReleaseConfig(t *testing.T) {
	stdout, stderr, err := runPlanTest(t, releaseArgs()...)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, stderr)
	}
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == "app.ci" || f[0] == "vsphere02") && f[len(f)-1] != "service" {
			t.Errorf("service cluster line %q lacks its role", line)
		}
	}
	if !strings.Contains(stdout, "app.ci") || !strings.Contains(stdout, "318 jobs") {
		t.Errorf("plan output:\n%s", stdout)
	}
}

// TestServeLoadsTheOpenShiftReleaseConfig: serve starts on the real
// config's shape, and /api/v1/clusters lists app.ci with its role.
func TestServeLoadsTheOpenShiftReleaseConfig(t *testing.T) {
	ports := freePorts(t, 3)
	dir := t.TempDir()
	srv := startServe(t, releaseArgs(
		"--state-dir", filepath.Join(dir, "state"), "--cert-dir", filepath.Join(dir, "certs"), "--self-signed",
		"--bind-address", "127.0.0.1", "--insecure-allow-unauthenticated",
		"--webhook-port", strconv.Itoa(ports[0]), "--api-port", strconv.Itoa(ports[1]), "--probe-port", strconv.Itoa(ports[2]),
	), ports[2])
	defer srv.stop(t)
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(ports[1]) + "/api/v1/clusters")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var clusters []api.ClusterStatus
	if err := json.NewDecoder(resp.Body).Decode(&clusters); err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, c := range clusters {
		roles[c.Name] = c.Role
	}
	if roles["app.ci"] != "service" || roles["build01"] != "build" || roles["vsphere02"] != "service" {
		t.Errorf("roles %v, want app.ci and vsphere02 service, build01 build", roles)
	}
	if !strings.Contains(srv.stderr.String(), `"clusters":"app.ci,vsphere02"`) {
		t.Errorf("no log line naming the service clusters:\n%s", srv.stderr.String())
	}
}
