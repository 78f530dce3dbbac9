package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	prowapi "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
)

// The Prow side of the install as docs/prow ships it: the in-cluster URLs
// the test replaces with its processes' addresses.
const (
	docsSchedulerConfig = "../docs/prow/config.yaml"
	docsPluginsConfig   = "../docs/prow/plugins.yaml"
	docsDispatcherURL   = "http://prowjob-dispatcher.prowjob-dispatcher.svc:8080"
	docsPluginURL       = "http://prowjob-dispatcher-plugin.prowjob-dispatcher.svc:8888"
	docsExamples        = "../docs/examples"
)

// Where the e2e's Prow keeps ProwJobs and test pods (testdata/prow/config.yaml),
// and the kubeconfig context of the service cluster, which Prow also calls
// "default": the cluster of a job whose config names none.
const (
	prowJobNamespace = "prow"
	testPodNamespace = "test-pods"
	serviceContext   = "app.ci"
)

// Jobs of docs/examples whose cluster a rule decides: the kvm label sends the
// first to build02, the ssh bastion label the second to build01. The job
// config names no cluster for either.
const (
	prowJobKVM        = "periodic-ci-kubevirt-e2e"
	prowJobSSHBastion = "periodic-ci-openshift-release-master-nightly-4.18-e2e-metal-ipi-ovn"
)

// prowInstall is Prow's own binaries running against three API servers, and
// the dispatcher they meet.
type prowInstall struct {
	t    *testing.T
	s    *suite
	bin  *framework.ProwBinaries
	dir  string
	apis map[string]*framework.APIServer
	// kubeconfig has a context per API server.
	kubeconfig string
	// plankConfig is Prow's config without a scheduler (ProwJobs start
	// triggered); fullConfig adds docs/prow/config.yaml (they start in
	// scheduling). jobConfig is docs/examples' job config.
	plankConfig, fullConfig, jobConfig string
	d                                  *framework.ServeProcess
	webhook                            *admissionregv1.MutatingWebhookConfiguration
}

