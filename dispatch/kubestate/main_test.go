package kubestate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
)

// The fake replica is a watcher as the dispatcher registers one.
var _ state.Watcher = (*fakeReplica)(nil)

// The tests against an API server share one kube-apiserver and etcd
// (envtest, from KUBEBUILDER_ASSETS) with the CRDs of v1alpha1 installed;
// each test works in its own namespace.
var (
	apiConfig *rest.Config  // nil without KUBEBUILDER_ASSETS
	apiClient client.Client // the test's own view of the API
)

// controllerGen generates the CRDs when manifests/crds lacks them.
const controllerGen = "sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return m.Run() // the tests needing an API server skip
	}
	ctrllog.SetLogger(logr.Discard())
	crdDir, cleanup, err := crdDirectory()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubestate tests:", err)
		return 1
	}
	defer cleanup()
	env := &envtest.Environment{
		CRDInstallOptions:        envtest.CRDInstallOptions{Paths: []string{crdDir}},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubestate tests: starting kube-apiserver and etcd:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	fmt.Fprintf(os.Stderr, "kubestate tests: API server with the CRDs of %s up in %s\n", crdDir, time.Since(start).Round(time.Millisecond))
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	if apiClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "kubestate tests:", err)
		return 1
	}
	if err := installFencePolicy(context.Background(), apiClient); err != nil {
		fmt.Fprintln(os.Stderr, "kubestate tests: the fence policy:", err)
		return 1
	}
	apiConfig = cfg
	return m.Run()
}

// crdDirectory is manifests/crds when it holds the CRDs, else a temporary
// folder controller-gen generates them into.
func crdDirectory() (string, func(), error) {
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", nil, err
	}
	manifests := filepath.Join(repo, "manifests", "crds")
	if found, _ := filepath.Glob(filepath.Join(manifests, "prowjob-dispatcher.io_*.yaml")); len(found) >= 5 {
		return manifests, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "kubestate-crds-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	cmd := exec.Command("go", "run", controllerGen, "crd", "paths=./dispatch/kubestate/v1alpha1/...", "output:crd:artifacts:config="+dir)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("generating the CRDs with controller-gen: %v\n%s", err, out)
	}
	return dir, cleanup, nil
}

// needAPI skips a test without an API server.
func needAPI(t *testing.T) {
	t.Helper()
	if apiConfig == nil {
		t.Skip("needs a kube-apiserver and etcd: set KUBEBUILDER_ASSETS to a folder holding kube-apiserver, etcd and kubectl " +
			"(e.g. KUBEBUILDER_ASSETS=/root/.cache/prowjob-dispatcher/assets-v1.34.2)")
	}
}

var namespaces atomic.Int64

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("kubestate-%d-%s", namespaces.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	name = sanitize(name, 63)
	ns := &corev1.Namespace{}
	ns.Name = name
	if err := apiClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}

// testLogger logs to t until the test's cleanup, never after.
func testLogger(t *testing.T, name string) logr.Logger {
	var mu sync.RWMutex
	done := false
	t.Cleanup(func() {
		mu.Lock()
		done = true
		mu.Unlock()
	})
	return funcr.New(func(prefix, args string) {
		mu.RLock()
		defer mu.RUnlock()
		if !done {
			t.Logf("%s %s %s", name, prefix, args)
		}
	}, funcr.Options{Verbosity: 1})
}

// testOptions are short intervals for tests.
func testOptions(ns, replica string) Options {
	return Options{
		Namespace: ns, Replica: replica, Address: "http://" + replica + ".test:8080",
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond,
		PublishInterval: 100 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond, GCInterval: 200 * time.Millisecond,
		WriteTimeout: 5 * time.Second,
	}
}

// startBackend makes and starts a backend; the test's cleanup closes it.
func startBackend(t *testing.T, cfg *rest.Config, opts Options) *Backend {
	t.Helper()
	if opts.Logger.GetSink() == nil {
		opts.Logger = testLogger(t, opts.Replica)
	}
	b, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// runBackend runs b (and, with elect, campaigns) until the returned stop
// or the test's cleanup.
func runBackend(t *testing.T, b *Backend, elect bool, onLead func(context.Context)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := b.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if elect {
		wg.Go(func() { b.Elect(ctx, onLead) })
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}
