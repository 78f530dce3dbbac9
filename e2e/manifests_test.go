package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const (
	exampleOverlay   = "../manifests/overlays/example"
	haExampleOverlay = "../manifests/overlays/ha-example"
	openshiftOverlay = "../manifests/overlays/openshift"
	// crdsDir holds the CRDs of the kubernetes state backend (make generate).
	crdsDir = "../manifests/crds"
	// installNamespace is the namespace base installs into.
	installNamespace = "prowjob-dispatcher"
)

// installOverlay is one install the manifests tests render, apply and check.
type installOverlay struct {
	name, dir string
	// crds: the overlay ships manifests/crds, which are applied for real
	// before the dry run.
	crds bool
	// objects must be in the server-side dry run's output, absent must not.
	objects, absent []string
	// serveArgs must be among the dispatcher's args; noServeFlags (names
	// with their leading --) must not.
	serveArgs, noServeFlags []string
	// deployment checks the rendered dispatcher Deployment and its PodDisruptionBudget.
	deployment func(t *testing.T, d *appsv1.Deployment, pdb *policyv1.PodDisruptionBudget)
}

// installObjects are in every install.
var installObjects = []string{
	"namespace/prowjob-dispatcher",
	"serviceaccount/prowjob-dispatcher",
	"configmap/prowjob-dispatcher-plugin",
	"service/prowjob-dispatcher",
	"service/prowjob-dispatcher-plugin",
	"deployment.apps/prowjob-dispatcher",
	"deployment.apps/prowjob-dispatcher-plugin",
	"poddisruptionbudget.policy/prowjob-dispatcher",
	"mutatingwebhookconfiguration.admissionregistration.k8s.io/prowjob-dispatcher",
	"networkpolicy.networking.k8s.io/prowjob-dispatcher",
	"servicemonitor.monitoring.coreos.com/prowjob-dispatcher",
}

// configMapObjects hold the job config and the two configs where they are
// not read from Git.
var configMapObjects = []string{
	"configmap/prowjob-dispatcher-config",
	"configmap/prowjob-dispatcher-clusters",
	"configmap/job-config",
}

// certManagerObjects sign the serving certificate where cert-manager does.
var certManagerObjects = []string{
	"issuer.cert-manager.io/prowjob-dispatcher-selfsigned",
	"certificate.cert-manager.io/prowjob-dispatcher-ca",
	"issuer.cert-manager.io/prowjob-dispatcher-ca",
	"certificate.cert-manager.io/prowjob-dispatcher-webhook",
}

// monitoringObjects are those of components/monitoring, which the example
// overlays include.
var monitoringObjects = []string{
	"servicemonitor.monitoring.coreos.com/prowjob-dispatcher-plugin",
	"prometheusrule.monitoring.coreos.com/prowjob-dispatcher",
	"configmap/prowjob-dispatcher-dashboard",
}

// stateCRDs are the CRDs of manifests/crds.
var stateCRDs = []string{
	"customresourcedefinition.apiextensions.k8s.io/joboverrides.prowjob-dispatcher.io",
	"customresourcedefinition.apiextensions.k8s.io/clusterdrains.prowjob-dispatcher.io",
	"customresourcedefinition.apiextensions.k8s.io/tableshards.prowjob-dispatcher.io",
	"customresourcedefinition.apiextensions.k8s.io/jobplacements.prowjob-dispatcher.io",
	"customresourcedefinition.apiextensions.k8s.io/dispatcherreplicas.prowjob-dispatcher.io",
}

