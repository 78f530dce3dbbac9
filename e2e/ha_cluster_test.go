package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	prowapi "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/httpapi"
)

const (
	// haCRDs are the CRDs of the kubernetes state backend (make generate).
	haCRDs = "../manifests/crds"
	// haFence is the API server's fence on leader writes.
	haFence = "../manifests/components/ha/tableshard-fence.yaml"
	// haLease is the Lease the replicas elect their leader on.
	haLease = "prowjob-dispatcher"
	// haStartTimeout bounds starting all replicas and electing a leader.
	haStartTimeout = 60 * time.Second
)

// haCluster is one test's highly available dispatcher: several `serve
// --state-backend=kubernetes` processes on one copy of testdata's configs,
// sharing their state in a namespace of their own on apiServer.
type haCluster struct {
	t         *testing.T
	s         *suite
	name, ns  string
	apiServer *framework.APIServer
	// balancer and webhook, when set, carry the namespace's admissions.
	balancer *framework.Balancer
	webhook  *admissionregv1.MutatingWebhookConfiguration

	mu sync.Mutex
	// replicas[i] is the process of replica r<i+1>; a restart replaces it.
	replicas []*framework.ServeProcess
}

// newHACluster starts n replicas (r1..rn) on apiServer in a fresh namespace
// called name, each with its own ports, certificate and log, one token and
// one replica secret for all, and --advertise-address its own API URL. The
// replicas start together and StartServe waits for each one's /readyz.
func newHACluster(t *testing.T, name string, apiServer *framework.APIServer, n int) *haCluster {
	t.Helper()
	return newHAClusterWith(t, name, apiServer, n, nil)
}

// newHAClusterWith is newHACluster with tweak, when set, changing replica
// i's config (0-based) before the replicas start.
func newHAClusterWith(t *testing.T, name string, apiServer *framework.APIServer, n int, tweak func(i int, cfg *framework.ServeConfig)) *haCluster {
	t.Helper()
	s := require(t)
	bin := s.requireBinary(t)
	ctx := haContext(t, haStartTimeout)
	dir, err := os.MkdirTemp(s.workDir, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	h := &haCluster{t: t, s: s, name: name, ns: name, apiServer: apiServer}
	if err := framework.CopyDir("testdata", filepath.Join(dir, "config")); err != nil {
		t.Fatalf("copying testdata: %v", err)
	}
	s.installStateCRDs(ctx, t, apiServer)
	if err := apiServer.CreateNamespace(ctx, h.ns, map[string]string{framework.ScenarioLabel: name}); err != nil {
		t.Fatal(err)
	}
	ports, err := framework.FreePorts(3 * n)
	if err != nil {
		t.Fatal(err)
	}
	configs := make([]framework.ServeConfig, n)
	for i := range n {
		replica := fmt.Sprintf("r%d", i+1)
		rdir := filepath.Join(dir, replica)
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			t.Fatal(err)
		}
		configs[i] = framework.ServeConfig{
			Bin:              bin,
			Dir:              rdir,
			Name:             name + "-" + replica,
			DispatcherConfig: filepath.Join(dir, "config", "dispatcher.yaml"),
			ClusterConfig:    filepath.Join(dir, "config", "clusters.yaml"),
			JobConfig:        filepath.Join(dir, "config", "jobs"),
			PrometheusURL:    s.prom.URL,
			StateBackend:     framework.StateBackendKubernetes,
			Kube: framework.KubeState{
				Kubeconfig: apiServer.KubeconfigPath,
				Namespace:  h.ns,
				Replica:    replica,
				// One secret for all, as the Secret of components/ha.
				ReplicaSecretFile: filepath.Join(dir, "replica-secret"),
			},
			WebhookPort: ports[3*i],
			APIPort:     ports[3*i+1],
			HealthPort:  ports[3*i+2],
			TokenFile:   filepath.Join(dir, "token"),
		}
		if tweak != nil {
			tweak(i, &configs[i])
		}
	}
	h.replicas = make([]*framework.ServeProcess, n)
	t.Cleanup(h.killAll)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := framework.StartServe(ctx, configs[i])
			h.mu.Lock()
			h.replicas[i], errs[i] = d, err
			h.mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("starting %d replicas: %v", n, err)
	}
	return h
}

