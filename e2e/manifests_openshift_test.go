package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
)

// TestManifestsOpenShift checks what the OpenShift overlay changes: pods the
// restricted-v2 SCC admits (no UID, group or fsGroup of their own, the rest
// of what restricted asks), the service CA in place of cert-manager, and
// the policy sources of an OpenShift CI install.
func TestManifestsOpenShift(t *testing.T) {
	s := require(t)
	objs := renderedObjects(t, s.kustomize(testContext(t), t, openshiftOverlay))
	for _, name := range []string{"prowjob-dispatcher", "prowjob-dispatcher-plugin"} {
		d := &appsv1.Deployment{}
		if !renderedObject(t, objs, "Deployment", name, d) {
			t.Fatalf("no Deployment %s", name)
		}
		pod := d.Spec.Template.Spec
		if sc := pod.SecurityContext; sc == nil || sc.RunAsUser != nil || sc.RunAsGroup != nil || sc.FSGroup != nil {
			t.Errorf("%s: pod securityContext %+v pins a UID, group or fsGroup; restricted-v2 assigns them", name, sc)
		} else if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and the RuntimeDefault seccomp profile", name, sc)
		}
		for _, c := range pod.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.RunAsUser != nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("%s/%s: container securityContext %+v, want no UID, no privilege escalation, all capabilities dropped", name, c.Name, sc)
			}
		}
	}

	svc := &corev1.Service{}
	if !renderedObject(t, objs, "Service", "prowjob-dispatcher", svc) ||
		svc.Annotations["service.beta.openshift.io/serving-cert-secret-name"] != "prowjob-dispatcher-webhook-tls" {
		t.Errorf("the Service does not ask the service CA for the Secret the dispatcher mounts: %v", svc.Annotations)
	}
	wh := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if !renderedObject(t, objs, "MutatingWebhookConfiguration", "prowjob-dispatcher", wh) ||
		wh.Annotations["service.beta.openshift.io/inject-cabundle"] != "true" {
		t.Errorf("the webhook config does not ask for the service CA's bundle: %v", wh.Annotations)
	}
	if _, ok := wh.Annotations["cert-manager.io/inject-ca-from"]; ok {
		t.Error("the webhook config still asks cert-manager for its CA")
	}

	np := renderedPolicy(t, objs)
	admission := np.Spec.Ingress[0].From
	if len(admission) != 1 || admission[0].NamespaceSelector == nil || admission[0].PodSelector == nil ||
		admission[0].NamespaceSelector.MatchLabels["policy-group.network.openshift.io/host-network"] != "" ||
		len(admission[0].NamespaceSelector.MatchLabels) != 1 || len(admission[0].PodSelector.MatchLabels) != 0 {
		t.Errorf("admission sources %+v, want the host network (the kube-apiserver's) by OVN-Kubernetes' namespace label with an empty pod selector", admission)
	}
	if !slices.ContainsFunc(np.Spec.Ingress[1].From, func(p networkingv1.NetworkPolicyPeer) bool {
		return p.NamespaceSelector != nil && len(p.NamespaceSelector.MatchExpressions) == 1 && slices.Equal(p.NamespaceSelector.MatchExpressions[0].Values, []string{"ci"})
	}) {
		t.Errorf("API sources %+v, want Prow's namespace ci", np.Spec.Ingress[1].From)
	}
}