var installOverlays = []installOverlay{{
	// The single replica with the file state (base).
	name: "example", dir: exampleOverlay,
	objects:      slices.Concat([]string{"persistentvolumeclaim/prowjob-dispatcher-state"}, configMapObjects, certManagerObjects, monitoringObjects),
	absent:       append([]string{"role.rbac.authorization.k8s.io/", "rolebinding.rbac.authorization.k8s.io/"}, stateCRDs...),
	serveArgs:    []string{"--state-dir=/var/lib/prowjob-dispatcher"},
	noServeFlags: []string{"--state-backend", "--replica-name"},
	deployment: func(t *testing.T, d *appsv1.Deployment, pdb *policyv1.PodDisruptionBudget) {
		wantReplicas(t, d, 1)
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("strategy %q, want Recreate (one state writer)", d.Spec.Strategy.Type)
		}
		if !hasVolume(d, "state") {
			t.Error("no state volume for --state-dir")
		}
		if pod := d.Spec.Template.Spec; pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Error("the file-state dispatcher mounts a service account token; it calls no API")
		}
	},
}, {
	// Three replicas with the state in the API server (components/ha).
	name: "ha-example", dir: haExampleOverlay, crds: true,
	objects: slices.Concat([]string{
		"role.rbac.authorization.k8s.io/prowjob-dispatcher",
		"rolebinding.rbac.authorization.k8s.io/prowjob-dispatcher",
	}, stateCRDs, configMapObjects, certManagerObjects, monitoringObjects),
	absent: []string{"persistentvolumeclaim/"},
	serveArgs: []string{
		"--state-backend=kubernetes",
		"--namespace=$(POD_NAMESPACE)",
		"--replica-name=$(POD_NAME)",
		"--advertise-address=http://$(POD_IP):8080",
		"--replica-secret-file=/etc/dispatcher-replica-secret/secret",
		// The example overlay's patch of args/5 still hits --prometheus-url.
		"--prometheus-url=http://prometheus-k8s.openshift-monitoring.svc:9090",
	},
	noServeFlags: []string{"--state-dir"},
	deployment: func(t *testing.T, d *appsv1.Deployment, pdb *policyv1.PodDisruptionBudget) {
		wantReplicas(t, d, 3)
		if s := d.Spec.Strategy; s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
			s.RollingUpdate.MaxUnavailable.String() != "1" || s.RollingUpdate.MaxSurge.String() != "1" {
			t.Errorf("strategy %+v, want RollingUpdate with maxUnavailable 1, maxSurge 1", s)
		}
		if hasVolume(d, "state") {
			t.Error("the state volume is still there")
		}
		if !hasVolume(d, "replica-secret") {
			t.Error("no replica-secret volume for --replica-secret-file")
		}
		pod := d.Spec.Template.Spec
		if pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
			t.Error("no service account token: the replicas cannot reach the API")
		}
		c := pod.Containers[0]
		for name, field := range map[string]string{"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name", "POD_IP": "status.podIP"} {
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
			if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != field {
				t.Errorf("env %s is not the downward API's %s", name, field)
			}
		}
		if !slices.ContainsFunc(pod.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
			return c.TopologyKey == corev1.LabelHostname && c.MaxSkew == 1 && c.WhenUnsatisfiable == corev1.ScheduleAnyway
		}) {
			t.Errorf("no topology spread over %s with maxSkew 1, ScheduleAnyway: %+v", corev1.LabelHostname, pod.TopologySpreadConstraints)
		}
		if a := pod.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 ||
			len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
			t.Errorf("want a preferred (not required) pod anti-affinity: %+v", a)
		}
		if pdb == nil || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" {
			t.Errorf("PodDisruptionBudget %+v, want maxUnavailable 1", pdb)
		}
	},
}, {
	// OpenShift: the SCC assigns the UID, the service CA signs the
	// certificate, the job config and the configs come from openshift/release
	// (TestManifestsOpenShift and TestManifestsOpenShiftJobConfigFromGit check
	// the rest).
	name: "openshift", dir: openshiftOverlay,
	objects: []string{"persistentvolumeclaim/prowjob-dispatcher-state"},
	absent:  slices.Concat([]string{"issuer.cert-manager.io/", "certificate.cert-manager.io/", "role.rbac.authorization.k8s.io/"}, configMapObjects, stateCRDs),
	serveArgs: []string{"--state-dir=/var/lib/prowjob-dispatcher", "--cert-dir=/etc/webhook/certs",
		"--job-config-git-url=https://github.com/openshift/release", "--job-config-git-branch=master", "--configs-from-git",
		"--job-config=ci-operator/jobs", "--dispatcher-config=core-services/sanitize-prow-jobs/_config.yaml",
		"--cluster-config=core-services/sanitize-prow-jobs/_clusters.yaml"},
	noServeFlags: []string{"--state-backend", "--self-signed"},
	deployment: func(t *testing.T, d *appsv1.Deployment, pdb *policyv1.PodDisruptionBudget) {
		wantReplicas(t, d, 1)
		if !hasVolume(d, "webhook-certs") {
			t.Error("no webhook-certs volume: the service CA's Secret is not mounted")
		}
		c := d.Spec.Template.Spec.Containers[0]
		i := slices.IndexFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--job-config-git-dir=") })
		if i < 0 {
			t.Fatal("no --job-config-git-dir")
		}
		dir := strings.TrimPrefix(c.Args[i], "--job-config-git-dir=")
		m := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
		if v := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return m >= 0 && v.Name == c.VolumeMounts[m].Name }); v < 0 ||
			d.Spec.Template.Spec.Volumes[v].EmptyDir == nil || c.VolumeMounts[m].ReadOnly {
			t.Errorf("--job-config-git-dir %s is not a writable emptyDir (the root file system is read-only)", dir)
		}
		for _, gone := range []string{"dispatcher-config", "cluster-config", "job-config"} {
			if hasVolume(d, gone) {
				t.Errorf("volume %s is still there; the configs come from Git", gone)
			}
		}
	},
}}

