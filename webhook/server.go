package webhook

import (
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/go-logr/logr"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/certs"
)

// ServerOptions configure the admission webhook's TLS server.
type ServerOptions struct {
	// Host is the address to listen on; empty means all.
	Host string
	// Port is the TLS port (controller-runtime's default 9443 when 0).
	Port int
	// CertDir holds tls.crt and tls.key; they are watched and reloaded when rotated.
	CertDir string
	// EnableHTTP2 serves HTTP/2 too; off by default (HTTP/2 rapid-reset and
	// stream-cancellation attacks, CVE-2023-44487 and CVE-2023-39325).
	EnableHTTP2 bool
	// Logger is controller-runtime's admission logger (malformed reviews and the like); nil-sink loggers discard.
	Logger logr.Logger
}

// NewServer returns controller-runtime's webhook server serving the
// admission handler at MutatePath. Start it with Start(ctx); it stops
// accepting when ctx is done and lets in-flight requests finish.
func NewServer(opts ServerOptions, handler admission.Handler) (ctrlwebhook.Server, error) {
	srv := ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host:     opts.Host,
		Port:     opts.Port,
		CertDir:  opts.CertDir,
		CertName: certs.CertFile,
		KeyName:  certs.KeyFile,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			if !opts.EnableHTTP2 {
				c.NextProtos = []string{"http/1.1"}
			}
		}},
	})
	logger := opts.Logger
	if logger.GetSink() == nil { // logr.Discard(): controller-runtime would fall back to its global logger
		logger = logr.FromSlogHandler(slog.DiscardHandler)
	}
	hook, err := admission.StandaloneWebhook(&admission.Webhook{
		Handler: handler,
		// The decision log line carries the request's UID and job; skip the
		// per-request WithValues of controller-runtime's default constructor.
		LogConstructor: func(base logr.Logger, _ *admission.Request) logr.Logger { return base },
	}, admission.StandaloneOptions{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("admission webhook: %w", err)
	}
	srv.Register(MutatePath, hook)
	return srv, nil
}