// installStateCRDs applies manifests/crds and the API server's fence on
// leader writes (components/ha's tableshard-fence.yaml) as an operator
// would (kubectl apply, so that a later apply of the same files is a plain
// update) and waits until the API server serves the CRDs.
func (s *suite) installStateCRDs(ctx context.Context, t *testing.T, apiServer *framework.APIServer) {
	t.Helper()
	out, err := s.haKubectl(ctx, apiServer.KubeconfigPath, "apply", "-o", "name", "-k", haCRDs)
	if err != nil {
		t.Fatalf("kubectl apply -k %s: %v\n%s", haCRDs, err, out)
	}
	var crds []string
	for _, line := range strings.Fields(out) {
		if strings.HasPrefix(line, "customresourcedefinition.apiextensions.k8s.io/") {
			crds = append(crds, line)
		}
	}
	if len(crds) == 0 {
		t.Fatalf("kubectl apply -k %s applied no CRD:\n%s", haCRDs, out)
	}
	if out, err := s.haKubectl(ctx, apiServer.KubeconfigPath, append([]string{"wait", "--for=condition=Established", "--timeout=60s"}, crds...)...); err != nil {
		t.Fatalf("waiting for the CRDs of %s: %v\n%s", haCRDs, err, out)
	}
	if out, err := s.haKubectl(ctx, apiServer.KubeconfigPath, "apply", "-f", haFence); err != nil {
		t.Fatalf("kubectl apply -f %s: %v\n%s", haFence, err, out)
	}
}

// replica returns the process of replica i (0-based: r1 is 0).
func (h *haCluster) replica(i int) *framework.ServeProcess {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.replicas[i]
}

// replicaNamed returns the process of the replica called name (r1, r2, ...).
func (h *haCluster) replicaNamed(name string) (int, *framework.ServeProcess) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, d := range h.replicas {
		if d != nil && d.Config.Kube.Replica == name {
			return i, d
		}
	}
	h.t.Fatalf("no replica named %q", name)
	return -1, nil
}

// live returns the replicas whose process runs.
func (h *haCluster) live() []*framework.ServeProcess {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*framework.ServeProcess
	for _, d := range h.replicas {
		if d != nil && !d.Exited() {
			out = append(out, d)
		}
	}
	return out
}

// killAll SIGKILLs every replica at once.
func (h *haCluster) killAll() {
	h.mu.Lock()
	replicas := slices.Clone(h.replicas)
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range replicas {
		if d != nil {
			wg.Add(1)
			go func() { defer wg.Done(); d.Kill() }()
		}
	}
	wg.Wait()
}