// kubectl runs kubectl against the suite's API server.
func (s *suite) kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.assets.Kubectl, append([]string{"--kubeconfig", s.api.KubeconfigPath}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kustomize renders a kustomization.
func (s *suite) kustomize(ctx context.Context, t *testing.T, dir string) []byte {
	t.Helper()
	out, err := exec.CommandContext(ctx, s.assets.Kubectl, "kustomize", dir).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
	}
	return out
}

// ensureNamespace creates a namespace unless it exists.
func (s *suite) ensureNamespace(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	if err := s.api.CreateNamespace(ctx, name, nil); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// applyStateCRDs applies manifests/crds for real, as an install does, and
// waits until the API server serves them.
func (s *suite) applyStateCRDs(ctx context.Context, t *testing.T) {
	t.Helper()
	out, err := s.kubectl(ctx, nil, "apply", "--validate=strict", "-o", "name", "-k", crdsDir)
	if err != nil {
		t.Fatalf("kubectl apply -k %s: %v\n%s", crdsDir, err, out)
	}
	names := strings.Fields(out)
	if len(names) != len(stateCRDs) {
		t.Fatalf("kubectl apply -k %s applied %q, want the %d CRDs %q", crdsDir, names, len(stateCRDs), stateCRDs)
	}
	if out, err := s.kubectl(ctx, nil, append([]string{"wait", "--for=condition=Established", "--timeout=60s"}, names...)...); err != nil {
		t.Fatalf("the CRDs of %s are not established: %v\n%s", crdsDir, err, out)
	}
}

// TestManifestsApplyServerSide applies each install overlay with a
// server-side dry run and strict field validation, so the API server checks
// every object against its schema (cert-manager's and the Prometheus
// Operator's kinds against minimal stand-in CRDs from testdata/crds). The HA
// overlay's CRDs are applied for real first, as an install would.
func TestManifestsApplyServerSide(t *testing.T) {
	s := require(t)
	for _, o := range installOverlays {
		t.Run(o.name, func(t *testing.T) {
			ctx := testContext(t)
			rendered := s.kustomize(ctx, t, o.dir)
			// Namespaced objects need their namespace to exist for a dry run.
			s.ensureNamespace(ctx, t, installNamespace)
			if o.crds {
				s.applyStateCRDs(ctx, t)
			}
			out, err := s.kubectl(ctx, nil, "apply", "--dry-run=server", "--validate=strict", "-k", o.dir)
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server -k %s failed: %v\n%s", o.dir, err, out)
			}
			for _, want := range append(slices.Clone(installObjects), o.objects...) {
				if !strings.Contains(out, want+" ") {
					t.Errorf("server-side dry run did not apply %s; output:\n%s", want, out)
				}
			}
			for _, unwanted := range o.absent {
				if strings.Contains(out, unwanted) {
					t.Errorf("server-side dry run applied %s, which %s must not have; output:\n%s", unwanted, o.name, out)
				}
			}

			// The same check rejects a broken manifest: an unknown field in the
			// dispatcher Deployment (the first Deployment rendered).
			broken := bytes.Replace(rendered, []byte("\n  replicas: "), []byte("\n  replicass: 2\n  replicas: "), 1)
			if bytes.Equal(broken, rendered) {
				t.Fatal("could not find the dispatcher Deployment's replicas in the rendered overlay to break it")
			}
			if out, err := s.kubectl(ctx, broken, "apply", "--dry-run=server", "--validate=strict", "-f", "-"); err == nil {
				t.Errorf("a Deployment with an unknown field passed the server-side dry run:\n%s", out)
			} else if !strings.Contains(out, "replicass") {
				t.Errorf("the broken Deployment was refused, but not for its unknown field:\n%s", out)
			}
		})
	}
}

