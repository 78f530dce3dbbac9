package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const exampleOverlay = "../manifests/overlays/example"

// kubectl runs kubectl against the suite's API server.
func (s *suite) kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.assets.Kubectl, append([]string{"--kubeconfig", s.api.KubeconfigPath}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestManifestsApplyServerSide applies the example overlay with a server-side
// dry run and strict field validation, so the API server checks every object
// against its schema (cert-manager's and the Prometheus Operator's kinds
// against minimal stand-in CRDs from testdata/crds).
func TestManifestsApplyServerSide(t *testing.T) {
	s := require(t)
	ctx := testContext(t)
	rendered, err := exec.CommandContext(ctx, s.assets.Kubectl, "kustomize", exampleOverlay).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", exampleOverlay, err)
	}
	// Namespaced objects need their namespace to exist for a dry run.
	if err := s.api.CreateNamespace(ctx, "prowjob-dispatcher", nil); err != nil {
		t.Fatal(err)
	}
	out, err := s.kubectl(ctx, nil, "apply", "--dry-run=server", "--validate=strict", "-k", exampleOverlay)
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server -k %s failed: %v\n%s", exampleOverlay, err, out)
	}
	for _, want := range []string{
		"namespace/prowjob-dispatcher",
		"serviceaccount/prowjob-dispatcher",
		"configmap/prowjob-dispatcher-config",
		"configmap/prowjob-dispatcher-clusters",
		"configmap/prowjob-dispatcher-plugin",
		"configmap/job-config",
		"service/prowjob-dispatcher",
		"service/prowjob-dispatcher-plugin",
		"persistentvolumeclaim/prowjob-dispatcher-state",
		"deployment.apps/prowjob-dispatcher",
		"deployment.apps/prowjob-dispatcher-plugin",
		"poddisruptionbudget.policy/prowjob-dispatcher",
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/prowjob-dispatcher",
		"issuer.cert-manager.io/prowjob-dispatcher-selfsigned",
		"certificate.cert-manager.io/prowjob-dispatcher-ca",
		"issuer.cert-manager.io/prowjob-dispatcher-ca",
		"certificate.cert-manager.io/prowjob-dispatcher-webhook",
		"networkpolicy.networking.k8s.io/prowjob-dispatcher",
		"servicemonitor.monitoring.coreos.com/prowjob-dispatcher",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("server-side dry run did not apply %s; output:\n%s", want, out)
		}
	}

	// The same check rejects a broken manifest: an unknown field.
	broken := bytes.Replace(rendered, []byte("  strategy:\n    type: Recreate\n"), []byte("  strategy:\n    type: Recreate\n  replicass: 2\n"), 1)
	if bytes.Equal(broken, rendered) {
		t.Fatal("could not find the dispatcher Deployment's strategy in the rendered overlay to break it")
	}
	if out, err := s.kubectl(ctx, broken, "apply", "--dry-run=server", "--validate=strict", "-f", "-"); err == nil {
		t.Errorf("a Deployment with an unknown field passed the server-side dry run:\n%s", out)
	}
}

// TestManifestsArgsAreKnownFlags checks that every flag the manifests pass to
// the binary is one its subcommand defines.
func TestManifestsArgsAreKnownFlags(t *testing.T) {
	s := require(t)
	bin := s.requireBinary(t)
	ctx := testContext(t)
	rendered, err := exec.CommandContext(ctx, s.assets.Kubectl, "kustomize", exampleOverlay).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", exampleOverlay, err)
	}
	argRE := regexp.MustCompile(`(?m)^\s+- (serve|plugin)$((?:\n\s+- --[a-z0-9-]+(?:=.*)?$)+)`)
	flagRE := regexp.MustCompile(`--([a-z0-9-]+)`)
	matches := argRE.FindAllSubmatch(rendered, -1)
	if len(matches) != 2 {
		t.Fatalf("found %d container arg lists for serve/plugin in the rendered overlay, want 2", len(matches))
	}
	for _, m := range matches {
		sub := string(m[1])
		help, _ := exec.CommandContext(ctx, bin, sub, "-h").CombinedOutput()
		for _, f := range flagRE.FindAllStringSubmatch(string(m[2]), -1) {
			if !regexp.MustCompile(`(?m)^\s+--?` + regexp.QuoteMeta(f[1]) + `\b`).Match(help) {
				t.Errorf("the manifests pass --%s to `prowjob-dispatcher %s`, which does not define it; its -h says:\n%s", f[1], sub, help)
			}
		}
	}
}

// TestManifestsExampleConfigsLoad starts the dispatcher on the configs the
// example overlay ships, so a ConfigMap the binary rejects fails here.
func TestManifestsExampleConfigsLoad(t *testing.T) {
	s := require(t)
	bin := s.requireBinary(t)
	overlay, err := filepath.Abs(exampleOverlay)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(testContext(t), bin, "plan",
		"--dispatcher-config", filepath.Join(overlay, "_config.yaml"),
		"--cluster-config", filepath.Join(overlay, "_clusters.yaml"),
		"--job-config", filepath.Join(overlay, "jobs"),
	).CombinedOutput()
	if err != nil {
		t.Fatalf("prowjob-dispatcher plan on the example overlay's configs: %v\n%s", err, out)
	}
	t.Logf("plan on the example overlay's configs:\n%s", out)
}