// restartAll starts every (exited) replica again on its config and ports,
// all at once, and puts the new processes in the balancer if there is one.
func (h *haCluster) restartAll(ctx context.Context) {
	h.t.Helper()
	h.mu.Lock()
	old := slices.Clone(h.replicas)
	h.mu.Unlock()
	errs := make([]error, len(old))
	var wg sync.WaitGroup
	for i, d := range old {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd, err := d.Restart(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			h.mu.Lock()
			h.replicas[i] = nd
			h.mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		h.t.Fatalf("restarting the replicas: %v", err)
	}
	if h.balancer != nil {
		for _, d := range h.live() {
			if err := h.balancer.Replace(d); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

// logTails is the end of every replica's log, for failure messages.
func (h *haCluster) logTails(n int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, d := range h.replicas {
		if d != nil {
			fmt.Fprintf(&b, "\n---- %s (%s):\n%s", d.Name, d.LogPath, d.LogTail(n))
		}
	}
	return b.String()
}

// lease returns the leader Lease.
func (h *haCluster) lease(ctx context.Context) (*coordinationv1.Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var lease coordinationv1.Lease
	if err := h.apiServer.Client.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: haLease}, &lease); err != nil {
		return nil, fmt.Errorf("lease %s/%s: %w", h.ns, haLease, err)
	}
	return &lease, nil
}

// leaseHolder returns the holder of the leader Lease ("" when none).
func (h *haCluster) leaseHolder(ctx context.Context) (string, error) {
	lease, err := h.lease(ctx)
	if err != nil {
		return "", err
	}
	if lease.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *lease.Spec.HolderIdentity, nil
}

// waitOneLeader waits until every live replica is ready, the Lease is held
// by one of them and that one alone reports itself leader in /readyz; it
// returns the leader's name.
func (h *haCluster) waitOneLeader(timeout time.Duration) string {
	h.t.Helper()
	ctx := haContext(h.t, timeout+5*time.Second)
	var leader string
	eventuallyEvery(h.t, timeout, 100*time.Millisecond, "one leader among the live replicas", func() error {
		holder, err := h.leaseHolder(ctx)
		if err != nil {
			return err
		}
		var leading, problems []string
		holderLive, fence := false, ""
		for _, d := range h.live() {
			code, body, err := readyz(ctx, d)
			if err != nil || code != http.StatusOK {
				problems = append(problems, fmt.Sprintf("%s: /readyz %d %v", d.Name, code, err))
				continue
			}
			if d.Config.Kube.Replica == holder {
				holderLive, fence = true, replicationString(body, "serverFence")
			}
			if role := replicationString(body, "role"); role == "leader" {
				leading = append(leading, d.Config.Kube.Replica)
			}
		}
		switch {
		case len(problems) > 0:
			return errors.New(strings.Join(problems, "; "))
		case holder == "" || !holderLive:
			return fmt.Errorf("the Lease is held by %q, not by a live replica", holder)
		case len(leading) != 1 || leading[0] != holder:
			return fmt.Errorf("the Lease is held by %s but the replicas reporting role leader in /readyz are %v", holder, leading)
		case fence != "on": // the policy installStateCRDs applied
			return fmt.Errorf("the leader %s's /readyz says serverFence %q, want on", holder, fence)
		}
		leader = holder
		return nil
	}, h.logTails)
	return leader
}

// readyz returns a replica's /readyz code and JSON body.
func readyz(ctx context.Context, d *framework.ServeProcess) (int, map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.HealthURL+"/readyz", nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("/readyz body %q: %w", data, err)
	}
	return resp.StatusCode, body, nil
}

// replication is /readyz's replication section.
func replication(body map[string]any) map[string]any {
	r, _ := body["replication"].(map[string]any)
	return r
}

// replicationString is a field of the replication section as a string: a
// string as it is, an object by its "name".
func replicationString(body map[string]any, field string) string {
	switch v := replication(body)[field].(type) {
	case string:
		return v
	case map[string]any:
		name, _ := v["name"].(string)
		return name
	}
	return ""
}

// replicationErrors is what the replication section says went wrong: its
// error fields ("errors", "lastAPIError", ...: any field named *error* or
// *Error*) that are not empty, as JSON.
func replicationErrors(body map[string]any) string {
	found := map[string]any{}
	for k, v := range replication(body) {
		if !strings.Contains(strings.ToLower(k), "error") || strings.HasSuffix(k, "Time") {
			continue
		}
		switch v := v.(type) {
		case nil:
			continue
		case string:
			if v == "" {
				continue
			}
		case []any:
			if len(v) == 0 {
				continue
			}
		case map[string]any:
			if len(v) == 0 {
				continue
			}
		}
		found[k] = v
	}
	if len(found) == 0 {
		return ""
	}
	return jsonString(found)
}

// assignmentOf asks replica d for job's assignment; nil for a 404.
func assignmentOf(ctx context.Context, d *framework.ServeProcess, job string) (*api.Assignment, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	a, err := d.API.Assignment(ctx, job)
	var se *api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return nil, nil
	}
	return a, err
}

// startBalancer puts the replicas behind a Balancer and registers the
// namespace's webhook on it, waiting until the API server calls it.
func (h *haCluster) startBalancer() {
	h.t.Helper()
	b, err := framework.StartBalancer(h.live()...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.balancer = b
	h.t.Cleanup(b.Close)
	ctx := haContext(h.t, 30*time.Second)
	eventually(h.t, 10*time.Second, "the balancer sees every replica ready", func() error {
		if ready := b.Ready(); len(ready) != len(h.live()) {
			return fmt.Errorf("ready: %v", ready)
		}
		return nil
	})
	if h.webhook, err = h.apiServer.RegisterWebhook(ctx, h.name, b.URL, b.CABundle); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = h.apiServer.Client.Delete(context.Background(), h.webhook) })
	eventually(h.t, 20*time.Second, "the API server sends namespace "+h.ns+"'s ProwJobs to the balancer", func() error {
		pj, err := h.apiServer.CreateProwJob(ctx, h.ns, framework.ProwJob{Job: jobConsolePinned, Labels: jobLabels[jobConsolePinned]}, client.DryRunAll)
		if err != nil {
			return err
		}
		if pj.Spec.Cluster != clusterPinned {
			return fmt.Errorf("a dry-run ProwJob of %s got cluster %q, want %s", jobConsolePinned, pj.Spec.Cluster, clusterPinned)
		}
		return nil
	})
}

