package httpapi

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// TestConversionsKeepEveryField converts fully populated dispatcher values
// to the wire types and checks that nothing is lost: every field of the
// internal type must be set (so a field added to it without a conversion
// fails here), and the wire JSON must carry the same keys and values.
func TestConversionsKeepEveryField(t *testing.T) {
	at := time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)
	row := table.Assignment{Job: "j", Cluster: "build01", Reason: table.ReasonCapability, Detail: "d", File: "f.yaml", Demand: 3.5, AssignedAt: at}
	override := table.Override{Job: "j", Cluster: "build02", Reason: "r", By: "alice", CreatedAt: at, Expires: at.Add(time.Hour)}
	capped := table.Drain{Cluster: "build01", Capacity: 50, Reason: "r", By: "bob", CreatedAt: at, Expires: at.Add(time.Hour)}
	hs := &health.Status{
		ClusterState: health.ClusterState{State: health.Unhealthy, Since: at, Evidence: health.Healthy, Candidate: health.Healthy, CandidateSince: at.Add(time.Minute),
			Reason: "error share 5.0%", Sample: &health.Sample{ErrorShare: 0.05, PendingSeconds: 90, Samples: 40}},
		Mode: health.ModeAct, Action: "drained automatically", Evaluated: at.Add(2 * time.Minute),
	}
	load := engine.ClusterLoad{Name: "build01", Provider: "aws", Capacity: 50, ConfiguredCapacity: 80, Capabilities: []string{"arm64"}, Blocked: true, Manual: true, Role: "manual", Override: &capped,
		Jobs: 2, Demand: 4, BalancedJobs: 1, BalancedDemand: 3, ForcedJobs: 1, ForcedDemand: 1, Target: 2, Ratio: 1.5}
	status := dispatch.ClusterStatus{ClusterLoad: load, Health: hs}
	explanation := &engine.Explanation{
		Job:          "j",
		Requirements: jobs.Requirements{Capabilities: []string{"arm64"}, Pin: "p", KVM: true, NoBuilds: true, SSHBastion: true, Cloud: "aws"},
		Steps:        []engine.Step{{Rule: table.ReasonAgent, Matched: true, Detail: "d"}},
		Eligible:     []engine.ClusterLoad{load},
		Assignment:   row,
	}
	for _, tc := range []struct {
		name     string
		internal any
		wire     any
	}{
		{"assignment", row, apiAssignment(row, nil)},
		{"override", override, apiOverride(override)},
		{"cluster load", load, apiClusters([]engine.ClusterLoad{load})[0]},
		{"cluster status", status, apiClusterStatuses([]dispatch.ClusterStatus{status})[0]},
		{"explanation", explanation, apiExplanation(explanation)},
		{"cluster override", capped, *apiDrain(&capped)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertAllSet(t, reflect.ValueOf(tc.internal), tc.name)
			// Health is not in the engine's JSON (it may hold NaN); it is checked below.
			if got, want := withoutHealth(jsonMap(t, tc.wire)), jsonMap(t, tc.internal); !reflect.DeepEqual(got, want) {
				t.Errorf("wire JSON\n%v\nwant the internal JSON\n%v", got, want)
			}
		})
	}
	wantHealth := map[string]any{
		"state": "unhealthy", "since": "2026-11-25T01:02:03Z", "evidence": "healthy", "candidate": "healthy", "candidateSince": "2026-11-25T01:03:03Z",
		"errorShare": 0.05, "samples": 40.0, "pendingSeconds": 90.0, "reason": "error share 5.0%", "mode": "act", "action": "drained automatically",
		"evaluated": "2026-11-25T01:04:03Z",
	}
	if got := jsonMap(t, apiClusterStatuses([]dispatch.ClusterStatus{status})[0])["health"]; !reflect.DeepEqual(got, wantHealth) {
		t.Errorf("health\n%v\nwant\n%v", got, wantHealth)
	}
	hs.Sample.PendingSeconds = math.Inf(1)
	if got := apiClusterHealth(hs); got.PendingSeconds != nil || *got.ErrorShare != 0.05 {
		t.Errorf("an infinite pending time converts to %v, want none (JSON cannot carry it)", got.PendingSeconds)
	}
	if got := apiDrains([]table.Drain{capped, capped}); len(got) != 2 || got[1] != *apiDrain(&capped) {
		t.Errorf("apiDrains: %+v", got)
	}
	withOverride := jsonMap(t, apiAssignment(row, &override))
	if o, ok := withOverride["override"].(map[string]any); !ok || !reflect.DeepEqual(o, jsonMap(t, override)) {
		t.Errorf("assignment with override: %v", withOverride)
	}
}