// TestProwRunsJobs runs Prow's own prow-controller-manager (plank and the
// scheduler with the external strategy), mkpj, phony and checkconfig against
// a service cluster and two build clusters (three API servers, one
// kubeconfig): the cluster the webhook or the schedule API gives a ProwJob is
// the API server plank creates its pod in; a signed /reschedule comment sent
// by phony moves the job's next pod; with the dispatcher down, ProwJobs are
// created and scheduled to their job config's cluster.
func TestProwRunsJobs(t *testing.T) {
	p := newProwInstall(t)
	ctx := testContext(t)

	t.Run("checkconfig", func(t *testing.T) {
		// docs/examples holds OpenShift's real jobs: names longer than 63
		// characters, and repositories without Prow's trigger plugin here.
		out, err := exec.CommandContext(ctx, p.bin.Checkconfig, "--strict",
			"--exclude-warning=long-job-names", "--exclude-warning=missing-trigger",
			"--config-path", p.fullConfig, "--job-config-path", p.jobConfig,
			"--plugin-config", docsPluginsConfig).CombinedOutput()
		if err != nil {
			t.Fatalf("Prow's checkconfig refuses docs/prow's snippets with docs/examples' jobs: %v\n%s", err, out)
		}
	})

	// The webhook sets spec.cluster; plank creates the pod there.
	p.registerWebhook()
	placed := map[string]string{}
	for _, job := range []string{prowJobKVM, prowJobSSHBastion} {
		want := p.assignment(job)
		pj := p.mkpj(job, p.plankConfig)
		if pj.Spec.Cluster != want {
			t.Fatalf("%s: the webhook set spec.cluster %q, the dispatcher's assignment is %q", job, pj.Spec.Cluster, want)
		}
		p.wantPod(pj, want)
		placed[job] = want
	}
	if placed[prowJobKVM] == placed[prowJobSSHBastion] {
		t.Fatalf("both jobs landed on %s: the test cannot tell plank followed spec.cluster", placed[prowJobKVM])
	}

	// phony's /reschedule comment, through Prow's hook and docs/prow/plugins.yaml,
	// moves the next pod; a forged one, to hook or to the plugin, does not.
	from, to := placed[prowJobSSHBastion], placed[prowJobKVM]
	gh := newFakeGitHub(t)
	pluginURL := p.startPlugin(gh)
	hookURL := p.startHook(gh, pluginURL)
	comment := fmt.Sprintf("/reschedule %s %s", prowJobSSHBastion, to)
	for i, url := range []string{hookURL, pluginURL} {
		if out := p.phony(url, "not-the-secret", comment, 21+i); !strings.Contains(out, "403") {
			t.Errorf("phony with a wrong HMAC to %s: want a 403, phony said:\n%s", url, out)
		}
	}
	p.wantPod(p.mkpj(prowJobSSHBastion, p.plankConfig), from)
	if out := p.phony(hookURL, pluginHMAC, comment, 23); !strings.Contains(out, "Hook sent") {
		t.Fatalf("hook did not take phony's signed /reschedule:\n%s", out)
	}
	eventually(t, 15*time.Second, "the /reschedule sent by phony reaches the dispatcher", func() error {
		if got := p.assignment(prowJobSSHBastion); got != to {
			return fmt.Errorf("%s is on %s", prowJobSSHBastion, got)
		}
		return nil
	})
	p.wantPod(p.mkpj(prowJobSSHBastion, p.plankConfig), to)

	// Without the webhook, Prow's scheduler asks the dispatcher's
	// /api/v1/schedule (the external strategy).
	p.deleteWebhook()
	pj := p.mkpj(prowJobKVM, p.fullConfig)
	if pj.Status.State != prowapi.SchedulingState || pj.Spec.Cluster != "default" {
		t.Fatalf("with docs/prow/config.yaml mkpj made a ProwJob in state %q on %q, want scheduling on the job config's default", pj.Status.State, pj.Spec.Cluster)
	}
	p.wantPod(pj, placed[prowJobKVM])

	// The dispatcher down: the webhook is skipped (failurePolicy Ignore) and
	// the scheduler keeps spec.cluster; the pods go where the job config says.
	p.registerWebhook()
	p.d.Kill()
	p.wantPod(p.mkpj(prowJobKVM, p.plankConfig), "default")
	p.wantPod(p.mkpj(prowJobSSHBastion, p.fullConfig), "default")
}

