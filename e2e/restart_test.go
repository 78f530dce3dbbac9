package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// TestRestartKeepsState SIGKILLs the dispatcher and restarts it on the same
// state dir: every assignment, the override and a job assigned at admission
// (not in the job config) are back.
func TestRestartKeepsState(t *testing.T) {
	sc := newScenario(t, "restart", scenarioOptions{})
	ctx := testContext(t)

	overridden, newJob := jobAPIVerify, "pull-ci-openshift-newcomer-main-unit"
	from := sc.assignment(overridden).Cluster
	to := "build03"
	if from == to {
		to = "build02"
	}
	if _, err := sc.d.API.Reschedule(ctx, api.RescheduleRequest{Job: overridden, Cluster: to, Reason: "e2e restart"}); err != nil {
		t.Fatalf("reschedule %s -> %s: %v", overridden, to, err)
	}
	newJobCluster := sc.admit(newJob)

	before := map[string]string{}
	for job := range demand {
		if a := sc.assignmentOrNil(job); a != nil {
			before[job] = a.Cluster
		}
	}
	before[newJob] = newJobCluster

	// A SIGKILL loses what is not on disk; wait until the admission-time job is.
	eventually(t, 10*time.Second, "the state dir records "+newJob, func() error {
		return stateMentions(sc.d.StateDir, newJob)
	})
	sc.d.Kill()
	d, err := sc.d.Restart(ctx)
	if err != nil {
		t.Fatalf("restarting on the same state dir: %v", err)
	}
	sc.d = d
	t.Cleanup(d.Kill)
	// The new process listens on new ports.
	sc.registerWebhook(d.WebhookURL)
	sc.waitWebhookActive()

	for job, was := range before {
		a := sc.assignmentOrNil(job)
		if a == nil {
			t.Errorf("%s: unknown after restart, was on %s", job, was)
			continue
		}
		if a.Cluster != was {
			t.Errorf("%s: on %s after restart, was on %s", job, a.Cluster, was)
		}
	}
	if a := sc.assignment(overridden); a.Override == nil || a.Override.Cluster != to {
		t.Errorf("%s: override lost across the restart: %+v", overridden, a.Override)
	}
	var overrides []table.Override
	if err := getJSON(ctx, d.APIURL+api.OverridesPath, &overrides); err != nil {
		t.Fatalf("GET overrides: %v", err)
	}
	if len(overrides) != 1 || overrides[0].Job != overridden || overrides[0].Cluster != to {
		t.Errorf("overrides after restart: %+v, want the one of %s to %s", overrides, overridden, to)
	}
	if got := sc.admit(overridden); got != to {
		t.Errorf("after the restart, a ProwJob of the rescheduled %s landed on %q, want %s", overridden, got, to)
	}
}

// stateMentions reports whether some file under dir contains s.
func stateMentions(dir, s string) error {
	found := false
	err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || found {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(data), s) {
			found = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no file under %s mentions %q", dir, s)
	}
	return nil
}
