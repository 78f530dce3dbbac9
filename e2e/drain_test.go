package e2e

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// TestDrainMovesNextProwJobAndExpiryBringsItBack drains the cluster of
// jobOriginUnit through the API with the shortest TTL (1m): its next ProwJob lands on
// another cluster, and once the drain expires (housekeeping every second)
// the job and its next ProwJob come back. It also checks what the API
// refuses (no token, a TTL over --max-drain-ttl, unknown and manual
// clusters, stranding the arm64 jobs), that a preview changes nothing, and
// that an undrain brings the job back at once.
//
// Why the job comes back (the suite's demand, see jobs_test.go): the first
// dispatch balances from scratch, so openshift/origin's file (unit 900 +
// e2e-aws 400; its arm64 job is balanced apart, on build01) goes to build02,
// api (600) and console (500) to build03, installer (550) and the nightly
// (200) to build01 with the arm64 jobs (200). Draining build02 moves origin
// to build01, and balance then moves installer to build03. When the drain
// ends build02 is empty; the most loaded cluster is build01 (arm64 200,
// nightly 200, origin 1300 against a target of 3400/3, console's pinned
// job on build03 counted), and of its movable files, moving origin to
// build02 lowers the largest ratio most (to 1300/1133 against 1500/1133
// for moving the nightly), within the default
// move budget (20 % of 10 jobs = 2, origin's size). The test does not rely
// on that placement: it drains whichever cluster holds the job, and fails,
// with the loads, if the job does not come back.
func TestDrainMovesNextProwJobAndExpiryBringsItBack(t *testing.T) {
	sc := newScenario(t, "drain", scenarioOptions{extraArgs: []string{"--max-drain-ttl", "1h", "--housekeeping-interval", "1s"}})
	ctx := testContext(t)
	job := jobOriginUnit
	from := sc.assignment(job).Cluster
	if from == clusterARM64 || !usableClusters[from] {
		t.Fatalf("%s is on %s; want a usable cluster other than %s (which holds the arm64 jobs)", job, from, clusterARM64)
	}
	if got := sc.admit(job); got != from {
		t.Fatalf("before the drain, a ProwJob of %s landed on %q, the table says %s", job, got, from)
	}
	drain := api.DrainRequest{TTL: "1m", Reason: "e2e: node upgrade", By: "e2e"}

	// What the API refuses; none of it changes anything.
	anon, wrong := *sc.d.API, *sc.d.API
	anon.Token, wrong.Token = "", "not-the-token"
	refusals := []struct {
		name string
		call func() error
		code int
		msg  string
	}{
		{"drain without a token", func() error { _, err := anon.Drain(ctx, from, drain); return err }, 401, "missing bearer token"},
		{"preview without a token", func() error {
			_, err := anon.Drain(ctx, from, api.DrainRequest{TTL: "1m", Reason: "e2e", DryRun: true})
			return err
		}, 401, "missing bearer token"},
		{"drain with a wrong token", func() error { _, err := wrong.Drain(ctx, from, drain); return err }, 401, "invalid bearer token"},
		{"undrain without a token", func() error { _, err := anon.Undrain(ctx, from, ""); return err }, 401, "missing bearer token"},
		{"ttl over --max-drain-ttl", func() error {
			_, err := sc.d.API.Drain(ctx, from, api.DrainRequest{TTL: "2h", Reason: "e2e"})
			return err
		}, 400, "over the maximum 1h0m0s"},
		{"unknown cluster", func() error { _, err := sc.d.API.Drain(ctx, "build99", drain); return err }, 404, "not in the cluster config"},
		{"manual cluster", func() error { _, err := sc.d.API.Drain(ctx, clusterManual, drain); return err }, 400, "manual cluster"},
		{"stranding the arm64 jobs", func() error { _, err := sc.d.API.Drain(ctx, clusterARM64, drain); return err }, 409, jobOriginARM64},
		{"undrain of a cluster without a drain", func() error { _, err := sc.d.API.Undrain(ctx, from, ""); return err }, 404, "has no drain or capacity cap"},
	}
	for _, r := range refusals {
		err := r.call()
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != r.code || !strings.Contains(se.Message, r.msg) {
			t.Errorf("%s: %v, want HTTP %d with %q", r.name, err, r.code, r.msg)
			continue
		}
		if r.code == 409 && (se.Stranded != 2 || !slices.ContainsFunc(se.StrandedJobs, func(u api.UnplaceableJob) bool { return u.Job == jobNightlyARM64 })) {
			t.Errorf("%s: stranded %d %+v, want %s and %s", r.name, se.Stranded, se.StrandedJobs, jobOriginARM64, jobNightlyARM64)
		}
	}
	sc.wantNoDrain("after the refusals")

	// A preview says where the job would go, and changes nothing.
	preview, err := sc.d.API.Drain(ctx, from, api.DrainRequest{TTL: "1m", Reason: "e2e: preview", DryRun: true})
	if err != nil {
		t.Fatalf("preview of draining %s: %v", from, err)
	}
	previewTo := moveOf(preview, job)
	if !preview.DryRun || previewTo == "" || previewTo == from || preview.Stranded != 0 {
		t.Fatalf("preview of draining %s: %+v; want %s to move", from, preview, job)
	}
	sc.wantNoDrain("after the preview")
	if got := sc.admit(job); got != from {
		t.Errorf("after a preview, a ProwJob of %s landed on %q, want %s still", job, got, from)
	}

	// The drain: the next ProwJob goes where the preview said.
	plan, err := sc.d.API.Drain(ctx, from, drain)
	if err != nil {
		t.Fatalf("draining %s: %v", from, err)
	}
	to := moveOf(plan, job)
	if plan.DryRun || to != previewTo || plan.Moved != preview.Moved {
		t.Errorf("drain of %s: %s to %q, %d moved; the preview said %s, %d moved", from, job, to, plan.Moved, previewTo, preview.Moved)
	}
	t.Logf("drained %s: %d job(s) moved (%s to %s), flows %+v", from, plan.Moved, job, to, plan.Flows)
	if got := sc.admit(job); got != to || got == from {
		t.Errorf("while %s is drained, a ProwJob of %s landed on %q, want %s", from, job, got, to)
	}
	if o := sc.drain(from); o == nil || o.Capacity != 0 || o.Reason != drain.Reason || o.By != "api for e2e" {
		t.Errorf("GET %s: %s's override %+v, want the drain by \"api for e2e\"", api.ClustersPath, from, o)
	}
	if list, err := sc.d.API.Drains(ctx); err != nil || len(list) != 1 || list[0].Cluster != from {
		t.Errorf("GET %s: %+v, %v; want %s's drain", api.DrainsPath, list, err, from)
	}
	if a := sc.assignment(job); a.Cluster != to {
		t.Errorf("while %s is drained, %s is assigned to %s, want %s", from, job, a.Cluster, to)
	}

	// Expiry: housekeeping drops the drain and the job flows back.
	eventually(t, 90*time.Second, "the drain of "+from+" to expire and "+job+" to come back", func() error {
		if o := sc.drain(from); o != nil {
			return fmt.Errorf("%s still drained until %s", from, o.Expires)
		}
		if a := sc.assignment(job); a.Cluster != from {
			return fmt.Errorf("%s on %s (%s), loads: %s", job, a.Cluster, a.Reason, sc.loads())
		}
		return nil
	})
	t.Logf("the drain expired: %s back on %s; loads %s", job, from, sc.loads())
	if got := sc.admit(job); got != from {
		t.Errorf("after the drain expired, a ProwJob of %s landed on %q, want %s", job, got, from)
	}

	// An undrain does the same at once.
	if _, err := sc.d.API.Drain(ctx, from, api.DrainRequest{TTL: "1h", Reason: "e2e: again", By: "e2e"}); err != nil {
		t.Fatalf("draining %s again: %v", from, err)
	}
	if got := sc.admit(job); got == from {
		t.Errorf("while %s is drained again, a ProwJob of %s landed on it", from, job)
	}
	res, err := sc.d.API.Undrain(ctx, from, "e2e")
	if err != nil || res.Cancelled == nil || res.Cancelled.Reason != "e2e: again" || res.Dispatch.Moved == 0 {
		t.Fatalf("undrain of %s: %+v, %v", from, res, err)
	}
	sc.wantNoDrain("after the undrain")
	if got := sc.admit(job); got != from {
		t.Errorf("after the undrain, a ProwJob of %s landed on %q, want %s", job, got, from)
	}
}

