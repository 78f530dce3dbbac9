package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/admission"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/certs"
)

// webhookFlags are the flags of the admission webhook's TLS server.
type webhookFlags struct {
	port              int
	certDir, tlsHosts string
	selfSigned, http2 bool
	skipLabels        string
	bodyTimeout       time.Duration
}

func (f *webhookFlags) AddFlags(fs *flag.FlagSet) {
	fs.IntVar(&f.port, "webhook-port", 9443, "TLS port of the admission webhook (/mutate-prowjobs)")
	fs.StringVar(&f.certDir, "cert-dir", filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs"), "dir holding tls.crt and tls.key (reloaded when they change)")
	fs.BoolVar(&f.selfSigned, "self-signed", false, "write a self-signed CA (ca.crt) and serving certificate into --cert-dir, keeping a valid one already there (the webhook's caBundle is the base64 of ca.crt)")
	fs.StringVar(&f.tlsHosts, "tls-hosts", "prowjob-dispatcher.prowjob-dispatcher.svc,prowjob-dispatcher.prowjob-dispatcher.svc.cluster.local", "comma-separated DNS names and IPs of the self-signed certificate (localhost and 127.0.0.1 are always added)")
	fs.BoolVar(&f.http2, "enable-http2", false, "serve HTTP/2 on the webhook port")
	fs.StringVar(&f.skipLabels, "skip-labels", strings.Join(admission.DefaultSkipLabels, ","), "comma-separated labels whose ProwJobs admission leaves as created (rehearsals keep the cluster their PR's config gave them); empty: none")
	fs.DurationVar(&f.bodyTimeout, "webhook-body-timeout", admission.DefaultBodyTimeout, "how long reading one admission request, body included, may take")
}

func (f *webhookFlags) Validate() error {
	if f.port < 1 || f.port > 65535 {
		return fmt.Errorf("--webhook-port %d not in 1..65535", f.port)
	}
	return nil
}

// ensureCertificate writes, with --self-signed, a CA and a serving
// certificate into --cert-dir unless a valid one is there. The CA stays in
// the cert dir: it never goes to stdout or the log.
func (f *webhookFlags) ensureCertificate(log logr.Logger) error {
	if !f.selfSigned {
		return nil
	}
	hosts := certs.Hosts(strings.Split(f.tlsHosts, ","))
	_, reused, err := certs.Ensure(f.certDir, hosts, time.Now())
	if err != nil {
		return fmt.Errorf("--self-signed: %w", err)
	}
	log.Info("Self-signed webhook certificate: the webhook configuration's caBundle is the base64 of its CA file",
		"caFile", filepath.Join(f.certDir, "ca.crt"), "reused", reused, "hosts", hosts)
	return nil
}

// server builds the admission webhook over d, listening on bindAddress.
// It stops accepting when its context ends and lets in-flight admissions
// finish.
func (f *webhookFlags) server(bindAddress string, d *dispatch.Dispatcher, reg prometheus.Registerer, log logr.Logger) (component, error) {
	metrics, err := admission.NewMetrics(reg)
	if err != nil {
		return component{}, err
	}
	var skip []string
	for _, l := range strings.Split(f.skipLabels, ",") {
		if l = strings.TrimSpace(l); l != "" {
			skip = append(skip, l)
		}
	}
	h, err := admission.NewHandler(d, metrics, log.WithName("admission"), skip...)
	if err != nil {
		return component{}, err
	}
	srv, err := admission.NewServer(admission.ServerOptions{
		Host: bindAddress, Port: f.port, CertDir: f.certDir, EnableHTTP2: f.http2, Logger: log.WithName("webhook"),
		BodyTimeout: f.bodyTimeout,
	}, h)
	if err != nil {
		return component{}, err
	}
	return component{name: "webhook server", run: func(ctx context.Context) error {
		if err := srv.Start(ctx); err != nil {
			return fmt.Errorf("webhook server: %w", err)
		}
		return nil
	}}, nil
}
