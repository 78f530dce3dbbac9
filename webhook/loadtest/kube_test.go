package loadtest

import (
	"context"
	"flag"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate"
)

// kube runs the dispatcher as a replica of --state-backend=kubernetes,
// leading alone, its state in a real kube-apiserver: the admission path a
// highly available replica serves, the records of new jobs (JobPlacements)
// included.
var kube = flag.Bool("kube", false, "keep the dispatcher's state in a real kube-apiserver (envtest from $KUBEBUILDER_ASSETS, the CRDs of manifests/crds), as one replica of --state-backend=kubernetes")

// kubeAPI is the API server of a -kube run and the namespace of its state.
type kubeAPI struct {
	cfg       *rest.Config
	namespace string
}

// startKubeAPI starts kube-apiserver and etcd with the project's CRDs.
func startKubeAPI(t *testing.T) *kubeAPI {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("-kube needs KUBEBUILDER_ASSETS: a dir with kube-apiserver, etcd and kubectl (make load-ha finds it)")
	}
	env := &envtest.Environment{
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: []string{"../../manifests/crds"}, MaxTime: time.Minute},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k := &kubeAPI{cfg: cfg, namespace: "prowjob-dispatcher"}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k.namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return k
}

// backend starts the state backend of one replica and loads the shared state.
func (k *kubeAPI) backend(t *testing.T, replica string) *kubestate.Backend {
	t.Helper()
	b, err := kubestate.New(k.cfg, kubestate.Options{Namespace: k.namespace, Replica: replica, Logger: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// waitPublished waits until the leader's first table is in the API server
// (every shard written, not only numbered).
func waitPublished(t *testing.T, b *kubestate.Backend) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); b.Status().PublicationServed == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no table published after 2m: %+v", b.Status())
		}
	}
}
