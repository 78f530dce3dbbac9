package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/certs"
)

// runCerts writes the webhook's serving certificate into a Secret once, for
// installs without cert-manager: every replica mounts that Secret, so all
// serve certificates of one CA, which it puts in the webhook config.
func runCerts(ctx context.Context, args []string) error {
	return writeCerts(ctx, args, os.Stdout)
}

func writeCerts(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server (empty: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	namespace := fs.String("namespace", "prowjob-dispatcher", "namespace of the Secret")
	secret := fs.String("secret", "prowjob-dispatcher-webhook-tls", "Secret (type kubernetes.io/tls: tls.crt, tls.key, ca.crt) that the dispatcher mounts as --cert-dir")
	hosts := fs.String("tls-hosts", "prowjob-dispatcher.prowjob-dispatcher.svc,prowjob-dispatcher.prowjob-dispatcher.svc.cluster.local", "comma-separated DNS names and IPs of the certificate")
	webhookName := fs.String("webhook", "prowjob-dispatcher", "MutatingWebhookConfiguration whose caBundle gets the CA (empty: leave it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("--kubeconfig %q: %w", *kubeconfig, err)
	}
	cfg.UserAgent = "prowjob-dispatcher-certs"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("--kubeconfig %q: %w", *kubeconfig, err)
	}
	h := certs.Hosts(strings.Split(*hosts, ","))
	r, err := certs.EnsureSecret(ctx, client, *namespace, *secret, h, time.Now())
	if err != nil {
		return err
	}
	state := "written"
	if r.Reused {
		state = "kept (valid)"
	} else if r.PreviousCA != nil {
		state = "renewed (the old CA stays in caBundle beside the new one)"
	}
	fmt.Fprintf(stdout, "secret %s/%s: %s\n", *namespace, *secret, state)
	if *webhookName != "" {
		if err := certs.InjectCABundle(ctx, client, *webhookName, r.Bundle.CA, r.PreviousCA); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "mutatingwebhookconfiguration %s: caBundle set\n", *webhookName)
	}
	fmt.Fprintf(stdout, "caBundle: %s\n", r.Bundle.CABundle())
	return nil
}
