package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
)

// readmeShellBlocks returns the ```sh blocks of the README section that
// starts with heading, in order.
func readmeShellBlocks(t *testing.T, path, heading string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n"+heading+"\n")
	if start < 0 {
		t.Fatalf("%s has no section %q", path, heading)
	}
	section := text[start+1:]
	if end := strings.Index(section[len(heading):], "\n## "); end >= 0 {
		section = section[:len(heading)+end]
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?ms)^```sh\n(.*?)^```$").FindAllStringSubmatch(section, -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) == 0 {
		t.Fatalf("%s, section %q: no sh blocks", path, heading)
	}
	return blocks
}

// TestREADMEInstall runs every command of the README's Install section, as
// one script, in the module's folder, with the tools the README asks for on
// PATH: against a kube-apiserver of its own (the install writes a webhook
// config that must not reach the suite's) and a registry served by
// go-containerregistry. The API server has no controller manager and no
// kubelet, so the test sets the status of the Deployments the install
// creates as the Deployment controller would for running pods; everything
// else is what the commands did: the image in the registry, the overlay's
// image and network policy sources, the Secrets, and a serving certificate
// that the webhook config's caBundle trusts.
func TestREADMEInstall(t *testing.T) {
	s := require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	crds, err := filepath.Glob("testdata/crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	api, err := framework.StartAPIServer(ctx, s.assets.Dir, t.TempDir(), crds...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = api.Stop() }()
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	repo := strings.TrimPrefix(reg.URL, "http://") + "/ci"

	secrets := t.TempDir()
	for file, content := range map[string]string{"hmac": "hmac-secret\n", "oauth": "github-token\n"} {
		if err := os.WriteFile(filepath.Join(secrets, file), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	installDir := filepath.Join(s.moduleDir, "_output", "install")
	t.Cleanup(func() { os.RemoveAll(installDir) })

	go playDeploymentController(ctx, api.Client)
	script := strings.Join(readmeShellBlocks(t, "../README.md", "## Install"), "\n")
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = s.moduleDir
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+api.KubeconfigPath,
		"PATH="+filepath.Dir(s.assets.Kubectl)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"REGISTRY="+repo,
		"HMAC_FILE="+filepath.Join(secrets, "hmac"),
		"GITHUB_TOKEN_FILE="+filepath.Join(secrets, "oauth"),
		"PROW_NAMESPACE=ci")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("the README's Install section, run in %s:\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("the README's Install section failed: %v", err)
	}

	// The image the install runs is the one make image built, in the registry.
	tagOut, err := exec.CommandContext(ctx, "git", "-C", s.moduleDir, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Fatal(err)
	}
	image := repo + "/prowjob-dispatcher:" + strings.TrimSpace(string(tagOut))
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("%s is not in the registry: %v", image, err)
	}
	idx, err := layout.ImageIndexFromPath(filepath.Join(s.moduleDir, "_output", "image"))
	if err != nil {
		t.Fatal(err)
	}
	built, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := pushed.Digest(); err != nil || len(built.Manifests) == 0 || d != built.Manifests[0].Digest {
		t.Errorf("the registry's %s is %v (%v), make image built %+v", image, d, err, built.Manifests)
	}

	for _, name := range []string{"prowjob-dispatcher", "prowjob-dispatcher-plugin"} {
		d := &appsv1.Deployment{}
		if err := api.Client.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: name}, d); err != nil {
			t.Fatal(err)
		}
		if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
			t.Errorf("Deployment %s runs %s, want %s", name, got, image)
		}
	}
	for _, name := range []string{"prowjob-dispatcher-api-token", "hmac-token", "github-token"} {
		if err := api.Client.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: name}, &corev1.Secret{}); err != nil {
			t.Errorf("Secret %s: %v", name, err)
		}
	}

	np := &networkingv1.NetworkPolicy{}
	if err := api.Client.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: "prowjob-dispatcher"}, np); err != nil {
		t.Fatal(err)
	}
	// The addresses the API server advertises, which the README reads.
	ep := &corev1.Endpoints{}
	if err := api.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "kubernetes"}, ep); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ss := range ep.Subsets {
		for _, a := range ss.Addresses {
			want = append(want, a.IP+"/32")
		}
	}
	var got []string
	for _, p := range np.Spec.Ingress[0].From {
		if p.IPBlock != nil {
			got = append(got, p.IPBlock.CIDR)
		}
	}
	if len(want) == 0 || !slices.Equal(got, want) || len(got) != len(np.Spec.Ingress[0].From) {
		t.Errorf("admission sources %+v, want the API server's addresses %q", np.Spec.Ingress[0].From, want)
	}
	if ns := np.Spec.Ingress[1].From[1].NamespaceSelector; ns == nil || !slices.Equal(ns.MatchExpressions[0].Values, []string{"ci"}) {
		t.Errorf("Prow's namespaces %+v, want ci", ns)
	}

	tls := &corev1.Secret{}
	if err := api.Client.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: "prowjob-dispatcher-webhook-tls"}, tls); err != nil {
		t.Fatalf("the serving certificate's Secret: %v", err)
	}
	wh := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := api.Client.Get(ctx, client.ObjectKey{Name: "prowjob-dispatcher"}, wh); err != nil {
		t.Fatal(err)
	}
	if len(wh.Webhooks) == 0 || !bytes.Equal(wh.Webhooks[0].ClientConfig.CABundle, tls.Data["ca.crt"]) {
		t.Error("the webhook config's caBundle is not the Secret's CA")
	}
	if _, ok := wh.Annotations["cert-manager.io/inject-ca-from"]; ok {
		t.Error("the install without cert-manager still asks cert-manager for the CA")
	}
}

// playDeploymentController marks every Deployment of the install namespace
// rolled out, as the controller manager would once the kubelet runs the pods.
func playDeploymentController(ctx context.Context, c client.Client) {
	for ctx.Err() == nil {
		var list appsv1.DeploymentList
		if err := c.List(ctx, &list, client.InNamespace(installNamespace)); err == nil {
			for i := range list.Items {
				d := &list.Items[i]
				n := int32(1)
				if d.Spec.Replicas != nil {
					n = *d.Spec.Replicas
				}
				if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == n {
					continue
				}
				d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
				if err := c.Status().Update(ctx, d); err != nil {
					fmt.Fprintf(os.Stderr, "e2e: marking Deployment %s rolled out: %v\n", d.Name, err)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
