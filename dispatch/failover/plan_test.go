package failover

import (
	"reflect"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func TestPlan(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ttl := 6 * time.Hour
	clusters := []config.Cluster{
		{Name: "a", Capacity: 100}, {Name: "b", Capacity: 100}, {Name: "c", Capacity: 100},
		{Name: "d", Capacity: 100}, {Name: "x", Capacity: 100, Blocked: true},
	}
	sick := health.ClusterState{State: health.Unhealthy, Evidence: health.Unhealthy, Reason: "error share 60.0%"}
	fine := health.ClusterState{State: health.Healthy, Evidence: health.Healthy}
	recovering := health.ClusterState{State: health.Unhealthy, Evidence: health.Healthy}
	auto := func(c string, expires time.Duration) table.Drain {
		return table.Drain{Cluster: c, By: "health", Reason: "unhealthy", CreatedAt: now.Add(-time.Hour), Expires: now.Add(expires)}
	}
	bounds := Bounds{MaxDrained: 1, DrainTTL: ttl}
	cases := []struct {
		name      string
		act       bool
		bounds    Bounds
		states    map[string]health.ClusterState
		overrides map[string]table.Drain
		failed    map[string]bool
		want      []Action
	}{{
		name:   "all healthy: nothing",
		act:    true,
		states: map[string]health.ClusterState{"a": fine, "b": fine},
	}, {
		name:   "an unhealthy cluster is drained",
		act:    true,
		states: map[string]health.ClusterState{"a": fine, "b": sick},
		want:   []Action{{Cluster: "b", Kind: Drain, Reason: "unhealthy: error share 60.0%"}},
	}, {
		name:   "report mode plans the same drain",
		states: map[string]health.ClusterState{"b": sick},
		want:   []Action{{Cluster: "b", Kind: Drain, Reason: "unhealthy: error share 60.0%"}},
	}, {
		name:   "the bound counts the drain listed before",
		act:    true,
		states: map[string]health.ClusterState{"a": sick, "b": sick},
		want: []Action{
			{Cluster: "a", Kind: Drain, Reason: "unhealthy: error share 60.0%"},
			{Cluster: "b", Kind: RefusedBound, Note: "not drained: 1 cluster(s) already drained automatically, the most allowed at once is 1"},
		},
	}, {
		name:   "a failed drain does not count toward the bound",
		act:    true,
		states: map[string]health.ClusterState{"a": sick, "b": sick},
		failed: map[string]bool{"a": true},
		want: []Action{
			{Cluster: "a", Kind: Drain, Reason: "unhealthy: error share 60.0%"},
			{Cluster: "b", Kind: Drain, Reason: "unhealthy: error share 60.0%"},
		},
	}, {
		name:   "the capacity share bound",
		act:    true,
		bounds: Bounds{MaxDrained: 3, MaxDrainedShare: 0.3, DrainTTL: ttl},
		states: map[string]health.ClusterState{"a": sick, "b": sick},
		want: []Action{
			{Cluster: "a", Kind: Drain, Reason: "unhealthy: error share 60.0%"},
			{Cluster: "b", Kind: RefusedBound, Note: "not drained: automatic drains would take 50% of the capacity, over the 30% allowed"},
		},
	}, {
		name:   "a blocked cluster is left alone",
		act:    true,
		states: map[string]health.ClusterState{"x": sick},
		want:   []Action{{Cluster: "x", Note: "left alone: blocked by the cluster config"}},
	}, {
		name:      "an operator's cap is left alone",
		act:       true,
		states:    map[string]health.ClusterState{"a": sick},
		overrides: map[string]table.Drain{"a": {Cluster: "a", Capacity: 40, By: "bob", Reason: "half the nodes", Expires: now.Add(time.Hour)}},
		want:      []Action{{Cluster: "a", Note: "left alone: capped to 40 by bob: half the nodes"}},
	}, {
		name:      "a recent automatic drain is kept",
		act:       true,
		states:    map[string]health.ClusterState{"a": sick},
		overrides: map[string]table.Drain{"a": auto("a", 5*time.Hour)},
		want:      []Action{{Cluster: "a", Note: "drained automatically until 2026-12-07T17:00:00Z"}},
	}, {
		name:      "an automatic drain past half its TTL is renewed",
		act:       true,
		states:    map[string]health.ClusterState{"a": sick},
		overrides: map[string]table.Drain{"a": auto("a", 2*time.Hour)},
		want:      []Action{{Cluster: "a", Kind: Renew, Reason: "unhealthy: error share 60.0%", Note: "automatic drain renewed for 6h0m0s"}},
	}, {
		name:      "report mode renews nothing",
		states:    map[string]health.ClusterState{"a": sick},
		overrides: map[string]table.Drain{"a": auto("a", 2*time.Hour)},
		want:      []Action{{Cluster: "a", Note: "drained automatically; renewing is left to act mode"}},
	}, {
		name:      "a recovered cluster is undrained, and another may be drained in its place",
		act:       true,
		states:    map[string]health.ClusterState{"a": fine, "b": sick},
		overrides: map[string]table.Drain{"a": auto("a", 5*time.Hour)},
		want: []Action{
			{Cluster: "a", Kind: Undrain, Note: "healthy again: automatic drain cancelled; jobs return within the move budget"},
			{Cluster: "b", Kind: Drain, Reason: "unhealthy: error share 60.0%"},
		},
	}, {
		name:      "a failed undrain still counts toward the bound",
		act:       true,
		states:    map[string]health.ClusterState{"a": fine, "b": sick},
		overrides: map[string]table.Drain{"a": auto("a", 5*time.Hour)},
		failed:    map[string]bool{"a": true},
		want: []Action{
			{Cluster: "a", Kind: Undrain, Note: "healthy again: automatic drain cancelled; jobs return within the move budget"},
			{Cluster: "b", Kind: RefusedBound, Note: "not drained: 1 cluster(s) already drained automatically, the most allowed at once is 1"},
		},
	}, {
		name:      "report mode says it would undrain, and keeps counting the drain",
		states:    map[string]health.ClusterState{"a": fine, "b": sick},
		overrides: map[string]table.Drain{"a": auto("a", 5*time.Hour)},
		want: []Action{
			{Cluster: "a", Kind: Undrain, Note: "would cancel the automatic drain (report mode)"},
			{Cluster: "b", Kind: RefusedBound, Note: "not drained: 1 cluster(s) already drained automatically, the most allowed at once is 1"},
		},
	}, {
		name:      "an operator's drain of a recovered cluster is not cancelled",
		act:       true,
		states:    map[string]health.ClusterState{"a": fine},
		overrides: map[string]table.Drain{"a": {Cluster: "a", By: "alice", Reason: "upgrade", Expires: now.Add(time.Hour)}},
	}, {
		name:      "an expired automatic drain is not counted",
		act:       true,
		states:    map[string]health.ClusterState{"a": fine, "b": sick},
		overrides: map[string]table.Drain{"a": auto("a", -time.Minute)},
		want:      []Action{{Cluster: "b", Kind: Drain, Reason: "unhealthy: error share 60.0%"}},
	}, {
		name:      "a drained cluster without evidence of recovery stays drained",
		act:       true,
		states:    map[string]health.ClusterState{"a": recovering},
		overrides: map[string]table.Drain{"a": auto("a", 5*time.Hour)},
		want:      []Action{{Cluster: "a", Note: "drained automatically until 2026-12-07T17:00:00Z (no evidence of recovery yet)"}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.bounds
			if b == (Bounds{}) {
				b = bounds
			}
			in := Input{Now: now, Act: tc.act, Clusters: clusters, States: tc.states, Overrides: tc.overrides, By: "health", Bounds: b, Failed: tc.failed}
			if got := Plan(in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Plan:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