// newProwInstall starts three API servers, the dispatcher on docs/examples,
// and prow-controller-manager with plank and the scheduler.
func newProwInstall(t *testing.T) *prowInstall {
	t.Helper()
	s := require(t)
	ctx := testContext(t)
	dispatcherBin := s.requireBinary(t)
	bin, err := framework.FindProwBinaries(ctx, s.moduleDir)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(s.workDir, "prow-")
	if err != nil {
		t.Fatal(err)
	}
	p := &prowInstall{t: t, s: s, bin: bin, dir: dir, jobConfig: filepath.Join(docsExamples, "jobs")}

	start := time.Now()
	p.startAPIServers(ctx)
	t.Logf("three API servers up in %s", time.Since(start).Round(time.Millisecond))

	// Only build01 and build02 exist here: block build03 (build04 is blocked in
	// docs/examples already).
	clusters := p.file(filepath.Join(docsExamples, "clusters.yaml"))
	clusters = strings.Replace(clusters, "- name: build03\n", "- name: build03\n  blocked: true\n", 1)
	p.write("clusters.yaml", clusters)
	if err := os.MkdirAll(filepath.Join(dir, "dispatcher"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.d, err = framework.StartServe(ctx, framework.ServeConfig{
		Bin:              dispatcherBin,
		Dir:              filepath.Join(dir, "dispatcher"),
		Name:             "dispatcher",
		DispatcherConfig: filepath.Join(docsExamples, "dispatcher.yaml"),
		ClusterConfig:    filepath.Join(dir, "clusters.yaml"),
		JobConfig:        p.jobConfig,
		ExtraArgs:        []string{"--demand-file", filepath.Join(docsExamples, "demand.yaml")},
	})
	if err != nil {
		t.Fatalf("starting the dispatcher: %v", err)
	}
	t.Cleanup(p.d.Kill)

	base := p.file(filepath.Join("testdata", "prow", "config.yaml"))
	p.plankConfig = p.write("prow-plank.yaml", base)
	p.fullConfig = p.write("prow-config.yaml", base+"\n"+p.docsSnippet(docsSchedulerConfig, docsDispatcherURL, p.d.APIURL))

	ports, err := framework.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := framework.StartProcess("prow-controller-manager", dir, bin.ControllerManager,
		"--config-path", p.fullConfig,
		"--job-config-path", p.jobConfig,
		"--kubeconfig", p.kubeconfig,
		"--dry-run=false",
		"--enable-controller=plank",
		"--enable-controller=scheduler",
		"--health-port", strconv.Itoa(ports[0]),
		"--metrics-port", strconv.Itoa(ports[1]),
		"--pprof-port", strconv.Itoa(ports[2]),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pcm.Kill)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := pcm.WaitHTTP(wctx, fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", ports[0])); err != nil {
		t.Fatal(err)
	}
	return p
}

// startAPIServers starts the service cluster (ProwJob CRD) and the build
// clusters build01 and build02 at once, and writes one kubeconfig with a
// context per cluster, the service cluster's current.
func (p *prowInstall) startAPIServers(ctx context.Context) {
	p.t.Helper()
	names := []string{serviceContext, "build01", "build02"}
	apis := make([]*framework.APIServer, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			work := filepath.Join(p.dir, name)
			if errs[i] = os.MkdirAll(work, 0o755); errs[i] != nil {
				return
			}
			apis[i], errs[i] = framework.StartAPIServerWith(ctx, framework.APIServerOptions{
				AssetsDir: p.s.assets.Dir, WorkDir: work, WithoutProwJobCRD: name != serviceContext,
			})
		})
	}
	wg.Wait()
	p.apis = map[string]*framework.APIServer{}
	for i, name := range names {
		if apis[i] != nil {
			p.t.Cleanup(func() { _ = apis[i].Stop() })
			p.apis[name] = apis[i]
		}
	}
	if err := errors.Join(errs...); err != nil {
		p.t.Fatal(err)
	}
	for name, api := range p.apis {
		namespaces := []string{testPodNamespace}
		if name == serviceContext {
			namespaces = append(namespaces, prowJobNamespace)
		}
		for _, ns := range namespaces {
			if err := api.CreateNamespace(ctx, ns, nil); err != nil {
				p.t.Fatal(err)
			}
		}
	}
	p.kubeconfig = filepath.Join(p.dir, "kubeconfig")
	if err := framework.WriteKubeconfig(p.kubeconfig, p.apis, serviceContext); err != nil {
		p.t.Fatal(err)
	}
}

// docsSnippet returns a docs/prow file with its in-cluster URL replaced by
// url; it fails when the file no longer holds that URL.
func (p *prowInstall) docsSnippet(path, docsURL, url string) string {
	p.t.Helper()
	text := p.file(path)
	if !strings.Contains(text, docsURL) {
		p.t.Fatalf("%s no longer holds %s", path, docsURL)
	}
	return strings.ReplaceAll(text, docsURL, url)
}

func (p *prowInstall) file(path string) string {
	p.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(data)
}