// drain is cluster's drain or cap as GET /api/v1/clusters shows it.
func (sc *scenario) drain(cluster string) *api.Drain {
	sc.t.Helper()
	clusters, err := sc.d.API.Clusters(testContext(sc.t))
	if err != nil {
		sc.t.Fatalf("GET %s: %v", api.ClustersPath, err)
	}
	for _, c := range clusters {
		if c.Name == cluster {
			return c.Override
		}
	}
	sc.t.Fatalf("GET %s does not list %s", api.ClustersPath, cluster)
	return nil
}

// wantNoDrain fails unless no cluster is drained or capped.
func (sc *scenario) wantNoDrain(when string) {
	sc.t.Helper()
	clusters, err := sc.d.API.Clusters(testContext(sc.t))
	if err != nil {
		sc.t.Fatalf("GET %s: %v", api.ClustersPath, err)
	}
	for _, c := range clusters {
		if c.Override != nil {
			sc.t.Errorf("%s: %s has an override %+v", when, c.Name, c.Override)
		}
	}
	if list, err := sc.d.API.Drains(testContext(sc.t)); err != nil || len(list) != 0 {
		sc.t.Errorf("%s: GET %s = %+v, %v; want none", when, api.DrainsPath, list, err)
	}
}

// loads summarises the clusters' loads (balanced part), targets and jobs, for failures.
func (sc *scenario) loads() string {
	clusters, err := sc.d.API.Clusters(testContext(sc.t))
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, c := range clusters {
		parts = append(parts, fmt.Sprintf("%s %.0f (balanced %.0f)/%.0f (%d jobs)", c.Name, c.Demand, c.BalancedDemand, c.Target, c.Jobs))
	}
	return strings.Join(parts, ", ")
}

// moveOf is where plan moves job, or "" when it does not.
func moveOf(plan *api.DrainPlan, job string) string {
	for _, m := range plan.Moves {
		if m.Job == job {
			return m.To
		}
	}
	return ""
}
