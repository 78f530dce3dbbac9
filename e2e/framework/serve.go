package framework

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// BuildBinary builds ./cmd/prowjob-dispatcher of the module rooted at
// moduleDir into dir and returns its path.
func BuildBinary(ctx context.Context, moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "prowjob-dispatcher")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/prowjob-dispatcher")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/prowjob-dispatcher: %w\n%s", err, out)
	}
	return bin, nil
}

// ServeConfig is what one `prowjob-dispatcher serve` process runs on.
type ServeConfig struct {
	// Bin is the prowjob-dispatcher binary.
	Bin string
	// Dir holds the state dir, cert dir, token and log; reuse it to restart on the same state.
	Dir string
	// Name labels the process and its log file.
	Name string
	// DispatcherConfig, ClusterConfig and JobConfig are the config paths.
	DispatcherConfig, ClusterConfig, JobConfig string
	// PrometheusURL is the demand source; empty means none.
	PrometheusURL string
	// ExtraArgs are appended to the serve flags.
	ExtraArgs []string
	// StateBackend is StateBackendFile (the default when empty: --state-dir
	// under Dir) or StateBackendKubernetes (--state-backend=kubernetes, no
	// --state-dir; Kube says where the state lives).
	StateBackend string
	// Kube configures the kubernetes state backend.
	Kube KubeState
	// WebhookPort, APIPort and HealthPort fix the ports, so that a restart
	// listens where the process did before; 0 picks a free port at each start.
	WebhookPort, APIPort, HealthPort int
	// TokenFile, when set, holds the API token instead of Dir/token (created
	// when missing), so that replicas share one token as they share a Secret.
	TokenFile string
	// Host is the address its ports are reached at (URLs, --tls-hosts, the
	// default advertise address); empty means 127.0.0.1.
	Host string
	// Netns, when set, runs the process inside that network namespace
	// (ip netns exec), where Host must reach it.
	Netns string
}

// The state backends of ServeConfig.StateBackend.
const (
	StateBackendFile       = "file"
	StateBackendKubernetes = "kubernetes"
)

// KubeState is where a dispatcher with the kubernetes state backend keeps
// its state and how it names itself among the replicas.
type KubeState struct {
	// Kubeconfig is --kubeconfig; Namespace is --namespace.
	Kubeconfig, Namespace string
	// Replica is --replica-name.
	Replica string
	// AdvertiseAddress is --advertise-address; empty means this process's
	// API URL (http://127.0.0.1:<api port>).
	AdvertiseAddress string
	// ReplicaSecretFile is --replica-secret-file, created with a random
	// secret when missing; replicas that forward writes to each other share
	// one, as they share a Secret. Empty means Dir/replica-secret.
	ReplicaSecretFile string
}

// ServeProcess is a running `prowjob-dispatcher serve`.
type ServeProcess struct {
	*Process
	// Config is what it was started with.
	Config ServeConfig
	// APIURL and HealthURL are its plain-HTTP base URLs; WebhookURL is the
	// admission endpoint (https).
	APIURL, HealthURL, WebhookURL string
	// StateDir and CertDir are its --state-dir (empty with the kubernetes
	// state backend) and --cert-dir.
	StateDir, CertDir string
	// Token is the bearer token for state-changing API calls.
	Token string
	// API is a client of its HTTP API carrying Token.
	API *api.Client
}

