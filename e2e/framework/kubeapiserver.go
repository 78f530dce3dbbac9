package framework

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
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
	// Config is the admin client config (a client certificate).
	Config      *rest.Config
	env         *envtest.Environment
	restartable bool
	log         *os.File
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
	return StartAPIServerWith(ctx, APIServerOptions{AssetsDir: assetsDir, WorkDir: workDir, CRDs: extraCRDs})
}

// APIServerOptions configure StartAPIServerWith.
type APIServerOptions struct {
	// AssetsDir holds kube-apiserver, etcd and kubectl.
	AssetsDir string
	// WorkDir receives the kubeconfig (and, when Restartable, the
	// kube-apiserver's certificates and log).
	WorkDir string
	// CRDs are CRD files or dirs installed besides the ProwJob CRD.
	CRDs []string
	// WithoutProwJobCRD leaves the ProwJob CRD out, as on a build cluster.
	WithoutProwJobCRD bool
	// Restartable keeps kube-apiserver's serving certificate, client CA and
	// port in WorkDir, so that KillKubeAPIServer and StartKubeAPIServer can
	// take it down and bring it back on the same etcd, address and
	// credentials (the kubeconfig keeps working).
	Restartable bool
}

var silenceControllerRuntime sync.Once

// StartAPIServerWith starts etcd and kube-apiserver as opts say and
// installs the ProwJob CRD plus opts.CRDs.
func StartAPIServerWith(ctx context.Context, opts APIServerOptions) (*APIServer, error) {
	prowDir, err := ProwModuleDir(ctx)
	if err != nil {
		return nil, err
	}
	// envtest logs through controller-runtime's logger, which prints a stack
	// trace when it is used unset more than 30 s into the process.
	silenceControllerRuntime.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	assetsDir, workDir := opts.AssetsDir, opts.WorkDir
	crds := opts.CRDs
	if !opts.WithoutProwJobCRD {
		crds = append([]string{filepath.Join(prowDir, prowJobCRD)}, crds...)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assetsDir,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths: crds,
			// envtest waits 10 s by default for the CRDs to be served; a busy 2-core machine needs longer.
			MaxTime: time.Minute,
		},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	// The ProwJob CRD (3.9 MB) exceeds etcd's default 1.5 MiB request limit.
	env.ControlPlane.Etcd = &envtest.Etcd{}
	env.ControlPlane.Etcd.Configure().Append("max-request-bytes", "8388608")
	var apiLog *os.File
	if opts.Restartable {
		// A CertDir of our own is kept across Stop (a temporary one is
		// replaced, and with it the certificates the kubeconfig trusts).
		certDir := filepath.Join(workDir, "kube-apiserver")
		if err := os.MkdirAll(certDir, 0o700); err != nil {
			return nil, err
		}
		if apiLog, err = os.OpenFile(filepath.Join(workDir, "kube-apiserver.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return nil, err
		}
		env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir, Out: apiLog, Err: apiLog}
	}
	cfg, err := env.Start()
	if err != nil {
		// envtest leaves the control plane running when the CRDs fail to install.
		_ = env.Stop()
		if apiLog != nil {
			apiLog.Close()
		}
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assetsDir, err)
	}
	s := &APIServer{Config: cfg, env: env, restartable: opts.Restartable, log: apiLog}
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
	err := s.env.Stop()
	if s.log != nil {
		s.log.Close()
	}
	return err
}

// KillKubeAPIServer SIGKILLs kube-apiserver, as a crash or the loss of its
// node would, and leaves etcd running. (A SIGTERM makes kube-apiserver stop
// listening at once but, with clients watching, exit only after envtest's
// 20 s stop timeout.) Only a Restartable server can be killed alone.
func (s *APIServer) KillKubeAPIServer() error {
	if !s.restartable {
		return fmt.Errorf("kube-apiserver was not started Restartable: stopping it alone would lose its certificates")
	}
	pid, err := findProcess("kube-apiserver", "--cert-dir="+s.env.ControlPlane.APIServer.CertDir)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing kube-apiserver (pid %d): %w", pid, err)
	}
	// envtest reaps it; then its Stop has nothing left to stop.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := findProcess("kube-apiserver", "--cert-dir="+s.env.ControlPlane.APIServer.CertDir); err != nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver (pid %d) still there 10s after SIGKILL", pid)
		}
	}
	if err := s.env.ControlPlane.APIServer.Stop(); err != nil {
		return fmt.Errorf("after killing kube-apiserver: %w", err)
	}
	return nil
}

// findProcess returns the pid of the process named name (its argv[0]'s
// base name) that has the argument arg.
func findProcess(name, arg string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a zombie
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if filepath.Base(args[0]) == name && slices.Contains(args[1:], arg) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s process with %s", name, arg)
}

// StartKubeAPIServer starts kube-apiserver again after KillKubeAPIServer,
// on the same etcd, port and certificates, and waits until it is healthy.
func (s *APIServer) StartKubeAPIServer() error {
	if !s.restartable {
		return fmt.Errorf("kube-apiserver was not started Restartable")
	}
	if err := s.env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	return nil
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
