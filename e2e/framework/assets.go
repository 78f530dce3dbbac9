package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// AssetsVersion is the kube-apiserver version e2e/hack/install-assets.sh builds.
const AssetsVersion = "v1.34.2"

// Assets are the binaries an e2e run needs.
type Assets struct {
	// Dir holds kube-apiserver, etcd and kubectl (KUBEBUILDER_ASSETS).
	Dir string
	// Prometheus and Promtool are the Prometheus binaries.
	Prometheus, Promtool string
	// Kubectl is the kubectl binary.
	Kubectl string
}

// DefaultAssetsDir is where install-assets.sh caches the binaries.
func DefaultAssetsDir() string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "prowjob-dispatcher", "assets-"+AssetsVersion)
}

// FindAssets locates the binaries: KUBEBUILDER_ASSETS (or the default cache
// dir) for kube-apiserver, etcd and kubectl, and PATH for prometheus and
// promtool. The error names what is missing and how to install it.
func FindAssets() (*Assets, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = DefaultAssetsDir()
	}
	a := &Assets{Dir: dir}
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("e2e assets: %s not in %s (run e2e/hack/install-assets.sh): %w", name, dir, err)
		}
	}
	a.Kubectl = filepath.Join(dir, "kubectl")
	for name, dst := range map[string]*string{"prometheus": &a.Prometheus, "promtool": &a.Promtool} {
		p, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("e2e assets: %s not on PATH (run e2e/hack/install-assets.sh): %w", name, err)
		}
		*dst = p
	}
	return a, nil
}