// TestManifestsArgsAreKnownFlags checks that every flag the manifests pass to
// the binary is one its subcommand defines, and that each install passes the
// dispatcher the state flags of its mode.
func TestManifestsArgsAreKnownFlags(t *testing.T) {
	s := require(t)
	bin := s.requireBinary(t)
	argRE := regexp.MustCompile(`(?m)^\s+- (serve|plugin)$((?:\n\s+- --[a-z0-9-]+(?:=.*)?$)+)`)
	flagRE := regexp.MustCompile(`--([a-z0-9-]+)`)
	for _, o := range installOverlays {
		t.Run(o.name, func(t *testing.T) {
			ctx := testContext(t)
			rendered := s.kustomize(ctx, t, o.dir)
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

			d, _ := renderedDispatcher(t, rendered)
			args := d.Spec.Template.Spec.Containers[0].Args
			for _, want := range o.serveArgs {
				if !slices.Contains(args, want) {
					t.Errorf("the dispatcher's args lack %s: %q", want, args)
				}
			}
			for _, flag := range o.noServeFlags {
				if i := slices.IndexFunc(args, func(a string) bool { return a == flag || strings.HasPrefix(a, flag+"=") }); i >= 0 {
					t.Errorf("the dispatcher's args have %s, which %s must not pass", args[i], o.name)
				}
			}
		})
	}
}

// TestManifestsDispatcherDeployment checks the shape of each install's
// dispatcher: replicas, rollout, state volume, token, spreading, budget, and
// that every $(VAR) of its args is an env var of its container (Kubernetes
// leaves an undefined one as the literal text).
func TestManifestsDispatcherDeployment(t *testing.T) {
	s := require(t)
	varRE := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, o := range installOverlays {
		t.Run(o.name, func(t *testing.T) {
			d, pdb := renderedDispatcher(t, s.kustomize(testContext(t), t, o.dir))
			c := d.Spec.Template.Spec.Containers[0]
			for _, a := range c.Args {
				for _, m := range varRE.FindAllStringSubmatch(a, -1) {
					if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == m[1] }) {
						t.Errorf("arg %s refers to $(%s), which the container's env does not define", a, m[1])
					}
				}
			}
			for _, m := range c.VolumeMounts {
				if !hasVolume(d, m.Name) {
					t.Errorf("volume mount %s (%s) has no volume", m.Name, m.MountPath)
				}
			}
			o.deployment(t, d, pdb)
		})
	}
}

