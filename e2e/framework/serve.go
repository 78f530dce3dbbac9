package framework

import (
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
}

// ServeProcess is a running `prowjob-dispatcher serve`.
type ServeProcess struct {
	*Process
	// Config is what it was started with.
	Config ServeConfig
	// APIURL and HealthURL are its plain-HTTP base URLs; WebhookURL is the
	// admission endpoint (https).
	APIURL, HealthURL, WebhookURL string
	// StateDir and CertDir are its --state-dir and --cert-dir.
	StateDir, CertDir string
	// Token is the bearer token for state-changing API calls.
	Token string
	// API is a client of its HTTP API carrying Token.
	API *api.Client
}

// StartServe starts `prowjob-dispatcher serve` on free loopback ports
// with a self-signed certificate for 127.0.0.1, and waits for /readyz. The
// token, state and certificate live in cfg.Dir and are reused when the same
// Dir is started again.
func StartServe(ctx context.Context, cfg ServeConfig) (*ServeProcess, error) {
	d := &ServeProcess{
		Config:   cfg,
		StateDir: filepath.Join(cfg.Dir, "state"),
		CertDir:  filepath.Join(cfg.Dir, "certs"),
	}
	tokenFile := filepath.Join(cfg.Dir, "token")
	token, err := os.ReadFile(tokenFile)
	if os.IsNotExist(err) {
		buf := make([]byte, 16)
		_, _ = rand.Read(buf)
		token = []byte(hex.EncodeToString(buf))
		err = os.WriteFile(tokenFile, token, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("dispatcher token %s: %w", tokenFile, err)
	}
	d.Token = string(token)
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	webhookPort, apiPort, healthPort := ports[0], ports[1], ports[2]
	args := []string{"serve",
		"--dispatcher-config", cfg.DispatcherConfig,
		"--cluster-config", cfg.ClusterConfig,
		"--job-config", cfg.JobConfig,
		"--state-dir", d.StateDir,
		"--cert-dir", d.CertDir,
		"--self-signed",
		"--tls-hosts", "127.0.0.1",
		"--webhook-port", strconv.Itoa(webhookPort),
		"--api-port", strconv.Itoa(apiPort),
		"--health-port", strconv.Itoa(healthPort),
		"--token-file", tokenFile,
	}
	if cfg.PrometheusURL != "" {
		args = append(args, "--prometheus-url", cfg.PrometheusURL)
	}
	args = append(args, cfg.ExtraArgs...)
	if d.Process, err = StartProcess(cfg.Name, cfg.Dir, cfg.Bin, args...); err != nil {
		return nil, err
	}
	d.APIURL = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	d.HealthURL = fmt.Sprintf("http://127.0.0.1:%d", healthPort)
	d.WebhookURL = fmt.Sprintf("https://127.0.0.1:%d/mutate-prowjobs", webhookPort)
	d.API = &api.Client{BaseURL: d.APIURL, Token: d.Token, HTTP: &http.Client{Timeout: 30 * time.Second}}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := d.WaitHTTP(wctx, d.HealthURL+"/readyz"); err != nil {
		d.Kill()
		return nil, err
	}
	return d, nil
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
