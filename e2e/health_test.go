package e2e

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// prowExporter exports prowjob_state_transitions{cluster,state} as Prow's
// controllers do, growing on its own: every 250 ms each cluster finishes 2
// ProwJobs in success, and a failing cluster 2 more in error.
type prowExporter struct {
	mu      sync.Mutex
	failing map[string]bool
	srv     *httptest.Server
}

func startProwExporter(t *testing.T, clusters []string) *prowExporter {
	t.Helper()
	reg := prometheus.NewRegistry()
	transitions := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prowjob_state_transitions", Help: "Number of prowjobs transitioning states."}, []string{"cluster", "state"})
	reg.MustRegister(transitions)
	e := &prowExporter{failing: map[string]bool{}, srv: httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			e.mu.Lock()
			for _, c := range clusters {
				transitions.WithLabelValues(c, "success").Add(2)
				transitions.WithLabelValues(c, "error").Add(0)
				if e.failing[c] {
					transitions.WithLabelValues(c, "error").Add(2)
				}
			}
			e.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(stop); <-done; e.srv.Close() })
	return e
}

func (e *prowExporter) setFailing(cluster string, failing bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failing[cluster] = failing
}

// clusterHealth is cluster's health and override as GET /api/v1/clusters shows them.
func (sc *scenario) clusterHealth(cluster string) (*api.ClusterHealth, *api.Drain) {
	sc.t.Helper()
	clusters, err := sc.d.API.Clusters(testContext(sc.t))
	if err != nil {
		sc.t.Fatalf("GET %s: %v", api.ClustersPath, err)
	}
	for _, c := range clusters {
		if c.Name == cluster {
			return c.Health, c.Override
		}
	}
	sc.t.Fatalf("GET %s does not list %s", api.ClustersPath, cluster)
	return nil, nil
}

