package dispatch

import (
	"reflect"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func TestClusterStatuses(t *testing.T) {
	sick := health.Status{ClusterState: health.ClusterState{State: health.Unhealthy}, Action: "drained"}
	loads := []engine.ClusterLoad{{Name: "a", Jobs: 3}, {Name: "b", Jobs: 1, Override: &table.Drain{Cluster: "b"}}}
	for _, tc := range []struct {
		name   string
		states map[string]health.Status
		want   []ClusterStatus
	}{
		{"health off", nil, []ClusterStatus{{ClusterLoad: loads[0]}, {ClusterLoad: loads[1]}}},
		{"one cluster judged", map[string]health.Status{"b": sick, "gone": sick}, []ClusterStatus{{ClusterLoad: loads[0]}, {ClusterLoad: loads[1], Health: &sick}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClusterStatuses(loads, tc.states); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
