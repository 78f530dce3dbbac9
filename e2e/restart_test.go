package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
	var overrides []api.Override
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

// stateMentions reports whether some state file under dir contains s. A
// temp file (FILE.tmp-RANDOM) does not count: a SIGKILL before its rename
// leaves the file it was to replace, and the start removes it.
func stateMentions(dir, s string) error {
	found := false
	err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || found || strings.Contains(e.Name(), ".tmp-") {
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

// TestKillDuringWrites SIGKILLs the dispatcher while it is writing its state
// (reschedules and full dispatches in flight, each saving the state file),
// several rounds in a row. Every restart must load a good state file, and
// every reschedule the dispatcher acknowledged must be there: the override
// in force is the last acknowledged one or the one in flight at the kill.
func TestKillDuringWrites(t *testing.T) {
	sc := newScenario(t, "kill-writes", scenarioOptions{})
	ctx := testContext(t)
	rescheduled := []string{jobOriginUnit, jobInstallerUnit, jobConsoleUnit, jobAPIVerify, jobNightly}
	type attempt struct{ acked, inFlight string } // override reasons
	last := map[string]*attempt{}
	for _, job := range rescheduled {
		last[job] = &attempt{}
	}
	const rounds = 4
	for round := range rounds {
		d := sc.d
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			stop = make(chan struct{})
			acks int
		)
		wg.Add(1)
		go func() { // full dispatches, each saving the whole table
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = d.API.Dispatch(ctx)
			}
		}()
		for _, job := range rescheduled {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					reason := fmt.Sprintf("round %d attempt %d", round, i)
					mu.Lock()
					last[job].inFlight = reason
					mu.Unlock()
					if _, err := d.API.Reschedule(ctx, api.RescheduleRequest{Job: job, Reason: reason}); err != nil {
						return // the process is gone
					}
					mu.Lock()
					last[job].acked = reason
					acks++
					mu.Unlock()
				}
			}()
		}
		// Let writes pile up for a while that differs each round, then kill.
		time.Sleep(time.Duration(300+137*round) * time.Millisecond)
		d.Kill()
		close(stop)
		wg.Wait()
		if acks == 0 {
			t.Fatalf("round %d: no reschedule was acknowledged before the kill; the test proves nothing", round)
		}

		restarted, err := d.Restart(ctx)
		if err != nil {
			t.Fatalf("round %d: restart after SIGKILL: %v\n%s", round, err, d.LogTail(4000))
		}
		sc.d = restarted
		t.Cleanup(restarted.Kill)

		var metrics string
		if err := getText(ctx, restarted.HealthURL+"/metrics", &metrics); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(metrics, "prowjob_dispatcher_state_load_errors_total 0") {
			t.Fatalf("round %d: the state file did not load after SIGKILL:\n%s", round, restarted.LogTail(4000))
		}
		overrides, err := restarted.API.Overrides(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, o := range overrides {
			got[o.Job] = o.Reason
		}
		for _, job := range rescheduled {
			a := last[job]
			if a.acked == "" && got[job] == "" {
				continue // never acknowledged, not saved: fine
			}
			if got[job] != a.acked && got[job] != a.inFlight {
				t.Errorf("round %d: %s's override after restart is %q; want the last acknowledged %q or the in-flight %q",
					round, job, got[job], a.acked, a.inFlight)
			}
		}
		for job := range demand {
			if job == jobRemoved {
				continue
			}
			if sc.assignmentOrNil(job) == nil {
				t.Errorf("round %d: %s lost its assignment across the SIGKILL", round, job)
			}
		}
		t.Logf("round %d: %d reschedules acknowledged before SIGKILL; state loaded, %d overrides", round, acks, len(overrides))
	}
}

// getText GETs url and returns the body of a 200 answer in out.
func getText(ctx context.Context, url string, out *string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	*out = string(body)
	return nil
}