// TestDrainPlanConversionKeepsEveryField: a fully populated drain plan
// converts to a fully populated wire plan with the same values (the wire
// plan adds the counts and renames To to Flows, so the JSON differs).
func TestDrainPlanConversionKeepsEveryField(t *testing.T) {
	at := time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)
	plan := &dispatch.DrainPlan{
		Override:    table.Drain{Cluster: "build03", Capacity: 20, Reason: "r", By: "bob", CreatedAt: at, Expires: at.Add(time.Hour)},
		Moves:       []engine.Move{{Job: "j", From: "build03", To: "build01", Reason: table.ReasonBalanced}},
		To:          map[string]dispatch.Flow{"build01": {Jobs: 1, Demand: 2.5}},
		Staying:     []dispatch.StayingJob{{Job: "k", Reason: table.ReasonClusterJob, Detail: "d"}},
		Stranded:    []engine.Unplaceable{{Job: "g", Problem: "no usable cluster meets capabilities [gpu]", Cluster: "build03"}},
		Unconfirmed: []string{"replica-2"},
	}
	assertAllSet(t, reflect.ValueOf(plan), "DrainPlan")
	got := apiDrainPlan(plan, true, 10)
	assertAllSet(t, reflect.ValueOf(got), "api.DrainPlan")
	want := api.DrainPlan{
		DryRun:   true,
		Override: api.Drain{Cluster: "build03", Capacity: 20, Reason: "r", By: "bob", CreatedAt: at, Expires: at.Add(time.Hour)},
		Moved:    1, Moves: []api.Move{{Job: "j", From: "build03", To: "build01", Reason: "balanced"}},
		Flows:   map[string]api.Flow{"build01": {Jobs: 1, Demand: 2.5}},
		Staying: 1, StayingJobs: []api.StayingJob{{Job: "k", Reason: "cluster-job", Detail: "d"}},
		Stranded: 1, StrandedJobs: []api.UnplaceableJob{{Job: "g", Problem: "no usable cluster meets capabilities [gpu]", Cluster: "build03"}},
		Unconfirmed: []string{"replica-2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("apiDrainPlan (-want +got):\n%s", diff)
	}
	for name, wire := range map[string]any{"move": got.Moves[0], "stranded": got.StrandedJobs[0], "staying": got.StayingJobs[0]} {
		internal := map[string]any{"move": plan.Moves[0], "stranded": plan.Stranded[0], "staying": plan.Staying[0]}[name]
		if w, i := jsonMap(t, wire), jsonMap(t, internal); !reflect.DeepEqual(w, i) {
			t.Errorf("%s: wire JSON %v, internal %v", name, w, i)
		}
	}
}

// assertAllSet fails for any zero field of v, recursively through structs,
// pointers and the first element of slices.
func assertAllSet(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		assertAllSet(t, v.Elem(), path)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			if v.IsZero() {
				t.Errorf("%s is zero", path)
			}
			return
		}
		for i := range v.NumField() {
			assertAllSet(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			t.Errorf("%s is empty", path)
			return
		}
		assertAllSet(t, v.Index(0), path+"[0]")
	default:
		if v.IsZero() {
			t.Errorf("%s is zero", path)
		}
	}
}

// withoutHealth drops the "health" keys of m, recursively.
func withoutHealth(m map[string]any) map[string]any {
	delete(m, "health")
	for _, v := range m {
		switch v := v.(type) {
		case map[string]any:
			withoutHealth(v)
		case []any:
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					withoutHealth(em)
				}
			}
		}
	}
	return m
}

func jsonMap(t *testing.T, v any) map[string]any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