// TestManifestsNetworkPolicy: in every install the admission port is open to
// a source the overlay chose (not base's placeholder, not the service
// network that an earlier example shipped), and the API port to the
// namespace's pods and to Prow's namespaces.
func TestManifestsNetworkPolicy(t *testing.T) {
	s := require(t)
	for _, o := range installOverlays {
		t.Run(o.name, func(t *testing.T) {
			np := renderedPolicy(t, renderedObjects(t, s.kustomize(testContext(t), t, o.dir)))
			if len(np.Spec.Ingress) != 3 {
				t.Fatalf("%d ingress rules, want admission, API, metrics", len(np.Spec.Ingress))
			}
			for i, port := range []int32{9443, 8080, 8081} {
				if r := np.Spec.Ingress[i]; len(r.Ports) != 1 || r.Ports[0].Port.IntVal != port {
					t.Errorf("ingress rule %d is for %+v, want port %d", i, r.Ports, port)
				}
			}
			if len(np.Spec.Ingress[0].From) == 0 {
				t.Error("the admission port has no source")
			}
			for _, p := range np.Spec.Ingress[0].From {
				if p.IPBlock != nil && (p.IPBlock.CIDR == "192.0.2.0/32" || p.IPBlock.CIDR == "172.30.0.0/16") {
					t.Errorf("admission source %s: base's placeholder or OpenShift's service network, not the API server", p.IPBlock.CIDR)
				}
			}
			api := np.Spec.Ingress[1].From
			if !slices.ContainsFunc(api, func(p networkingv1.NetworkPolicyPeer) bool {
				return p.NamespaceSelector == nil && p.PodSelector != nil && len(p.PodSelector.MatchLabels) == 0
			}) || !slices.ContainsFunc(api, func(p networkingv1.NetworkPolicyPeer) bool { return p.NamespaceSelector != nil }) {
				t.Errorf("API sources %+v, want the namespace's pods and Prow's namespaces", api)
			}
		})
	}
}

func renderedPolicy(t *testing.T, objs []*unstructured.Unstructured) *networkingv1.NetworkPolicy {
	t.Helper()
	np := &networkingv1.NetworkPolicy{}
	if !renderedObject(t, objs, "NetworkPolicy", "prowjob-dispatcher", np) {
		t.Fatal("no NetworkPolicy prowjob-dispatcher")
	}
	if len(np.Spec.Ingress) < 2 {
		t.Fatalf("NetworkPolicy with %d ingress rules", len(np.Spec.Ingress))
	}
	return np
}

// TestManifestsHAWithoutCertManager renders the HA install without
// cert-manager, as manifests/README.md describes it: every replica mounts
// the one Secret that `prowjob-dispatcher certs` writes, at --cert-dir, so
// all serve certificates of the CA in the webhook config.
func TestManifestsHAWithoutCertManager(t *testing.T) {
	s := require(t)
	// kustomize takes relative paths only: the overlay sits in _output, two levels down.
	dir := filepath.Join(s.moduleDir, "_output", "e2e-ha-without-cert-manager")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	kustomization := "resources:\n- ../../manifests/overlays/ha-example\ncomponents:\n- ../../manifests/components/without-cert-manager\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	rendered := s.kustomize(testContext(t), t, dir)
	if bytes.Contains(rendered, []byte("cert-manager.io")) {
		t.Errorf("the install without cert-manager still has cert-manager objects or annotations:\n%s", rendered)
	}
	d, _ := renderedDispatcher(t, rendered)
	wantReplicas(t, d, 3)
	c := d.Spec.Template.Spec.Containers[0]
	i := slices.IndexFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--cert-dir=") })
	if i < 0 {
		t.Fatal("no --cert-dir")
	}
	certDir := strings.TrimPrefix(c.Args[i], "--cert-dir=")
	m := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == certDir })
	if m < 0 {
		t.Fatalf("nothing mounted at --cert-dir %s", certDir)
	}
	v := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[m].Name })
	if v < 0 || d.Spec.Template.Spec.Volumes[v].Secret == nil || d.Spec.Template.Spec.Volumes[v].Secret.SecretName != "prowjob-dispatcher-webhook-tls" {
		t.Errorf("--cert-dir %s is not the Secret prowjob-dispatcher-webhook-tls that `prowjob-dispatcher certs` writes", certDir)
	}
	if slices.Contains(c.Args, "--self-signed") {
		t.Error("the replicas make their own CAs (--self-signed)")
	}
}

