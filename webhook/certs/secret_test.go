package certs

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// startAPIServer starts a kube-apiserver and etcd from KUBEBUILDER_ASSETS
// (make e2e sets it) and returns a client; the test skips without them.
func startAPIServer(t *testing.T) kubernetes.Interface {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("needs a kube-apiserver: KUBEBUILDER_ASSETS (make e2e sets it)")
	}
	ctrllog.SetLogger(logr.Discard())
	env := &envtest.Environment{ControlPlaneStartTimeout: 60 * time.Second, ControlPlaneStopTimeout: 20 * time.Second}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// TestSharedServingSecret: the replicas of an HA install without
// cert-manager mount one Secret. Writers that race agree on one bundle, a
// rerun keeps it, the webhook config's caBundle is its CA, and a renewal
// keeps trusting the old CA beside the new one.
func TestSharedServingSecret(t *testing.T) {
	client := startAPIServer(t)
	ctx := context.Background()
	const ns, name, webhookName = "prowjob-dispatcher", "prowjob-dispatcher-webhook-tls", "prowjob-dispatcher"
	hosts := []string{"prowjob-dispatcher.prowjob-dispatcher.svc"}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	// Three writers at once, as three replicas (or operators) would.
	results := make([]*SecretResult, 3)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := EnsureSecret(ctx, client, ns, name, hosts, now)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = r
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	secret, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if secret.Type != corev1.SecretTypeTLS {
		t.Errorf("secret type %s, want %s", secret.Type, corev1.SecretTypeTLS)
	}
	written := 0
	for i, r := range results {
		if !r.Reused {
			written++
		}
		if string(r.Bundle.CA) != string(secret.Data[CAFile]) || string(r.Bundle.Cert) != string(secret.Data[CertFile]) {
			t.Errorf("writer %d got a bundle other than the Secret's", i)
		}
	}
	if written != 1 {
		t.Errorf("%d writers wrote the Secret, want exactly 1", written)
	}

	// A rerun changes nothing.
	again, err := EnsureSecret(ctx, client, ns, name, hosts, now.Add(time.Hour))
	if err != nil || !again.Reused || string(again.Bundle.CA) != string(secret.Data[CAFile]) {
		t.Fatalf("rerun: %+v, %v; want the Secret's bundle reused", again, err)
	}

	// The webhook config trusts the Secret's CA, and the Secret's
	// certificate verifies against the caBundle for the Service's name.
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, webhookConfig(webhookName), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := InjectCABundle(ctx, client, webhookName, again.Bundle.CA); err != nil {
		t.Fatal(err)
	}
	verifyAgainstWebhook(t, client, webhookName, secret.Data[CertFile], hosts[0], now)

	// Within RenewBefore of expiry the bundle is renewed; the old CA stays
	// trusted beside the new one, so replicas still serving the old
	// certificate are not refused while the kubelet updates their volume.
	later := now.Add(CertValidity - RenewBefore + time.Hour)
	renewed, err := EnsureSecret(ctx, client, ns, name, hosts, later)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Reused || string(renewed.PreviousCA) != string(secret.Data[CAFile]) {
		t.Fatalf("renewal: reused %v, previous CA kept %v", renewed.Reused, string(renewed.PreviousCA) == string(secret.Data[CAFile]))
	}
	if err := InjectCABundle(ctx, client, webhookName, renewed.Bundle.CA, renewed.PreviousCA); err != nil {
		t.Fatal(err)
	}
	verifyAgainstWebhook(t, client, webhookName, renewed.Bundle.Cert, hosts[0], later)
	verifyAgainstWebhook(t, client, webhookName, secret.Data[CertFile], hosts[0], later)
}

func webhookConfig(name string) *admissionregistrationv1.MutatingWebhookConfiguration {
	none, ignore, path := admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.Ignore, "/mutate-prowjobs"
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "prowjobs.prowjob-dispatcher.io",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &ignore,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
				Namespace: "prowjob-dispatcher", Name: "prowjob-dispatcher", Path: &path,
			}},
		}},
	}
}

// verifyAgainstWebhook checks that certPEM chains to the caBundle the API
// server has for the webhook, for host, at time at.
func verifyAgainstWebhook(t *testing.T, client kubernetes.Interface, name string, certPEM []byte, host string, at time.Time) {
	t.Helper()
	cfg, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cfg.Webhooks[0].ClientConfig.CABundle) {
		t.Fatal("the webhook config's caBundle holds no certificate")
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, CurrentTime: at}); err != nil {
		t.Errorf("the serving certificate does not verify against the webhook's caBundle: %v", err)
	}
}
