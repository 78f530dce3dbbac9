package kubestate

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// throughJSON sends v through its JSON form, as the API server does.
func throughJSON[T any](t *testing.T, v T) T {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTimeRoundTrip(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	now := time.Now()
	cases := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{name: "zero is absent", in: time.Time{}, want: time.Time{}},
		{name: "whole second UTC", in: time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC), want: time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)},
		{name: "sub-second is truncated", in: time.Date(2026, 11, 22, 10, 0, 5, 999_999_999, time.UTC), want: time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)},
		{name: "another zone reads back as UTC", in: time.Date(2026, 11, 22, 11, 0, 5, 500, berlin), want: time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)},
		{name: "monotonic reading is dropped", in: now, want: now.Truncate(time.Second).UTC()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mt := apiTime(c.in)
			if c.in.IsZero() != (mt == nil) {
				t.Fatalf("apiTime(%v) = %v", c.in, mt)
			}
			got := goTime(mt)
			wire := goTime(throughJSON(t, struct {
				T *metav1.Time `json:"t,omitempty"`
			}{mt}).T)
			for what, g := range map[string]time.Time{"in memory": got, "through the wire": wire} {
				// == and not Equal: the dispatcher compares overrides with ==.
				if g != c.want {
					t.Errorf("%s: %v read back as %v, want %v", what, c.in, g, c.want)
				}
			}
		})
	}
}

func TestOverrideConversion(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 5, 123_456_789, time.UTC)
	o := table.Override{Job: "pull-ci-a", Cluster: "build02", Reason: "flaky", By: "alice", CreatedAt: now, Expires: now.Add(time.Hour)}
	jo := throughJSON(t, v1alpha1.JobOverride{ObjectMeta: metav1.ObjectMeta{Name: ObjectName(o.Job)}, Spec: jobOverrideSpec(o)})
	want := o
	want.CreatedAt, want.Expires = now.Truncate(time.Second), now.Add(time.Hour).Truncate(time.Second)
	if diff := cmp.Diff(want, overrideOf(&jo)); diff != "" {
		t.Errorf("override round trip (-want +got):\n%s", diff)
	}

	never := table.Override{Job: "pull-ci-b", Cluster: "build01", Reason: "r"}
	jo = throughJSON(t, v1alpha1.JobOverride{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(now)}, Spec: jobOverrideSpec(never)})
	got := overrideOf(&jo)
	if !got.Expires.IsZero() || got.CreatedAt != now.Truncate(time.Second) {
		t.Errorf("override without times read back with created %v, expires %v; want the creation time and never", got.CreatedAt, got.Expires)
	}
}

func TestDrainConversion(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 5, 5, time.UTC)
	for _, o := range []table.Drain{
		{Cluster: "build01", Reason: "maintenance", By: "bob", CreatedAt: now, Expires: now.Add(6 * time.Hour)},
		{Cluster: "build02", Capacity: 40, Reason: "slow", By: "health", CreatedAt: now, Expires: now.Add(time.Hour)},
	} {
		spec, err := clusterDrainSpec(o)
		if err != nil {
			t.Fatal(err)
		}
		cd := throughJSON(t, v1alpha1.ClusterDrain{Spec: spec})
		want := o
		want.CreatedAt, want.Expires = o.CreatedAt.Truncate(time.Second), o.Expires.Truncate(time.Second)
		if diff := cmp.Diff(want, drainOf(&cd)); diff != "" {
			t.Errorf("cluster override round trip (-want +got):\n%s", diff)
		}
	}
	for _, bad := range []table.Drain{
		{Cluster: "build01", Reason: "no expiry"},
		{Cluster: "build01", Reason: "r", Capacity: 101, Expires: now},
		{Reason: "no cluster", Expires: now},
	} {
		if _, err := clusterDrainSpec(bad); err == nil {
			t.Errorf("clusterDrainSpec(%+v) took it", bad)
		}
	}
}

func TestPlacementConversion(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 5, 5, time.UTC)
	row := table.Assignment{Job: "rehearse-1-pull-ci-x", Cluster: "build03", Reason: table.ReasonBalanced, Detail: "balanced among 3", Demand: 1.5, AssignedAt: now}
	job := &jobs.Job{Name: row.Job, Agent: jobs.Agent, Requirements: jobs.Requirements{KVM: true}}
	spec, err := placementSpec(row, job, "replica-0", now)
	if err != nil {
		t.Fatal(err)
	}
	jp := throughJSON(t, v1alpha1.JobPlacement{Spec: spec})
	gotRow, gotProv, err := placementRow(&jp)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(row, gotRow); diff != "" {
		t.Errorf("row round trip (-want +got):\n%s", diff)
	}
	wantProv := &state.Provisional{Job: *job, LastAdmitted: now, Admissions: 1}
	if diff := cmp.Diff(wantProv, gotProv); diff != "" {
		t.Errorf("provisional round trip (-want +got):\n%s", diff)
	}

	// A row that does not decode is rebuilt from the validated fields.
	jp.Spec.Row, jp.Spec.Provisional = []byte("{"), nil
	jp.CreationTimestamp = metav1.NewTime(now)
	gotRow, gotProv, err = placementRow(&jp)
	if err != nil || gotProv != nil || gotRow.Job != row.Job || gotRow.Cluster != row.Cluster || gotRow.Reason != row.Reason {
		t.Errorf("bad row: got %+v, %v, %v", gotRow, gotProv, err)
	}
}

func TestAdmissionsRoundTrip(t *testing.T) {
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	ac := &demand.AdmissionCounts{Days: []demand.DayCounts{
		{Day: day, Jobs: map[string]float64{"a": 3, "b": 1}},
		{Day: day.Add(24 * time.Hour), Jobs: map[string]float64{"a": 1}},
	}}
	data, err := encodeAdmissions(ac)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeAdmissions(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ac, got); diff != "" {
		t.Errorf("admissions round trip (-want +got):\n%s", diff)
	}
	if data, _ := encodeAdmissions(nil); data != nil {
		t.Errorf("nil counts encoded as %q", data)
	}
	if got, err := decodeAdmissions(nil); got != nil || err != nil {
		t.Errorf("no data decoded as %v, %v", got, err)
	}
	if _, err := decodeAdmissions([]byte("not gzip")); err == nil {
		t.Error("garbage decoded")
	}
}