// StartServe starts `prowjob-dispatcher serve` on loopback ports (free
// ones unless cfg fixes them) with a self-signed certificate for cfg.Host,
// and waits for /readyz. The token, state and certificate live in cfg.Dir
// and are reused when the same Dir is started again.
func StartServe(ctx context.Context, cfg ServeConfig) (*ServeProcess, error) {
	d := &ServeProcess{
		Config:  cfg,
		CertDir: filepath.Join(cfg.Dir, "certs"),
	}
	kube := cfg.StateBackend == StateBackendKubernetes
	switch cfg.StateBackend {
	case "", StateBackendFile:
		d.StateDir = filepath.Join(cfg.Dir, "state")
	case StateBackendKubernetes:
	default:
		return nil, fmt.Errorf("%s: state backend %q: want %q or %q", cfg.Name, cfg.StateBackend, StateBackendFile, StateBackendKubernetes)
	}
	tokenFile := cfg.TokenFile
	if tokenFile == "" {
		tokenFile = filepath.Join(cfg.Dir, "token")
	}
	token, err := readOrCreateToken(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("dispatcher token %s: %w", tokenFile, err)
	}
	d.Token = token
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	webhookPort, apiPort, healthPort := cmp.Or(cfg.WebhookPort, ports[0]), cmp.Or(cfg.APIPort, ports[1]), cmp.Or(cfg.HealthPort, ports[2])
	host := cmp.Or(cfg.Host, "127.0.0.1")
	args := []string{"serve",
		"--dispatcher-config", cfg.DispatcherConfig,
		"--cluster-config", cfg.ClusterConfig,
		"--job-config", cfg.JobConfig,
	}
	if kube {
		advertise := cfg.Kube.AdvertiseAddress
		if advertise == "" {
			advertise = fmt.Sprintf("http://%s:%d", host, apiPort)
		}
		secretFile := cmp.Or(cfg.Kube.ReplicaSecretFile, filepath.Join(cfg.Dir, "replica-secret"))
		if _, err := readOrCreateToken(secretFile); err != nil {
			return nil, fmt.Errorf("replica secret %s: %w", secretFile, err)
		}
		args = append(args, "--state-backend", StateBackendKubernetes,
			"--kubeconfig", cfg.Kube.Kubeconfig,
			"--namespace", cfg.Kube.Namespace,
			"--replica-name", cfg.Kube.Replica,
			"--advertise-address", advertise,
			"--replica-secret-file", secretFile,
		)
	} else {
		args = append(args, "--state-dir", d.StateDir)
	}
	args = append(args,
		"--cert-dir", d.CertDir,
		"--self-signed",
		"--tls-hosts", host,
		"--webhook-port", strconv.Itoa(webhookPort),
		"--api-port", strconv.Itoa(apiPort),
		"--probe-port", strconv.Itoa(healthPort),
		"--token-file", tokenFile,
	)
	if cfg.PrometheusURL != "" {
		args = append(args, "--prometheus-url", cfg.PrometheusURL)
	}
	args = append(args, cfg.ExtraArgs...)
	bin := cfg.Bin
	if cfg.Netns != "" {
		// ip netns exec execs the binary: the process keeps its pid, so signals reach it.
		bin, args = "ip", append([]string{"netns", "exec", cfg.Netns, cfg.Bin}, args...)
	}
	if d.Process, err = StartProcess(cfg.Name, cfg.Dir, bin, args...); err != nil {
		return nil, err
	}
	d.APIURL = fmt.Sprintf("http://%s:%d", host, apiPort)
	d.HealthURL = fmt.Sprintf("http://%s:%d", host, healthPort)
	d.WebhookURL = fmt.Sprintf("https://%s:%d/mutate-prowjobs", host, webhookPort)
	d.API = &api.Client{BaseURL: d.APIURL, Token: d.Token, HTTP: &http.Client{Timeout: 30 * time.Second}}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := d.WaitHTTP(wctx, d.HealthURL+"/readyz"); err != nil {
		d.Kill()
		return nil, err
	}
	return d, nil
}

// readOrCreateToken returns the token in path, writing a random one first
// when the file does not exist (once, when replicas start together: the
// file appears whole, by a hard link).
func readOrCreateToken(path string) (string, error) {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		buf := make([]byte, 16)
		_, _ = rand.Read(buf)
		tmp := fmt.Sprintf("%s.tmp-%x", path, buf[:4])
		if err := os.WriteFile(tmp, []byte(hex.EncodeToString(buf)), 0o600); err != nil {
			return "", err
		}
		err := os.Link(tmp, path)
		os.Remove(tmp)
		if err != nil && !os.IsExist(err) {
			return "", err
		}
	}
	token, err := os.ReadFile(path)
	return string(token), err
}

// Restart starts a new dispatcher process on the same config and Dir (state,
// certificate, token) after the old one has exited.
func (d *ServeProcess) Restart(ctx context.Context) (*ServeProcess, error) {
	if !d.Exited() {
		return nil, fmt.Errorf("%s: restart while still running", d.Name)
	}
	return StartServe(ctx, d.Config)
}

// CABundle returns the PEM CA the webhook's serving certificate chains to.
func (d *ServeProcess) CABundle() ([]byte, error) {
	for _, name := range []string{"ca.crt", "tls.crt"} {
		data, err := os.ReadFile(filepath.Join(d.CertDir, name))
		if err == nil {
			return data, nil
		}
	}
	return nil, fmt.Errorf("%s: no ca.crt or tls.crt in %s", d.Name, d.CertDir)
}
