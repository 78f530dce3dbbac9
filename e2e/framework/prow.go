package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	prowapi "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"
)

// ProwBinaries are Prow's own binaries, built from the sigs.k8s.io/prow
// module go.mod requires by e2e/hack/install-prow.sh.
type ProwBinaries struct {
	// Dir holds them all.
	Dir string
	// ControllerManager is prow-controller-manager (plank and the scheduler).
	ControllerManager string
	// Mkpj prints the ProwJob of a job from Prow's config.
	Mkpj string
	// Phony sends a signed GitHub webhook.
	Phony string
	// Hook is Prow's GitHub event dispatcher.
	Hook string
	// Checkconfig validates Prow's config and plugins.yaml.
	Checkconfig string
}

// FindProwBinaries locates Prow's binaries: PROW_BIN_DIR, or the folder
// install-prow.sh caches them in for the prow version of the module rooted
// at moduleDir. The error says how to build them.
func FindProwBinaries(ctx context.Context, moduleDir string) (*ProwBinaries, error) {
	dir := os.Getenv("PROW_BIN_DIR")
	if dir == "" {
		cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "sigs.k8s.io/prow")
		cmd.Dir = moduleDir
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go list -m sigs.k8s.io/prow: %w", err)
		}
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "prowjob-dispatcher", "prow-"+strings.TrimSpace(string(out)))
	}
	b := &ProwBinaries{Dir: dir}
	for name, dst := range map[string]*string{
		"prow-controller-manager": &b.ControllerManager,
		"mkpj":                    &b.Mkpj,
		"phony":                   &b.Phony,
		"hook":                    &b.Hook,
		"checkconfig":             &b.Checkconfig,
	} {
		*dst = filepath.Join(dir, name)
		if _, err := os.Stat(*dst); err != nil {
			return nil, fmt.Errorf("prow binaries: %s not in %s (run e2e/hack/install-prow.sh): %w", name, dir, err)
		}
	}
	return b, nil
}

// WriteKubeconfig writes one kubeconfig with a context per API server, named
// by the map's keys, as Prow's components take it (--kubeconfig); current
// is the current context, which Prow also calls "default".
func WriteKubeconfig(path string, servers map[string]*APIServer, current string) error {
	if _, ok := servers[current]; !ok {
		return fmt.Errorf("kubeconfig %s: current context %q has no API server", path, current)
	}
	cfg := clientcmdapi.NewConfig()
	for name, s := range servers {
		c := s.Config
		cfg.Clusters[name] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken}
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	cfg.CurrentContext = current
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

// MakeProwJob runs Prow's mkpj for job with Prow's config and job config, and
// returns the ProwJob it prints (mkpj without --trigger-job creates nothing).
// args are more mkpj flags (a presubmit's --pull-number and so on).
func (b *ProwBinaries) MakeProwJob(ctx context.Context, config, jobConfig, job string, args ...string) (*prowapi.ProwJob, error) {
	cmd := exec.CommandContext(ctx, b.Mkpj, append([]string{"--config-path", config, "--job-config-path", jobConfig, "--job", job}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("mkpj --job %s: %w\n%s", job, err, stderr.String())
	}
	pj := &prowapi.ProwJob{}
	if err := yaml.UnmarshalStrict(out, pj); err != nil {
		return nil, fmt.Errorf("mkpj --job %s printed no ProwJob: %w\n%s", job, err, out)
	}
	return pj, nil
}