// admissionClient posts AdmissionReviews to replica webhooks over TLS,
// trusting each replica's CA.
type admissionClient struct {
	mu      sync.Mutex
	clients map[string]*http.Client
}

func (c *admissionClient) httpClient(d *framework.ServeProcess) (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.clients[d.WebhookURL]; ok {
		return hc, nil
	}
	ca, err := d.CABundle()
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s: no certificate in the CA bundle", d.Name)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if c.clients == nil {
		c.clients = map[string]*http.Client{}
	}
	c.clients[d.WebhookURL] = hc
	return hc, nil
}

// admit sends the AdmissionReview the API server would send for a new
// ProwJob of pj to replica d's webhook, and returns the spec.cluster the
// answer gives it (pj's own when the answer patches nothing).
func (c *admissionClient) admit(ctx context.Context, d *framework.ServeProcess, namespace string, pj framework.ProwJob) (string, error) {
	hc, err := c.httpClient(d)
	if err != nil {
		return "", err
	}
	cluster := pj.Cluster
	if cluster == "" {
		cluster = defaultCluster
	}
	labels := map[string]string{framework.ProwJobLabel: pj.Job}
	for k, v := range pj.Labels {
		labels[k] = v
	}
	obj := &prowapi.ProwJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "prow.k8s.io/v1", Kind: "ProwJob"},
		ObjectMeta: metav1.ObjectMeta{Name: "pj-direct", Namespace: namespace, Labels: labels},
		Spec:       prowapi.ProwJobSpec{Type: prowapi.PeriodicJob, Agent: prowapi.KubernetesAgent, Cluster: cluster, Job: pj.Job},
		Status:     prowapi.ProwJobStatus{State: prowapi.TriggeredState, StartTime: metav1.Now()},
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return "", err
	}
	uid := types.UID(fmt.Sprintf("e2e-%d", time.Now().UnixNano()))
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       uid,
			Kind:      metav1.GroupVersionKind{Group: "prow.k8s.io", Version: "v1", Kind: "ProwJob"},
			Resource:  metav1.GroupVersionResource{Group: "prow.k8s.io", Version: "v1", Resource: "prowjobs"},
			Namespace: namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: admission answered %s: %s", d.Name, resp.Status, data)
	}
	var answer admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &answer); err != nil {
		return "", fmt.Errorf("%s: admission answer %s: %w", d.Name, data, err)
	}
	r := answer.Response
	switch {
	case r == nil:
		return "", fmt.Errorf("%s: no response in the admission answer %s", d.Name, data)
	case r.UID != uid:
		return "", fmt.Errorf("%s: answer for uid %q, sent %q", d.Name, r.UID, uid)
	case !r.Allowed:
		return "", fmt.Errorf("%s: admission refused: %+v", d.Name, r.Result)
	case len(r.Patch) == 0:
		return cluster, nil
	}
	var ops []struct {
		Op, Path string
		Value    any
	}
	if err := json.Unmarshal(r.Patch, &ops); err != nil {
		return "", fmt.Errorf("%s: patch %s: %w", d.Name, r.Patch, err)
	}
	for _, op := range ops {
		if op.Path == "/spec/cluster" && (op.Op == "replace" || op.Op == "add") {
			s, _ := op.Value.(string)
			cluster = s
		}
	}
	return cluster, nil
}

// schedule asks replica d's /api/v1/schedule (Prow's external strategy) for job's cluster.
func schedule(ctx context.Context, d *framework.ServeProcess, job string) (string, error) {
	body, _ := json.Marshal(api.ScheduleRequest{Job: job})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.APIURL+api.SchedulePath, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: POST %s: %s: %s", d.Name, api.SchedulePath, resp.Status, data)
	}
	var out api.ScheduleResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return "", fmt.Errorf("%s: POST %s: %s: %w", d.Name, api.SchedulePath, data, err)
	}
	return out.Cluster, nil
}

