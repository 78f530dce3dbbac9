package framework

import (
	"context"
	"fmt"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// ScenarioLabel marks the namespaces of one scenario; each scenario's webhook
// selects only its own namespaces, so scenarios with their own dispatchers do
// not see each other's ProwJobs.
const ScenarioLabel = "e2e.prowjob-dispatcher.io/scenario"

// RegisterWebhook creates a MutatingWebhookConfiguration like the one in
// manifests/base/webhook.yaml (prowjobs CREATE, failurePolicy Ignore, 3 s),
// but url-based, pointing at url with caBundle, and limited to namespaces
// labelled ScenarioLabel=scenario.
func (s *APIServer) RegisterWebhook(ctx context.Context, scenario, url string, caBundle []byte) (*admissionregv1.MutatingWebhookConfiguration, error) {
	ignore := admissionregv1.Ignore
	sideEffects := admissionregv1.SideEffectClassNoneOnDryRun
	scope := admissionregv1.NamespacedScope
	cfg := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "prowjob-dispatcher-" + scenario},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:                    "prowjobs.prowjob-dispatcher.io",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &sideEffects,
			FailurePolicy:           &ignore,
			TimeoutSeconds:          ptr.To[int32](3),
			ClientConfig: admissionregv1.WebhookClientConfig{
				URL:      &url,
				CABundle: caBundle,
			},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{ScenarioLabel: scenario}},
			Rules: []admissionregv1.RuleWithOperations{{
				Operations: []admissionregv1.OperationType{admissionregv1.Create},
				Rule: admissionregv1.Rule{
					APIGroups:   []string{"prow.k8s.io"},
					APIVersions: []string{"v1"},
					Resources:   []string{"prowjobs"},
					Scope:       &scope,
				},
			}},
		}},
	}
	if err := s.Client.Create(ctx, cfg); err != nil {
		return nil, fmt.Errorf("registering webhook %s -> %s: %w", cfg.Name, url, err)
	}
	return cfg, nil
}
