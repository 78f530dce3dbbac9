package dispatch

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stateGauges are the gauges stateCollector reads at each scrape.
var stateGauges = []string{
	"prowjob_dispatcher_ready", "prowjob_dispatcher_last_successful_dispatch_timestamp_seconds", "prowjob_dispatcher_state_save_failing",
	"prowjob_dispatcher_cluster_jobs", "prowjob_dispatcher_cluster_demand", "prowjob_dispatcher_cluster_balanced_demand",
	"prowjob_dispatcher_cluster_target", "prowjob_dispatcher_cluster_load_ratio", "prowjob_dispatcher_imbalance_ratio",
	"prowjob_dispatcher_unplaceable_jobs", "prowjob_dispatcher_cluster_drained", "prowjob_dispatcher_cluster_capacity_cap",
	"prowjob_dispatcher_cluster_capacity", "prowjob_dispatcher_job_overrides",
}

// gauges returns every series of the named gauges in reg, as
// "name{label=value,...}" -> value.
func gauges(t *testing.T, reg *prometheus.Registry, names ...string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if !slices.Contains(names, f.GetName()) {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[fmt.Sprintf("%s{%s}", f.GetName(), strings.Join(labels, ","))] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestStateMetricsAreTrueFromTheFirstScrape: after a restart from the
// state dir, the first scrape gives the same loads, unplaceable jobs,
// drains, caps, overrides and last dispatch time as before it, and the
// unplaceable count of Status agrees with the metric.
func TestStateMetricsAreTrueFromTheFirstScrape(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	// Block the only arm64 cluster: the arm64 job is unplaceable, kept there.
	writeFile(t, e.clusterConfig, `
aws:
- name: build01
  capabilities: [arm64]
  blocked: true
- name: build03
  capacity: 50
gcp:
- name: build02
  capabilities: [kvm]
- name: build04
  blocked: true
`)
	e.dispatch(d)
	if _, err := d.Drain(ctx, DrainRequest{Cluster: "build03", Capacity: 20, TTL: time.Hour, Reason: "cap", By: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Drain(ctx, DrainRequest{Cluster: "build02", TTL: time.Hour, Reason: "unhealthy", By: HealthDrainBy, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Reschedule(ctx, RescheduleRequest{Job: "pull-ci-org-repo-main-lint", Cluster: "build03", TTL: time.Hour, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := d.flush(); err != nil {
		t.Fatal(err)
	}
	before := gauges(t, e.reg, stateGauges...)
	for _, want := range []string{
		"prowjob_dispatcher_ready{}", "prowjob_dispatcher_cluster_drained{cluster=build02,source=health}",
		"prowjob_dispatcher_cluster_capacity_cap{cluster=build03}", "prowjob_dispatcher_job_overrides{cluster=build03}",
		"prowjob_dispatcher_unplaceable_jobs{kept=true}", "prowjob_dispatcher_cluster_load_ratio{cluster=build03}",
		"prowjob_dispatcher_last_successful_dispatch_timestamp_seconds{}",
	} {
		if before[want] <= 0 {
			t.Errorf("before the restart %s = %v, want above 0; all: %v", want, before[want], before)
		}
	}
	if got, want := before["prowjob_dispatcher_last_successful_dispatch_timestamp_seconds{}"], float64(d.Status().LastDispatch.Unix()); got != want {
		t.Errorf("last dispatch metric %v, want Status' %v", got, want)
	}

	again := e.newDispatcher(e.options()) // a new registry: the first scrape of the new process
	after := gauges(t, e.reg, stateGauges...)
	if !maps.Equal(after, before) {
		for _, k := range slices.Sorted(maps.Keys(before)) {
			if after[k] != before[k] {
				t.Errorf("after the restart %s = %v, before %v", k, after[k], before[k])
			}
		}
		for k := range after {
			if _, ok := before[k]; !ok {
				t.Errorf("after the restart %s = %v, absent before", k, after[k])
			}
		}
	}
	// The arm64 job kept on blocked build01, and the kvm job the drain of build02 stranded.
	want := d.Status().Unplaceable
	got := after["prowjob_dispatcher_unplaceable_jobs{kept=true}"] + after["prowjob_dispatcher_unplaceable_jobs{kept=false}"]
	if st := again.Status(); want != 2 || st.Unplaceable != want || got != float64(want) {
		t.Errorf("after the restart Status says %d unplaceable, the metric %v; before it Status said %d, want 2", st.Unplaceable, got, want)
	}
}