// TestHealthFailover: a real Prometheus scrapes an exporter of Prow's
// prowjob_state_transitions. When the error share of the cluster holding
// jobOriginUnit rises past the threshold, the act-mode dispatcher drains it
// within two evaluation periods after the dwell (the drain's reason carries
// the numbers, a Warning Event says why), the job's next ProwJob lands elsewhere, and once the errors
// stop the drain is cancelled and the job comes back; all the while the
// report-mode dispatcher on the same Prometheus drains nothing, keeps the
// job where it was, and says it would drain.
func TestHealthFailover(t *testing.T) {
	s := require(t)
	exporter := startProwExporter(t, []string{"build01", "build02", "build03"})
	dir := filepath.Join(s.workDir, "prometheus-health")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	prom, err := framework.StartScrapingPrometheus(testContext(t), s.assets.Prometheus, dir, s.workDir, strings.TrimPrefix(exporter.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prom.Kill)
	health := []string{"--health-prometheus-url", prom.URL, "--health-interval", "1s", "--health-dwell", "2s",
		"--health-window", "15s", "--health-min-samples", "5", "--health-pending-query", "-"}
	act := newScenario(t, "health-act", scenarioOptions{extraArgs: append([]string{"--health-mode", "act",
		"--health-events-kubeconfig", s.api.KubeconfigPath, "--health-events-namespace", "health-act", "--health-events-pod", "dispatcher-0"}, health...)})
	report := newScenario(t, "health-report", scenarioOptions{extraArgs: health})

	job := jobOriginUnit
	from := act.assignment(job).Cluster
	if from == clusterARM64 || !usableClusters[from] {
		t.Fatalf("%s is on %s; want a usable cluster other than %s (the only arm64 one: draining it is refused)", job, from, clusterARM64)
	}
	if got := report.assignment(job).Cluster; got != from {
		t.Fatalf("the two dispatchers disagree on %s: %s and %s", job, from, got)
	}
	// Healthy first: the failing cluster must become unhealthy, not start so.
	waitFor(t, 60*time.Second, from+" healthy", func() bool {
		h, _ := act.clusterHealth(from)
		return h != nil && h.State == "healthy"
	})

	exporter.setFailing(from, true)
	failedAt := time.Now()
	var o *api.Drain
	waitFor(t, 60*time.Second, from+" drained by health", func() bool {
		_, o = act.clusterHealth(from)
		return o != nil
	})
	// The error share crosses 30 % within a few seconds of the 15 s window,
	// then the 2 s dwell, then at most two 1 s evaluations.
	t.Logf("%s drained %s after the errors began: %s", from, time.Since(failedAt).Round(time.Second), o.Reason)
	if o.By != "health" || !strings.Contains(o.Reason, "error share") || !strings.Contains(o.Reason, "finished jobs") || o.Capacity != 0 {
		t.Errorf("override %+v, want an automatic drain by health with the numbers", o)
	}
	if h, _ := act.clusterHealth(from); h == nil || h.State != "unhealthy" || h.Mode != "act" || h.ErrorShare == nil || *h.ErrorShare < 0.3 {
		t.Errorf("act health of %s: %+v, want unhealthy at 30 %% or more", from, h)
	}
	if got := act.admit(job); got == from || !usableClusters[got] {
		t.Errorf("while %s is drained by health, a ProwJob of %s landed on %q", from, job, got)
	}
	// The transition is a Kubernetes Event regarding the dispatcher's Pod, with the numbers and the drain.
	cfg, err := clientcmd.BuildConfigFromFlags("", s.api.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	waitFor(t, 30*time.Second, "a ClusterUnhealthy Event for "+from, func() bool {
		list, err := cs.EventsV1().Events("health-act").List(testContext(t), metav1.ListOptions{})
		if err != nil {
			t.Fatalf("listing Events: %v", err)
		}
		notes = nil
		for _, ev := range list.Items {
			notes = append(notes, ev.Reason+" "+ev.Action+": "+ev.Note)
			if ev.Reason == "ClusterUnhealthy" && ev.Type == "Warning" && ev.Action == "HealthTransition/"+from && ev.Regarding.Kind == "Pod" && ev.Regarding.Name == "dispatcher-0" &&
				ev.ReportingController == "prowjob-dispatcher" && strings.Contains(ev.Note, "cluster "+from+": healthy -> unhealthy (act mode): error share") &&
				strings.Contains(ev.Note, "drained automatically") {
				return true
			}
		}
		return false
	})
	t.Logf("Events: %q", notes)

	// Report mode: the same numbers, nothing drained, and it says what it would do.
	waitFor(t, 30*time.Second, "report mode judging "+from+" unhealthy", func() bool {
		h, _ := report.clusterHealth(from)
		return h != nil && h.State == "unhealthy"
	})
	if h, ro := report.clusterHealth(from); ro != nil || h.Mode != "report" || !strings.HasPrefix(h.Action, "would drain") {
		t.Errorf("report mode: health %+v, override %+v; want no override and a would-drain action", h, ro)
	}
	report.wantNoDrain("report mode")
	if got := report.admit(job); got != from {
		t.Errorf("report mode: a ProwJob of %s landed on %q, want %s (nothing moves)", job, got, from)
	}

	exporter.setFailing(from, false)
	recoveredAt := time.Now()
	waitFor(t, 90*time.Second, from+" undrained after recovery", func() bool {
		_, o := act.clusterHealth(from)
		return o == nil
	})
	t.Logf("%s undrained %s after the errors stopped", from, time.Since(recoveredAt).Round(time.Second))
	if h, _ := act.clusterHealth(from); h == nil || h.State != "healthy" {
		t.Errorf("act health of %s after recovery: %+v, want healthy", from, h)
	}
	if got := act.admit(job); got != from {
		t.Errorf("after recovery, a ProwJob of %s landed on %q, want %s back; loads: %s", job, got, from, act.loads())
	}
}

// waitFor polls cond every 200 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within %s", what, timeout)
}