// TestManifestsHARBAC applies the HA install's Role and RoleBinding for real
// and asks the API server, as the dispatcher's ServiceAccount, what it may
// do: what the kubernetes state backend needs, and nothing more.
func TestManifestsHARBAC(t *testing.T) {
	s := require(t)
	ctx := testContext(t)
	s.ensureNamespace(ctx, t, installNamespace)
	// kubectl auth can-i resolves the kinds through discovery.
	s.applyStateCRDs(ctx, t)
	var rbac []any
	for _, u := range renderedObjects(t, s.kustomize(ctx, t, haExampleOverlay)) {
		if k := u.GetKind(); k == "Role" || k == "RoleBinding" || k == "ClusterRole" || k == "ClusterRoleBinding" {
			rbac = append(rbac, u.Object)
		}
	}
	if len(rbac) != 2 {
		t.Fatalf("the HA overlay has %d RBAC objects, want a Role and a RoleBinding", len(rbac))
	}
	list, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": rbac})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.kubectl(ctx, list, "apply", "--validate=strict", "-f", "-"); err != nil {
		t.Fatalf("applying the HA overlay's Role and RoleBinding: %v\n%s", err, out)
	}

	as := "--as=system:serviceaccount:" + installNamespace + ":prowjob-dispatcher"
	type check struct {
		verb, resource string
		namespace      string // installNamespace when empty
		want           bool
	}
	checks := []check{
		{"get", "leases.coordination.k8s.io/prowjob-dispatcher", "", true},
		{"update", "leases.coordination.k8s.io/prowjob-dispatcher", "", true},
		{"list", "leases.coordination.k8s.io/prowjob-dispatcher", "", true},
		{"watch", "leases.coordination.k8s.io/prowjob-dispatcher", "", true},
		{"create", "leases.coordination.k8s.io", "", true},
		{"get", "leases.coordination.k8s.io/another", "", false},
		{"update", "leases.coordination.k8s.io/another", "", false},
		{"list", "leases.coordination.k8s.io", "", false},
		{"delete", "leases.coordination.k8s.io/prowjob-dispatcher", "", false},
		{"patch", "leases.coordination.k8s.io/prowjob-dispatcher", "", false},
		{"create", "events.events.k8s.io", "", true},
		{"patch", "events.events.k8s.io", "", true},
		{"create", "events", "", true},
		{"patch", "events", "", true},
		{"list", "events.events.k8s.io", "", false},
		{"get", "secrets", "", false},
		{"list", "configmaps", "", false},
		{"get", "prowjobs.prow.k8s.io", "", false},
		{"get", "joboverrides.prowjob-dispatcher.io", "default", false},
	}
	for _, r := range []string{"joboverrides", "clusterdrains", "tableshards", "jobplacements", "dispatcherreplicas"} {
		for _, verb := range []string{"get", "list", "watch", "create", "update", "delete"} {
			checks = append(checks, check{verb, r + ".prowjob-dispatcher.io", "", true})
		}
		checks = append(checks, check{"patch", r + ".prowjob-dispatcher.io", "", false}, check{"deletecollection", r + ".prowjob-dispatcher.io", "", false})
	}
	for _, c := range checks {
		ns := c.namespace
		if ns == "" {
			ns = installNamespace
		}
		out, err := s.kubectl(ctx, nil, "auth", "can-i", c.verb, c.resource, "-n", ns, as)
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			t.Fatalf("kubectl auth can-i %s %s: %v\n%s", c.verb, c.resource, err, out)
		}
		if got := err == nil; got != c.want {
			t.Errorf("the dispatcher may %s %s in %s: %v, want %v\n%s", c.verb, c.resource, ns, got, c.want, out)
		}
	}

	// The requests the backend makes, as the backend makes them: its informer
	// lists the one Lease by field selector; a list of all is refused.
	if out, err := s.kubectl(ctx, nil, "get", "leases", "-n", installNamespace, "--field-selector=metadata.name=prowjob-dispatcher", as); err != nil {
		t.Errorf("listing the Lease by field selector as the dispatcher: %v\n%s", err, out)
	}
	if out, err := s.kubectl(ctx, nil, "get", "leases", "-n", installNamespace, as); err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("listing every Lease as the dispatcher: %v, want forbidden\n%s", err, out)
	}
}

