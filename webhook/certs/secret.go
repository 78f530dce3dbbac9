package certs

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// SecretResult is what EnsureSecret found or wrote.
type SecretResult struct {
	Bundle *Bundle
	// Reused: the Secret already held a valid bundle (or another caller
	// wrote one first), and it is unchanged.
	Reused bool
	// PreviousCA is the CA of the bundle a renewal replaced, nil otherwise:
	// trust it beside the new one until every replica serves the new
	// certificate.
	PreviousCA []byte
}

// EnsureSecret makes sure the Secret namespace/name (type kubernetes.io/tls,
// keys tls.crt, tls.key and ca.crt, as cert-manager writes them) holds a CA
// and a serving certificate for hosts valid for at least RenewBefore after
// now. A valid bundle is kept, so every replica mounting the Secret serves a
// certificate of one CA, and running it again changes nothing. Callers that
// race agree: the first create wins and the others adopt its bundle.
func EnsureSecret(ctx context.Context, client kubernetes.Interface, namespace, name string, hosts []string, now time.Time) (*SecretResult, error) {
	secrets := client.CoreV1().Secrets(namespace)
	for attempt := 0; ; attempt++ {
		old, err := secrets.Get(ctx, name, metav1.GetOptions{})
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("certs: secret %s/%s: %w", namespace, name, err)
		}
		var previousCA []byte
		if exists {
			b := &Bundle{CA: old.Data[CAFile], Cert: old.Data[CertFile], Key: old.Data[KeyFile]}
			if b.Verify(hosts, now.Add(RenewBefore)) == nil {
				return &SecretResult{Bundle: b, Reused: true}, nil
			}
			previousCA = b.CA
		}
		b, err := Generate(hosts, now)
		if err != nil {
			return nil, err
		}
		data := map[string][]byte{CAFile: b.CA, CertFile: b.Cert, KeyFile: b.Key}
		if !exists {
			_, err = secrets.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "prowjob-dispatcher-certs"}},
				Type:       corev1.SecretTypeTLS,
				Data:       data,
			}, metav1.CreateOptions{})
		} else {
			renewed := old.DeepCopy()
			renewed.Data, renewed.Type = data, corev1.SecretTypeTLS
			_, err = secrets.Update(ctx, renewed, metav1.UpdateOptions{})
		}
		switch {
		case err == nil:
			return &SecretResult{Bundle: b, PreviousCA: previousCA}, nil
		case (apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)) && attempt < 5:
			continue // another caller wrote first: adopt what it wrote
		default:
			return nil, fmt.Errorf("certs: writing secret %s/%s: %w", namespace, name, err)
		}
	}
}

// InjectCABundle sets the caBundle of every webhook of the
// MutatingWebhookConfiguration name to the PEM certificates cas (the new CA
// first, then any CA still to be trusted during a renewal).
func InjectCABundle(ctx context.Context, client kubernetes.Interface, name string, cas ...[]byte) error {
	bundle := bytes.Join(cas, nil)
	configs := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cfg, err := configs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		changed := false
		for i := range cfg.Webhooks {
			if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, bundle) {
				cfg.Webhooks[i].ClientConfig.CABundle, changed = bundle, true
			}
		}
		if !changed {
			return nil
		}
		_, err = configs.Update(ctx, cfg, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("certs: caBundle of mutatingwebhookconfiguration %s: %w", name, err)
	}
	return nil
}