// apiAnswer is the raw answer of a state-changing API call.
type apiAnswer struct {
	code     int
	body     string
	servedBy string
	took     time.Duration
}

// post sends a state-changing API request (with the token) to replica d
// and returns its raw answer; err is set only when no answer came.
func post(ctx context.Context, d *framework.ServeProcess, method, path string, in any, timeout time.Duration) (apiAnswer, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return apiAnswer{}, err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, d.APIURL+path, body)
	if err != nil {
		return apiAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+d.Token)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return apiAnswer{took: time.Since(start)}, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return apiAnswer{code: resp.StatusCode, body: strings.TrimSpace(string(data)), servedBy: resp.Header.Get(httpapi.ServedByHeader), took: time.Since(start)}, nil
}

// waitAssignment polls every replica in ds until each answers cluster for
// job (and, when reason is set, that reason), and returns how long it took;
// it fails the test after timeout.
func waitAssignment(t *testing.T, ds []*framework.ServeProcess, job, cluster, reason string, timeout time.Duration) time.Duration {
	t.Helper()
	ctx := haContext(t, timeout+5*time.Second)
	start := time.Now()
	pending := slices.Clone(ds)
	var last []string
	for {
		last = last[:0]
		var still []*framework.ServeProcess
		for _, d := range pending {
			a, err := assignmentOf(ctx, d, job)
			switch {
			case err != nil:
				last = append(last, fmt.Sprintf("%s: %v", d.Name, err))
			case a == nil:
				last = append(last, d.Name+": unknown job")
			case a.Cluster != cluster || (reason != "" && a.Reason != reason):
				last = append(last, fmt.Sprintf("%s: %s (%s)", d.Name, a.Cluster, a.Reason))
			default:
				continue
			}
			still = append(still, d)
		}
		if len(still) == 0 {
			return time.Since(start)
		}
		pending = still
		if time.Since(start) > timeout {
			t.Fatalf("%s: not on %s (reason %q) on every replica within %s: %s", job, cluster, reason, timeout, strings.Join(last, "; "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// haKubectl runs kubectl against the API server of kubeconfig.
func (s *suite) haKubectl(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, s.assets.Kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

// jobOverrides lists the JobOverride objects of the namespace with kubectl,
// as job -> spec.
func (h *haCluster) jobOverrides(ctx context.Context) (map[string]map[string]any, string) {
	h.t.Helper()
	out, err := h.s.haKubectl(ctx, h.apiServer.KubeconfigPath, "get", "joboverrides", "-n", h.ns, "-o", "json")
	if err != nil {
		h.t.Fatalf("kubectl get joboverrides -n %s: %v\n%s", h.ns, err, out)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     map[string]any        `json:"spec"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		h.t.Fatalf("kubectl get joboverrides -o json: %v\n%s", err, out)
	}
	got := map[string]map[string]any{}
	for _, it := range list.Items {
		job, _ := it.Spec["job"].(string)
		got[job] = it.Spec
	}
	table, _ := h.s.haKubectl(ctx, h.apiServer.KubeconfigPath, "get", "joboverrides", "-n", h.ns)
	return got, table
}

// haContext is a context bounded by timeout and the test's deadline.
func haContext(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	deadline := time.Now().Add(timeout)
	if d, ok := t.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// eventuallyEvery retries check every interval until it returns nil or
// timeout passes, adding more() (when set) to the failure message.
func eventuallyEvery(t *testing.T, timeout, every time.Duration, what string, check func() error, more func(int) string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			extra := ""
			if more != nil {
				extra = more(3000)
			}
			t.Fatalf("%s: not within %s: %v%s", what, timeout, err, extra)
		}
		time.Sleep(every)
	}
}

// percentile returns the p-th percentile (0..100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// haKnownJobs are the jobs of testdata/jobs (the table has them from the first dispatch).
func haKnownJobs() []string {
	var out []string
	for job := range demand {
		if job != jobRemoved {
			out = append(out, job)
		}
	}
	slices.Sort(out)
	return out
}

// jsonString renders v as compact JSON, for logs.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