// TestManifestsExampleConfigsLoad runs the dispatcher's plan on the
// ConfigMaps each install overlay ships, laid out as its Deployment mounts
// them, so a ConfigMap the binary rejects (or a config path the mounts do not
// provide) fails here.
func TestManifestsExampleConfigsLoad(t *testing.T) {
	s := require(t)
	bin := s.requireBinary(t)
	for _, o := range installOverlays {
		t.Run(o.name, func(t *testing.T) {
			ctx := testContext(t)
			rendered := s.kustomize(ctx, t, o.dir)
			d, _ := renderedDispatcher(t, rendered)
			if slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--configs-from-git") {
				t.Skip("the configs come from Git: TestManifestsOpenShiftJobConfigFromGit runs them")
			}
			root := t.TempDir()
			mountConfigMaps(t, rendered, d, root)
			planArgs := []string{"plan"}
			for _, flag := range []string{"--dispatcher-config", "--cluster-config", "--job-config"} {
				i := slices.IndexFunc(d.Spec.Template.Spec.Containers[0].Args, func(a string) bool { return strings.HasPrefix(a, flag+"=") })
				if i < 0 {
					t.Fatalf("the dispatcher's args have no %s", flag)
				}
				path := strings.TrimPrefix(d.Spec.Template.Spec.Containers[0].Args[i], flag+"=")
				planArgs = append(planArgs, flag, filepath.Join(root, path))
			}
			out, err := exec.CommandContext(ctx, bin, planArgs...).CombinedOutput()
			if err != nil {
				t.Fatalf("prowjob-dispatcher %s on %s's ConfigMaps: %v\n%s", strings.Join(planArgs, " "), o.name, err, out)
			}
			t.Logf("plan on %s's ConfigMaps:\n%s", o.name, out)
		})
	}
}

