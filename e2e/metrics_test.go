package e2e

import (
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/internal/monitoring"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// stateGauges are the dispatcher's gauges that must be true from the first
// scrape of a new process.
var stateGauges = []string{
	"prowjob_dispatcher_ready", "prowjob_dispatcher_last_successful_dispatch_timestamp_seconds",
	"prowjob_dispatcher_cluster_jobs", "prowjob_dispatcher_cluster_demand", "prowjob_dispatcher_cluster_balanced_demand",
	"prowjob_dispatcher_cluster_target", "prowjob_dispatcher_cluster_load_ratio", "prowjob_dispatcher_imbalance_ratio",
	"prowjob_dispatcher_unplaceable_jobs", "prowjob_dispatcher_cluster_drained", "prowjob_dispatcher_cluster_capacity_cap",
	"prowjob_dispatcher_cluster_capacity", "prowjob_dispatcher_job_overrides",
}

// TestMetricsTrueAfterRestart restarts the dispatcher from its saved state
// and finds the gauges of the table, the drains, caps and overrides, and the
// last dispatch time on the first scrape as they were before, and /readyz's
// unplaceable count agreeing with the metric.
func TestMetricsTrueAfterRestart(t *testing.T) {
	sc := newScenario(t, "metrics-restart", scenarioOptions{})
	ctx := testContext(t)
	if _, err := sc.d.API.Reschedule(ctx, api.RescheduleRequest{Job: jobAPIVerify, Cluster: "build03", Reason: "e2e metrics"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.d.API.Drain(ctx, "build02", api.DrainRequest{Capacity: 10, TTL: "1h", Reason: "e2e metrics", Force: true}); err != nil {
		t.Fatal(err)
	}
	before, err := framework.ScrapeURL(ctx, http.DefaultClient, sc.d.HealthURL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	want := before.Series(stateGauges...)
	for _, name := range []string{"prowjob_dispatcher_last_successful_dispatch_timestamp_seconds{}", "prowjob_dispatcher_ready{}",
		"prowjob_dispatcher_cluster_capacity_cap{cluster=\"build02\"}", "prowjob_dispatcher_job_overrides{cluster=\"build03\"}",
		"prowjob_dispatcher_imbalance_ratio{}"} {
		if want[name] <= 0 {
			t.Errorf("before the restart %s = %v, want above 0", name, want[name])
		}
	}
	if err := sc.d.Stop(30 * time.Second); err != nil {
		t.Fatalf("stopping: %v", err)
	}
	d, err := sc.d.Restart(ctx)
	if err != nil {
		t.Fatalf("restarting on the same state dir: %v", err)
	}
	sc.d = d
	t.Cleanup(d.Kill)
	first, err := framework.ScrapeURL(ctx, http.DefaultClient, d.HealthURL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	got := first.Series(stateGauges...)
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("first scrape after the restart: %s = %v, before it %v", k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("first scrape after the restart: %s = %v, absent before it", k, got[k])
		}
	}
	var ready struct {
		LastDispatch time.Time `json:"lastDispatch"`
		Unplaceable  int       `json:"unplaceable"`
	}
	if err := getJSON(ctx, d.HealthURL+"/readyz", &ready); err != nil {
		t.Fatal(err)
	}
	if n := first.Sum("prowjob_dispatcher_unplaceable_jobs"); float64(ready.Unplaceable) != n {
		t.Errorf("/readyz says %d unplaceable, the metric %v", ready.Unplaceable, n)
	}
	if ts := got["prowjob_dispatcher_last_successful_dispatch_timestamp_seconds{}"]; ready.LastDispatch.Unix() != int64(ts) {
		t.Errorf("/readyz's last dispatch %s, the metric's %v", ready.LastDispatch, ts)
	}
}

// notScraped are the metrics the alerts or the dashboard name that this
// test's processes cannot show, each with why.
var notScraped = map[string]string{
	"up": "Prometheus' own series for each target",
	"apiserver_admission_webhook_fail_open_count": "kube-apiserver (k8s.io/apiserver/pkg/admission/metrics) exposes it only once a call to a " +
		"webhook with failurePolicy Ignore failed; TestWebhookDown makes such calls",
}

// TestAlertMetricsAreExposed scrapes every process the alerts and the
// dashboard watch (serve with the file state, health and a backup; serve
// with the kubernetes state; the plugin; the kube-apiserver) after they did
// some work, and checks that every metric the PromQL of the alerts and the
// dashboard names is one of theirs.
func TestAlertMetricsAreExposed(t *testing.T) {
	s := require(t)
	ctx := testContext(t)
	used, err := monitoring.UsedMetrics(s.moduleDir)
	if err != nil {
		t.Fatal(err)
	}

	// serve with health evaluation in report mode, over a Prometheus that
	// scrapes Prow's prowjob_state_transitions.
	exporter := startProwExporter(t, []string{"build01", "build02", "build03"})
	dir := filepath.Join(s.workDir, "prometheus-metrics")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	prom, err := framework.StartScrapingPrometheus(ctx, s.assets.Prometheus, dir, s.workDir, strings.TrimPrefix(exporter.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prom.Kill)
	sc := newScenario(t, "metrics", scenarioOptions{extraArgs: []string{"--health-prometheus-url", prom.URL, "--health-interval", "1s",
		"--health-dwell", "2s", "--health-window", "15s", "--health-min-samples", "5", "--health-pending-query", "-"}})
	sc.admit(jobOriginUnit)
	// A dispatch that moves jobs, a cap, an operator's drain, a reschedule.
	blocked := blockBalancedCluster(sc)
	other := map[string]string{"build02": "build03", "build03": "build02"}[blocked]
	if _, err := sc.d.API.Drain(ctx, other, api.DrainRequest{Capacity: 50, TTL: "1h", Reason: "e2e metrics", Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.d.API.Reschedule(ctx, api.RescheduleRequest{Job: jobAPIVerify, Cluster: other, Reason: "e2e metrics"}); err != nil {
		t.Fatal(err)
	}
	// A failing cluster with no drain or cap: report mode records what it would do.
	exporter.setFailing(clusterARM64, true)
	waitFor(t, 2*time.Minute, "a health transition and a report-mode action", func() bool {
		m, err := framework.ScrapeURL(ctx, http.DefaultClient, sc.d.HealthURL+"/metrics")
		return err == nil && m.Names()["prowjob_dispatcher_cluster_health_transitions_total"] && m.Names()["prowjob_dispatcher_health_actions_total"]
	})
	if _, err := sc.d.API.Drain(ctx, clusterARM64, api.DrainRequest{TTL: "1h", Reason: "e2e metrics", Force: true}); err != nil {
		t.Fatal(err)
	}
	scrapes := map[string]framework.Scrape{}
	if scrapes["serve"], err = framework.ScrapeURL(ctx, http.DefaultClient, sc.d.HealthURL+"/metrics"); err != nil {
		t.Fatal(err)
	}

	// The plugin, after one command.
	hook := startPlugin(t, sc, newFakeGitHub(t))
	base := strings.TrimSuffix(strings.TrimSuffix(hook, "/hook"), "/")
	postHook(t, hook, issueComment(t, "alice", "/dispatch refresh", 7), pluginHMAC)
	for _, path := range []string{"/healthz", "/readyz"} {
		var body string
		if err := getText(ctx, base+path, &body); err != nil {
			t.Errorf("plugin %s: %v", path, err)
		}
	}
	if scrapes["plugin"], err = framework.ScrapeURL(ctx, http.DefaultClient, base+"/metrics"); err != nil {
		t.Fatal(err)
	}

	// serve with a Git backup configured; serve with the kubernetes state.
	backup, _, _, _ := startBackup(t, 0)
	if scrapes["serve --backup-repo"], err = framework.ScrapeURL(ctx, http.DefaultClient, backup.d.HealthURL+"/metrics"); err != nil {
		t.Fatal(err)
	}
	h := newHACluster(t, "metrics-ha", s.api, 1)
	h.waitOneLeader(haStartTimeout)
	if scrapes["serve --state-backend=kubernetes"], err = framework.ScrapeURL(ctx, http.DefaultClient, h.replica(0).HealthURL+"/metrics"); err != nil {
		t.Fatal(err)
	}
	if scrapes["kube-apiserver"], err = s.api.Metrics(ctx); err != nil {
		t.Fatal(err)
	}

	exposed := map[string]string{}
	for process, m := range scrapes {
		for n := range m.Names() {
			exposed[n] = process
		}
	}
	for _, name := range slices.Sorted(maps.Keys(used)) {
		if _, ok := exposed[name]; ok {
			continue
		}
		if why, ok := notScraped[name]; ok {
			t.Logf("%s: not scraped here: %s", name, why)
			continue
		}
		t.Errorf("%s, named by %s, is exposed by none of %q", name, strings.Join(used[name], "; "), slices.Sorted(maps.Keys(scrapes)))
	}
	for name := range notScraped {
		if _, ok := used[name]; !ok {
			t.Errorf("notScraped lists %s, which no alert or panel uses: drop it", name)
		}
	}
	t.Logf("%d metrics named by the alerts and the dashboard", len(used))
}
