package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	prowapi "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// scenario is one test's dispatcher process, with its own copy of the
// configs, its own state, and a webhook that admits the ProwJobs of its own
// namespace only.
type scenario struct {
	t    *testing.T
	s    *suite
	name string
	dir  string
	ns   string
	d    *framework.ServeProcess
	// webhook is the registered configuration, replaced by registerWebhook.
	webhook *admissionregv1.MutatingWebhookConfiguration
	config  struct{ dispatcher, clusters, jobs string }
}

// scenarioOptions change how a scenario's dispatcher runs.
type scenarioOptions struct {
	// prometheusURL replaces the shared Prometheus.
	prometheusURL string
	// extraArgs are more serve flags.
	extraArgs []string
}

// newScenario copies testdata's configs, starts a dispatcher on them with the
// shared Prometheus, registers its webhook for a fresh namespace, and waits
// until the API server sends that namespace's ProwJobs to it.
func newScenario(t *testing.T, name string, opts scenarioOptions) *scenario {
	t.Helper()
	s := require(t)
	bin := s.requireBinary(t)
	ctx := testContext(t)
	dir, err := os.MkdirTemp(s.workDir, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	sc := &scenario{t: t, s: s, name: name, dir: dir, ns: name}
	if err := framework.CopyDir("testdata", filepath.Join(dir, "config")); err != nil {
		t.Fatalf("copying testdata: %v", err)
	}
	sc.config.dispatcher = filepath.Join(dir, "config", "dispatcher.yaml")
	sc.config.clusters = filepath.Join(dir, "config", "clusters.yaml")
	sc.config.jobs = filepath.Join(dir, "config", "jobs")
	promURL := opts.prometheusURL
	if promURL == "" {
		promURL = s.prom.URL
	}
	sc.d, err = framework.StartServe(ctx, framework.ServeConfig{
		Bin:              bin,
		Dir:              dir,
		Name:             "dispatcher-" + name,
		DispatcherConfig: sc.config.dispatcher,
		ClusterConfig:    sc.config.clusters,
		JobConfig:        sc.config.jobs,
		PrometheusURL:    promURL,
		ExtraArgs:        opts.extraArgs,
	})
	if err != nil {
		t.Fatalf("starting the dispatcher: %v", err)
	}
	t.Cleanup(func() { sc.d.Kill() })
	if err := s.api.CreateNamespace(ctx, sc.ns, map[string]string{framework.ScenarioLabel: name}); err != nil {
		t.Fatal(err)
	}
	sc.registerWebhook(sc.d.WebhookURL)
	sc.waitWebhookActive()
	return sc
}

// registerWebhook points this scenario's webhook at url with the
// dispatcher's CA, replacing the one registered before.
func (sc *scenario) registerWebhook(url string) {
	sc.t.Helper()
	ca, err := sc.d.CABundle()
	if err != nil {
		sc.t.Fatal(err)
	}
	if sc.webhook != nil {
		if err := sc.s.api.Client.Delete(testContext(sc.t), sc.webhook); err != nil {
			sc.t.Fatalf("deleting webhook %s: %v", sc.webhook.Name, err)
		}
	} else {
		sc.t.Cleanup(func() {
			if sc.webhook != nil {
				_ = sc.s.api.Client.Delete(context.Background(), sc.webhook)
			}
		})
	}
	sc.webhook, err = sc.s.api.RegisterWebhook(testContext(sc.t), sc.name, url, ca)
	if err != nil {
		sc.t.Fatal(err)
	}
}

// waitWebhookActive waits until the API server calls the webhook: a dry-run
// ProwJob of a pinned job comes back with the pinned cluster. (The API server
// picks up a new webhook configuration asynchronously.)
func (sc *scenario) waitWebhookActive() {
	sc.t.Helper()
	ctx := testContext(sc.t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		pj, err := sc.createProwJob(framework.ProwJob{Job: jobConsolePinned, Labels: jobLabels[jobConsolePinned]}, client.DryRunAll)
		if err == nil && pj.Spec.Cluster == clusterPinned {
			return
		}
		if time.Now().After(deadline) {
			sc.t.Fatalf("the API server did not send ProwJobs of namespace %s to %s within 20s (last: cluster %q, err %v); dispatcher log:\n%s",
				sc.ns, sc.d.WebhookURL, clusterOf(pj), err, sc.d.LogTail(3000))
		}
		select {
		case <-ctx.Done():
			sc.t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// createProwJob creates a ProwJob in the scenario's namespace.
func (sc *scenario) createProwJob(pj framework.ProwJob, opts ...client.CreateOption) (*prowapi.ProwJob, error) {
	return sc.s.api.CreateProwJob(testContext(sc.t), sc.ns, pj, opts...)
}

// admit creates a ProwJob for job (with its config labels) and returns the
// cluster admission gave it.
func (sc *scenario) admit(job string) string {
	sc.t.Helper()
	pj, err := sc.createProwJob(framework.ProwJob{Job: job, Labels: jobLabels[job]})
	if err != nil {
		sc.t.Fatalf("creating a ProwJob of %s: %v", job, err)
	}
	return pj.Spec.Cluster
}

// assignment asks the dispatcher's API for job's assignment.
func (sc *scenario) assignment(job string) *api.Assignment {
	sc.t.Helper()
	a, err := sc.d.API.Assignment(testContext(sc.t), job)
	if err != nil {
		sc.t.Fatalf("GET assignment of %s: %v", job, err)
	}
	return a
}

// assignmentOrNil is assignment, but nil for a job the dispatcher does not know.
func (sc *scenario) assignmentOrNil(job string) *api.Assignment {
	sc.t.Helper()
	a, err := sc.d.API.Assignment(testContext(sc.t), job)
	var se *api.StatusError
	if errors.As(err, &se) && se.Code == 404 {
		return nil
	}
	if err != nil {
		sc.t.Fatalf("GET assignment of %s: %v", job, err)
	}
	return a
}

// setClusterBlocked rewrites the scenario's cluster config with name blocked.
func (sc *scenario) setClusterBlocked(name string) {
	sc.t.Helper()
	data, err := os.ReadFile(sc.config.clusters)
	if err != nil {
		sc.t.Fatal(err)
	}
	needle := "- name: " + name + "\n"
	if !strings.Contains(string(data), needle) {
		sc.t.Fatalf("cluster config has no %q", needle)
	}
	out := strings.Replace(string(data), needle, needle+"  blocked: true\n", 1)
	if err := os.WriteFile(sc.config.clusters, []byte(out), 0o644); err != nil {
		sc.t.Fatal(err)
	}
}

func clusterOf(pj *prowapi.ProwJob) string {
	if pj == nil {
		return "<none>"
	}
	return pj.Spec.Cluster
}

// testContext is a context bounded by the test's deadline, or 2 minutes.
func testContext(t *testing.T) context.Context {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// eventually retries check every 200ms until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	eventuallyEvery(t, timeout, 200*time.Millisecond, what, check, nil)
}

// getJSON GETs url and decodes the JSON answer into out.
func getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: decoding %s: %w", url, body, err)
	}
	return nil
}