// TestCRDsPrinterColumnsAndValidation installs the real CRDs of
// manifests/crds and uses them as an operator would with kubectl: create a
// JobOverride and a ClusterDrain, list them with their printer columns,
// cancel the override with kubectl delete. The API server refuses objects
// that break the schema, naming the field.
func TestCRDsPrinterColumnsAndValidation(t *testing.T) {
	s := require(t)
	ctx := testContext(t)
	s.applyStateCRDs(ctx, t)
	const ns = "crd-printer-columns"
	s.ensureNamespace(ctx, t, ns)

	objects := `
apiVersion: prowjob-dispatcher.io/v1alpha1
kind: JobOverride
metadata:
  name: pull-ci-openshift-origin-main-unit
spec:
  job: pull-ci-openshift-origin-main-unit
  cluster: build02
  reason: flaky-on-build01
  by: alice
  expires: "2030-01-02T03:04:05Z"
---
apiVersion: prowjob-dispatcher.io/v1alpha1
kind: ClusterDrain
metadata:
  name: build01
spec:
  cluster: build01
  capacity: 50
  reason: upgrade
  by: health
  expires: "2030-01-02T03:04:05Z"
`
	if out, err := s.kubectl(ctx, []byte(objects), "apply", "-n", ns, "--validate=strict", "-f", "-"); err != nil {
		t.Fatalf("creating a JobOverride and a ClusterDrain: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		args       []string
		header     []string
		row        []string
		ignoreLast bool // AGE
	}{{
		args:   []string{"get", "joboverrides"},
		header: []string{"NAME", "JOB", "CLUSTER", "EXPIRES", "BY", "AGE"},
		row:    []string{"pull-ci-openshift-origin-main-unit", "pull-ci-openshift-origin-main-unit", "build02", "2030-01-02T03:04:05Z", "alice"}, ignoreLast: true,
	}, {
		// Reason is a wide column.
		args:   []string{"get", "jo", "-o", "wide"},
		header: []string{"NAME", "JOB", "CLUSTER", "EXPIRES", "BY", "REASON", "AGE"},
		row:    []string{"pull-ci-openshift-origin-main-unit", "pull-ci-openshift-origin-main-unit", "build02", "2030-01-02T03:04:05Z", "alice", "flaky-on-build01"}, ignoreLast: true,
	}, {
		args:   []string{"get", "clusterdrains"},
		header: []string{"NAME", "CLUSTER", "CAPACITY", "EXPIRES", "BY", "REASON"},
		row:    []string{"build01", "build01", "50", "2030-01-02T03:04:05Z", "health", "upgrade"},
	}} {
		out, err := s.kubectl(ctx, nil, append(tc.args, "-n", ns)...)
		if err != nil {
			t.Errorf("kubectl %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			continue
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Errorf("kubectl %s: want a header and one row:\n%s", strings.Join(tc.args, " "), out)
			continue
		}
		header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
		if tc.ignoreLast && len(row) > 0 {
			row = row[:len(row)-1]
		}
		if !slices.Equal(header, tc.header) || !slices.Equal(row, tc.row) {
			t.Errorf("kubectl %s printed\n%s\nwant the columns %q and the row %q", strings.Join(tc.args, " "), out, tc.header, tc.row)
		}
	}

	if out, err := s.kubectl(ctx, nil, "get", "joboverrides,clusterdrains", "-n", ns); err != nil {
		t.Errorf("kubectl get joboverrides,clusterdrains: %v\n%s", err, out)
	} else {
		t.Logf("kubectl get joboverrides,clusterdrains -n %s:\n%s", ns, out)
	}
	// One listing of both kinds, and the category that holds all five.
	for _, args := range [][]string{{"get", "joboverrides,clusterdrains", "-o", "name"}, {"get", "prowjob-dispatcher", "-o", "name"}} {
		out, err := s.kubectl(ctx, nil, append(args, "-n", ns)...)
		want := []string{"clusterdrain.prowjob-dispatcher.io/build01", "joboverride.prowjob-dispatcher.io/pull-ci-openshift-origin-main-unit"}
		if got := strings.Fields(out); err != nil || !slices.Equal(slices.Sorted(slices.Values(got)), want) {
			t.Errorf("kubectl %s: %v\n%s\nwant %q", strings.Join(args, " "), err, out, want)
		}
	}

	// kubectl delete cancels the override.
	if out, err := s.kubectl(ctx, nil, "delete", "-n", ns, "joboverride", "pull-ci-openshift-origin-main-unit"); err != nil {
		t.Errorf("kubectl delete joboverride: %v\n%s", err, out)
	}
	if out, err := s.kubectl(ctx, nil, "get", "-n", ns, "joboverrides", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("after kubectl delete, kubectl get joboverrides: %v\n%s\nwant nothing", err, out)
	}

	for _, tc := range []struct {
		name, object string
		want         []string
	}{{
		name: "ClusterDrain capacity 101",
		object: `apiVersion: prowjob-dispatcher.io/v1alpha1
kind: ClusterDrain
metadata: {name: build03}
spec: {cluster: build03, capacity: 101, reason: test, expires: "2030-01-02T03:04:05Z"}`,
		want: []string{"spec.capacity", "less than or equal to 100"},
	}, {
		name: "ClusterDrain capacity -1",
		object: `apiVersion: prowjob-dispatcher.io/v1alpha1
kind: ClusterDrain
metadata: {name: build03}
spec: {cluster: build03, capacity: -1, reason: test, expires: "2030-01-02T03:04:05Z"}`,
		want: []string{"spec.capacity", "greater than or equal to 0"},
	}, {
		name: "ClusterDrain without expires",
		object: `apiVersion: prowjob-dispatcher.io/v1alpha1
kind: ClusterDrain
metadata: {name: build03}
spec: {cluster: build03, reason: test}`,
		want: []string{"spec.expires", "Required value"},
	}, {
		name: "JobOverride with an empty job",
		object: `apiVersion: prowjob-dispatcher.io/v1alpha1
kind: JobOverride
metadata: {name: empty-job}
spec: {job: "", cluster: build02, reason: test}`,
		want: []string{"spec.job", "at least 1 chars long"},
	}, {
		name: "JobOverride with an unknown field",
		object: `apiVersion: prowjob-dispatcher.io/v1alpha1
kind: JobOverride
metadata: {name: unknown-field}
spec: {job: some-job, cluster: build02, reason: test, clustr: build03}`,
		want: []string{"spec.clustr"},
	}} {
		out, err := s.kubectl(ctx, []byte(tc.object), "create", "-n", ns, "--validate=strict", "-f", "-")
		if err == nil {
			t.Errorf("%s: the API server accepted it:\n%s", tc.name, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: refused, but the message does not say %q:\n%s", tc.name, w, out)
			}
		}
	}
}

// renderedObjects decodes the YAML stream of a rendered overlay.
func renderedObjects(t *testing.T, rendered []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(rendered), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("decoding the rendered overlay: %v", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// renderedObject converts the object of kind and name into out; false when
// there is none.
func renderedObject(t *testing.T, objs []*unstructured.Unstructured, kind, name string, out any) bool {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return true
		}
	}
	return false
}

// renderedDispatcher returns the dispatcher Deployment of a rendered overlay
// and its PodDisruptionBudget (nil when there is none).
func renderedDispatcher(t *testing.T, rendered []byte) (*appsv1.Deployment, *policyv1.PodDisruptionBudget) {
	t.Helper()
	objs := renderedObjects(t, rendered)
	d := &appsv1.Deployment{}
	if !renderedObject(t, objs, "Deployment", "prowjob-dispatcher", d) {
		t.Fatal("no Deployment prowjob-dispatcher in the rendered overlay")
	}
	if len(d.Spec.Template.Spec.Containers) == 0 || d.Spec.Template.Spec.Containers[0].Name != "dispatcher" {
		t.Fatal("the Deployment prowjob-dispatcher's first container is not dispatcher")
	}
	pdb := &policyv1.PodDisruptionBudget{}
	if !renderedObject(t, objs, "PodDisruptionBudget", "prowjob-dispatcher", pdb) {
		pdb = nil
	}
	return d, pdb
}

// mountConfigMaps writes, under root, the ConfigMaps of the rendered overlay
// that the dispatcher container mounts, each at its mount path.
func mountConfigMaps(t *testing.T, rendered []byte, d *appsv1.Deployment, root string) {
	t.Helper()
	objs := renderedObjects(t, rendered)
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		i := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 || d.Spec.Template.Spec.Volumes[i].ConfigMap == nil {
			continue
		}
		name := d.Spec.Template.Spec.Volumes[i].ConfigMap.Name
		cm := &corev1.ConfigMap{}
		if !renderedObject(t, objs, "ConfigMap", name, cm) {
			t.Fatalf("the dispatcher mounts ConfigMap %s, which the overlay does not ship", name)
		}
		dir := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for key, value := range cm.Data {
			if err := os.WriteFile(filepath.Join(dir, key), []byte(value), 0o644); err != nil {
				t.Fatal(fmt.Errorf("ConfigMap %s key %s: %w", name, key, err))
			}
		}
	}
}

func wantReplicas(t *testing.T, d *appsv1.Deployment, n int32) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != n {
		t.Errorf("replicas %v, want %d", d.Spec.Replicas, n)
	}
}

func hasVolume(d *appsv1.Deployment, name string) bool {
	return slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
}