// write writes content to name in the install's dir and returns its path.
func (p *prowInstall) write(name, content string) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// registerWebhook registers the MutatingWebhookConfiguration the example
// overlay renders, pointed at the dispatcher by URL (it runs outside the
// cluster) with its CA, and waits until the API server calls it.
func (p *prowInstall) registerWebhook() {
	p.t.Helper()
	ctx := testContext(p.t)
	cfg := &admissionregv1.MutatingWebhookConfiguration{}
	if !renderedObject(p.t, renderedObjects(p.t, p.s.kustomize(ctx, p.t, "../manifests/overlays/example")), "MutatingWebhookConfiguration", "prowjob-dispatcher", cfg) {
		p.t.Fatal("manifests/overlays/example renders no MutatingWebhookConfiguration prowjob-dispatcher")
	}
	ca, err := p.d.CABundle()
	if err != nil {
		p.t.Fatal(err)
	}
	cfg.Annotations = nil // cert-manager's CA injection
	for i := range cfg.Webhooks {
		cfg.Webhooks[i].ClientConfig = admissionregv1.WebhookClientConfig{URL: &p.d.WebhookURL, CABundle: ca}
	}
	service := p.apis[serviceContext]
	if err := service.Client.Create(ctx, cfg); err != nil {
		p.t.Fatalf("registering the rendered webhook: %v", err)
	}
	p.webhook = cfg
	eventually(p.t, 20*time.Second, "the API server calls the webhook", func() error {
		pj, err := service.CreateProwJob(ctx, prowJobNamespace, framework.ProwJob{Job: prowJobKVM, Labels: map[string]string{"devices.kubevirt.io/kvm": "1"}}, client.DryRunAll)
		if err != nil {
			return err
		}
		if pj.Spec.Cluster == "default" {
			return errors.New("a dry-run ProwJob kept cluster default")
		}
		return nil
	})
}

// deleteWebhook deletes the webhook and waits until the API server stops calling it.
func (p *prowInstall) deleteWebhook() {
	p.t.Helper()
	ctx := testContext(p.t)
	service := p.apis[serviceContext]
	if err := service.Client.Delete(ctx, p.webhook); err != nil {
		p.t.Fatalf("deleting the webhook: %v", err)
	}
	eventually(p.t, 20*time.Second, "the API server stops calling the webhook", func() error {
		pj, err := service.CreateProwJob(ctx, prowJobNamespace, framework.ProwJob{Job: prowJobKVM, Labels: map[string]string{"devices.kubevirt.io/kvm": "1"}}, client.DryRunAll)
		if err != nil {
			return err
		}
		if pj.Spec.Cluster != "default" {
			return fmt.Errorf("a dry-run ProwJob still gets cluster %s", pj.Spec.Cluster)
		}
		return nil
	})
}

// assignment is the dispatcher's cluster for job.
func (p *prowInstall) assignment(job string) string {
	p.t.Helper()
	a, err := p.d.API.Assignment(testContext(p.t), job)
	if err != nil {
		p.t.Fatalf("GET assignment of %s: %v", job, err)
	}
	return a.Cluster
}

// mkpj makes a ProwJob of job with Prow's mkpj and Prow's config at config,
// and creates it in the service cluster (admission runs), as mkpj
// --trigger-job does. It returns the ProwJob as created.
func (p *prowInstall) mkpj(job, config string) *prowapi.ProwJob {
	p.t.Helper()
	ctx := testContext(p.t)
	pj, err := p.bin.MakeProwJob(ctx, config, p.jobConfig, job)
	if err != nil {
		p.t.Fatal(err)
	}
	pj.Namespace = prowJobNamespace
	if err := p.apis[serviceContext].Client.Create(ctx, pj); err != nil {
		p.t.Fatalf("creating the ProwJob mkpj made for %s: %v", job, err)
	}
	return pj
}

