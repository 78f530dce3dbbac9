package framework

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	prowapi "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"
)

// prowJobCRD is the ProwJob CRD's path inside the sigs.k8s.io/prow module.
const prowJobCRD = "config/prow/cluster/prowjob-crd/prowjob_customresourcedefinition.yaml"

// APIServer is a running kube-apiserver + etcd with the ProwJob CRD installed.
type APIServer struct {
	// Client talks to it with the core and ProwJob types registered.
	Client client.Client
	// KubeconfigPath is a kubeconfig file for kubectl.
	KubeconfigPath string
	env            *envtest.Environment
}

// ProwModuleDir returns the sigs.k8s.io/prow module folder (go list).
func ProwModuleDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/prow").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m sigs.k8s.io/prow: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("go list -m sigs.k8s.io/prow: module not downloaded (go mod download sigs.k8s.io/prow)")
	}
	return dir, nil
}

// StartAPIServer starts etcd and kube-apiserver from assetsDir and installs the
// ProwJob CRD plus the CRD files in extraCRDs. workDir receives the kubeconfig.
func StartAPIServer(ctx context.Context, assetsDir, workDir string, extraCRDs ...string) (*APIServer, error) {
	prowDir, err := ProwModuleDir(ctx)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assetsDir,
		CRDInstallOptions:        envtest.CRDInstallOptions{Paths: append([]string{filepath.Join(prowDir, prowJobCRD)}, extraCRDs...)},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	// The ProwJob CRD (3.9 MB) exceeds etcd's default 1.5 MiB request limit.
	env.ControlPlane.Etcd = &envtest.Etcd{}
	env.ControlPlane.Etcd.Configure().Append("max-request-bytes", "8388608")
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assetsDir, err)
	}
	s := &APIServer{env: env}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		s.Stop()
		return nil, err
	}
	if err := prowapi.AddToScheme(scheme); err != nil {
		s.Stop()
		return nil, err
	}
	if s.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("client for the envtest API server: %w", err)
	}
	s.KubeconfigPath = filepath.Join(workDir, "kubeconfig")
	if err := os.WriteFile(s.KubeconfigPath, env.KubeConfig, 0o600); err != nil {
		s.Stop()
		return nil, fmt.Errorf("writing kubeconfig: %w", err)
	}
	return s, nil
}

// Stop stops kube-apiserver and etcd.
func (s *APIServer) Stop() error {
	return s.env.Stop()
}

// CreateNamespace creates a namespace with the given labels.
func (s *APIServer) CreateNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{}
	ns.Name = name
	ns.Labels = labels
	if err := s.Client.Create(ctx, ns); err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}
