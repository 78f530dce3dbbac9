package kubestate

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// knownClusters checks rows as a dispatcher whose cluster config holds build01..build05 does.
func knownClusters(a table.Assignment) error {
	if strings.HasPrefix(a.Cluster, "build0") {
		return nil
	}
	return errors.New("unknown cluster " + a.Cluster)
}

// TestCheckObjects: JobOverrides and ClusterDrains made with kubectl are
// put in force only when sound (issue 18's probe: malformed or huge ones).
func TestCheckObjects(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return apiTime(now.Add(d)) }
	override := func(f func(*v1alpha1.JobOverrideSpec)) *v1alpha1.JobOverride {
		jo := &v1alpha1.JobOverride{Spec: v1alpha1.JobOverrideSpec{Job: "pull-ci-x-unit", Cluster: "build02", Reason: "r", By: "ops", Expires: at(time.Hour)}}
		f(&jo.Spec)
		return jo
	}
	drain := func(f func(*v1alpha1.ClusterDrainSpec)) *v1alpha1.ClusterDrain {
		cd := &v1alpha1.ClusterDrain{Spec: v1alpha1.ClusterDrainSpec{Cluster: "build03", Reason: "r", Expires: *at(time.Hour)}}
		f(&cd.Spec)
		return cd
	}
	huge := strings.Repeat("x", 200<<10)
	cases := []struct {
		name string
		err  error
		want string // empty: accepted
	}{
		{"a sound override", checkOverride(override(func(*v1alpha1.JobOverrideSpec) {}), now, knownClusters), ""},
		{"an override that never expires", checkOverride(override(func(s *v1alpha1.JobOverrideSpec) { s.Expires = nil }), now, knownClusters), ""},
		{"an override to an unknown cluster", checkOverride(override(func(s *v1alpha1.JobOverrideSpec) { s.Cluster = "no-such-cluster" }), now, knownClusters), "unknown cluster"},
		{"an override expiring in 2562047h", checkOverride(override(func(s *v1alpha1.JobOverrideSpec) { s.Expires = at(2562047 * time.Hour) }), now, knownClusters), "ahead"},
		{"an override of a 200 KB job", checkOverride(override(func(s *v1alpha1.JobOverrideSpec) { s.Job = huge }), now, knownClusters), "job name of 204800 bytes"},
		{"an override with a 200 KB reason", checkOverride(override(func(s *v1alpha1.JobOverrideSpec) { s.Reason = huge }), now, knownClusters), "reason of"},
		{"an override with a 200 KB by", checkOverride(override(func(s *v1alpha1.JobOverrideSpec) { s.By = huge }), now, knownClusters), "by of"},
		{"an override with no job", checkOverride(override(func(s *v1alpha1.JobOverrideSpec) { s.Job = "" }), now, knownClusters), "job name of 0 bytes"},
		{"a sound drain", checkDrain(drain(func(*v1alpha1.ClusterDrainSpec) {}), now, knownClusters), ""},
		{"a drain of an unknown cluster", checkDrain(drain(func(s *v1alpha1.ClusterDrainSpec) { s.Cluster = "no-such-cluster" }), now, knownClusters), "unknown cluster"},
		{"a drain expiring in year 9999", checkDrain(drain(func(s *v1alpha1.ClusterDrainSpec) {
			s.Expires = metav1.NewTime(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
		}), now, knownClusters), "ahead"},
		{"a drain with no expiry", checkDrain(drain(func(s *v1alpha1.ClusterDrainSpec) { s.Expires = metav1.Time{} }), now, knownClusters), "no expiry"},
		{"a drain of a 300-byte cluster name", checkDrain(drain(func(s *v1alpha1.ClusterDrainSpec) { s.Cluster = strings.Repeat("c", 300) }), now, knownClusters), "cluster name of 300"},
		{"a cap of 1000", checkDrain(drain(func(s *v1alpha1.ClusterDrainSpec) { s.Capacity = 1000 }), now, knownClusters), "capacity 1000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.want == "" && c.err != nil || c.want != "" && (c.err == nil || !strings.Contains(c.err.Error(), c.want)) {
				t.Errorf("got %v, want %q", c.err, c.want)
			}
		})
	}
}

// TestPlausibleRecord: a DispatcherReplica claiming 10^12 admissions, days
// to come, or written by no replica does not count toward demand.
func TestPlausibleRecord(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	today := now.Truncate(24 * time.Hour)
	record := func(hb time.Time) *v1alpha1.DispatcherReplica {
		return &v1alpha1.DispatcherReplica{ObjectMeta: metav1.ObjectMeta{Name: "replica-x"}, Status: v1alpha1.DispatcherReplicaStatus{Heartbeat: apiTime(hb)}}
	}
	counts := func(day time.Time, jobs map[string]float64) *demand.AdmissionCounts {
		return &demand.AdmissionCounts{Days: []demand.DayCounts{{Day: day, Jobs: jobs}}}
	}
	many := map[string]float64{}
	for i := range 200 {
		many[strings.Repeat("j", i+1)] = 90_000
	}
	cases := []struct {
		name   string
		record *v1alpha1.DispatcherReplica
		counts *demand.AdmissionCounts
		want   string
	}{
		{"a busy replica", record(now), counts(today, map[string]float64{"a": 5000, "b": 1}), ""},
		{"no counts", record(now), nil, ""},
		{"10^12 admissions of a job", record(now), counts(today, map[string]float64{"a": 1e12}), "1e+12 admissions"},
		{"negative admissions", record(now), counts(today, map[string]float64{"a": -5}), "not in 0.."},
		{"more than 10^7 in a day", record(now), counts(today, many), "more than 10000000"},
		{"days to come", record(now), counts(today.Add(72*time.Hour), map[string]float64{"a": 1}), "to come"},
		{"no heartbeat", &v1alpha1.DispatcherReplica{}, counts(today, map[string]float64{"a": 1}), "no heartbeat"},
		{"a heartbeat from the future", record(now.Add(time.Hour)), counts(today, map[string]float64{"a": 1}), "in the future"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := plausibleRecord(c.record, c.counts, now)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}