// wantPod waits until plank has created pj's pod in the API server of
// cluster ("default": the service cluster) and checks that no other API
// server has it.
func (p *prowInstall) wantPod(pj *prowapi.ProwJob, cluster string) {
	p.t.Helper()
	ctx := testContext(p.t)
	want := cluster
	if cluster == "default" {
		want = serviceContext
	}
	var found []string
	eventually(p.t, 30*time.Second, fmt.Sprintf("plank creates the pod of %s (%s) in %s", pj.Name, pj.Spec.Job, cluster), func() error {
		found = found[:0]
		for name, api := range p.apis {
			err := api.Client.Get(ctx, client.ObjectKey{Namespace: testPodNamespace, Name: pj.Name}, &corev1.Pod{})
			switch {
			case err == nil:
				found = append(found, name)
			case !apierrors.IsNotFound(err):
				return err
			}
		}
		if len(found) == 0 {
			got := &prowapi.ProwJob{}
			if err := p.apis[serviceContext].Client.Get(ctx, client.ObjectKeyFromObject(pj), got); err != nil {
				return err
			}
			return fmt.Errorf("no pod yet; ProwJob in state %q on %q (%s)", got.Status.State, got.Spec.Cluster, got.Status.Description)
		}
		return nil
	})
	if len(found) != 1 || found[0] != want {
		p.t.Fatalf("the pod of %s (%s) is in %v, want only %s (%s)", pj.Name, pj.Spec.Job, found, want, cluster)
	}
}

// hookHMAC is the HMAC secret file of hook and the plugin, in hook's format.
var hookHMAC = fmt.Sprintf("'*':\n- value: %s\n  created_at: 2026-01-01T00:00:00Z\n", pluginHMAC)

// startPlugin runs the dispatcher's plugin with hook's HMAC secret against
// gh, and returns the URL it takes events at.
func (p *prowInstall) startPlugin(gh *fakeGitHub) string {
	p.t.Helper()
	return startPluginWith(p.t, pluginOptions{
		bin: p.s.requireBinary(p.t), dir: filepath.Join(p.dir, "plugin"), hmac: hookHMAC,
		jobConfig: p.jobConfig, dispatcherURL: p.d.APIURL, tokenFile: filepath.Join(p.dir, "dispatcher", "token"),
	}, gh)
}

// startHook runs Prow's hook with docs/prow/plugins.yaml, its endpoint the
// plugin at pluginURL, against gh, and returns the URL it takes events at.
func (p *prowInstall) startHook(gh *fakeGitHub, pluginURL string) string {
	p.t.Helper()
	dir := filepath.Join(p.dir, "hook")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	plugins := p.write(filepath.Join("hook", "plugins.yaml"), p.docsSnippet(docsPluginsConfig, docsPluginURL, strings.TrimSuffix(pluginURL, "/")))
	hmac := p.write(filepath.Join("hook", "hmac"), hookHMAC)
	token := p.write(filepath.Join("hook", "github-token"), "e2e-github-token")
	ports, err := framework.FreePorts(4)
	if err != nil {
		p.t.Fatal(err)
	}
	hook, err := framework.StartProcess("hook", dir, p.bin.Hook,
		"--config-path", p.fullConfig,
		"--job-config-path", p.jobConfig,
		"--plugin-config", plugins,
		"--hmac-secret-file", hmac,
		"--github-token-path", token,
		"--github-endpoint", gh.URL,
		"--kubeconfig", p.kubeconfig,
		// hook has no dry-run Kubernetes client; it runs no plugin of its own
		// here, so nothing writes to GitHub or the clusters.
		"--dry-run=false",
		"--port", strconv.Itoa(ports[0]),
		"--health-port", strconv.Itoa(ports[1]),
		"--metrics-port", strconv.Itoa(ports[2]),
		"--pprof-port", strconv.Itoa(ports[3]),
	)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(hook.Kill)
	ctx, cancel := context.WithTimeout(testContext(p.t), 60*time.Second)
	defer cancel()
	if err := hook.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", ports[1])); err != nil {
		p.t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/hook", ports[0])
}

// phony sends an issue_comment event by alice with body to url, signed with
// secret, through Prow's phony, and returns what phony printed.
func (p *prowInstall) phony(url, secret, body string, id int) string {
	p.t.Helper()
	payload := p.write(fmt.Sprintf("comment-%d.json", id), string(issueComment(p.t, "alice", body, id)))
	out, err := exec.CommandContext(testContext(p.t), p.bin.Phony,
		"--address", url, "--hmac", secret, "--event", "issue_comment", "--payload", payload).CombinedOutput()
	if err != nil {
		p.t.Fatalf("phony: %v\n%s", err, out)
	}
	return string(out)
}
