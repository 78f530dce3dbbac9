package kubestate

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func TestDemand(t *testing.T) {
	needAPI(t)
	ns := newNamespace(t)
	ctx := context.Background()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	day := func(ago int) time.Time { return today.Add(-time.Duration(ago) * 24 * time.Hour) }
	fa := newFakeReplica(&table.Table{}, nil)
	fa.counts = &demand.AdmissionCounts{Days: []demand.DayCounts{
		{Day: day(20), Jobs: map[string]float64{"old": 100}}, // outside the window
		{Day: day(1), Jobs: map[string]float64{"a": 2, "b": 1}},
		{Day: day(0), Jobs: map[string]float64{"a": 1}},
	}}
	fb := newFakeReplica(&table.Table{}, nil)
	bCounts := &demand.AdmissionCounts{Days: []demand.DayCounts{
		{Day: day(13), Jobs: map[string]float64{"a": 5, "c": 3}},
		{Day: day(0), Jobs: map[string]float64{"b": 1}},
	}}
	fb.counts = bCounts
	a := startBackend(t, apiConfig, testOptions(ns, "replica-a"))
	b := startBackend(t, apiConfig, testOptions(ns, "replica-b"))
	a.Watch(fa)
	b.Watch(fb)
	runBackend(t, a, false, nil)
	stopB := runBackend(t, b, false, nil)

	want := map[string]float64{"a": 8, "b": 2, "c": 3}
	eventually(t, 5*time.Second, "the demand of both replicas", func() bool {
		got, err := a.Demand().Demand(ctx)
		return err == nil && cmp.Equal(got, want)
	})
	// This replica's live counts, not its record's.
	fa.with(func(f *fakeReplica) { f.counts.Days[2].Jobs["a"] = 11 })
	got, err := a.Demand().Demand(ctx)
	if want := map[string]float64{"a": 18, "b": 2, "c": 3}; err != nil || !cmp.Equal(got, want) {
		t.Errorf("demand %v, %v; want %v", got, err, want)
	}

	// Replica b restarts under its name: it gets its counts back.
	stopB()
	again := startBackend(t, apiConfig, testOptions(ns, "replica-b"))
	if diff := cmp.Diff(bCounts, again.OwnAdmissions()); diff != "" {
		t.Errorf("restored counts (-written +read):\n%s", diff)
	}
	dr := &v1alpha1.DispatcherReplica{}
	if err := apiClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "replica-b"}, dr); err != nil {
		t.Fatal(err)
	}
	if dr.Spec.Address != "http://replica-b.test:8080" || dr.Status.Heartbeat == nil || dr.Status.Leader {
		t.Errorf("replica record %+v", dr)
	}
}