// TestManifestsOpenShiftJobConfigFromGit runs the dispatcher with the Git
// job config of the OpenShift overlay as shipped, with only the URL patched
// (in a kustomization over the overlay) to the suite's release repository
// served by git http-backend: the rendered args fetch the checkout, read the
// job config and both configs from it, and place a job as the repository
// pins it.
func TestManifestsOpenShiftJobConfigFromGit(t *testing.T) {
	s := require(t)
	bin := s.requireBinary(t)
	ctx := testContext(t)
	repo := newReleaseRepo(t, t.TempDir())

	d, _ := renderedDispatcher(t, s.kustomize(ctx, t, openshiftOverlay))
	args := d.Spec.Template.Spec.Containers[0].Args
	const urlFlag = "--job-config-git-url="
	i := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, urlFlag) })
	if i < 0 {
		t.Fatalf("the OpenShift overlay's dispatcher has no %s: %q", urlFlag, args)
	}
	// kustomize takes relative paths only: the overlay sits in _output, two levels down.
	dir := filepath.Join(s.moduleDir, "_output", "e2e-openshift-git")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	kustomization := fmt.Sprintf(`resources:
- ../../manifests/overlays/openshift
patches:
- target: {kind: Deployment, name: prowjob-dispatcher}
  patch: |-
    - op: test
      path: /spec/template/spec/containers/0/args/%[1]d
      value: %[2]s
    - op: replace
      path: /spec/template/spec/containers/0/args/%[1]d
      value: %[3]s
`, i, args[i], urlFlag+repo.url)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ = renderedDispatcher(t, s.kustomize(ctx, t, dir))

	// The overlay's job config args, but a writable dir for the checkout.
	cfg := framework.ServeConfig{Bin: bin, Dir: filepath.Join(s.workDir, "openshift-git"), Name: "dispatcher-openshift-git", PrometheusURL: s.prom.URL}
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		name, value, _ := strings.Cut(a, "=")
		switch {
		case name == "--dispatcher-config":
			cfg.DispatcherConfig = value
		case name == "--cluster-config":
			cfg.ClusterConfig = value
		case name == "--job-config":
			cfg.JobConfig = value
		case name == "--job-config-git-dir":
			cfg.ExtraArgs = append(cfg.ExtraArgs, name+"="+filepath.Join(cfg.Dir, "git"))
		case strings.HasPrefix(name, "--job-config-git-") || name == "--configs-from-git":
			cfg.ExtraArgs = append(cfg.ExtraArgs, a)
		}
	}
	t.Logf("the overlay's Git job config: --dispatcher-config=%s --cluster-config=%s --job-config=%s %s",
		cfg.DispatcherConfig, cfg.ClusterConfig, cfg.JobConfig, strings.Join(cfg.ExtraArgs, " "))
	if !slices.Contains(cfg.ExtraArgs, urlFlag+repo.url) || !slices.Contains(cfg.ExtraArgs, "--configs-from-git") {
		t.Fatalf("the patched overlay's args %q lack %s%s or --configs-from-git", cfg.ExtraArgs, urlFlag, repo.url)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := framework.StartServe(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	a, err := p.API.Assignment(ctx, jobConsolePinned)
	if err != nil || a.Cluster != "build03" {
		t.Fatalf("assignment of %s = %+v, %v; want build03 as the repository pins it", jobConsolePinned, a, err)
	}
	var ready struct {
		JobConfig struct{ Repository, Revision, Error string } `json:"jobConfig"`
	}
	if err := getJSON(ctx, p.HealthURL+"/readyz", &ready); err != nil || ready.JobConfig.Revision == "" || ready.JobConfig.Error != "" ||
		ready.JobConfig.Repository != "openshift/release@master" {
		t.Errorf("/readyz jobConfig %+v (%v), want openshift/release@master at a revision, no error", ready.JobConfig, err)
	}
}
