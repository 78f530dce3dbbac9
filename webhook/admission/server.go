package admission

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

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
	// BodyTimeout bounds how long reading one request, body included, may
	// take, so a client trickling its body cannot hold a connection; default
	// DefaultBodyTimeout. (The API server sends a whole review at once.)
	BodyTimeout time.Duration
}

// DefaultBodyTimeout is ServerOptions.BodyTimeout's default.
const DefaultBodyTimeout = 10 * time.Second

// NewServer returns controller-runtime's webhook server serving the
// admission handler at MutatePath. Start it with Start(ctx); it stops
// accepting when ctx is done and lets in-flight requests finish.
func NewServer(opts ServerOptions, handler ctrladmission.Handler) (ctrlwebhook.Server, error) {
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
	hook, err := ctrladmission.StandaloneWebhook(&ctrladmission.Webhook{
		Handler: handler,
		// The decision log line carries the request's UID and job; skip the
		// per-request WithValues of controller-runtime's default constructor.
		LogConstructor: func(base logr.Logger, _ *ctrladmission.Request) logr.Logger { return base },
	}, ctrladmission.StandaloneOptions{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("admission webhook: %w", err)
	}
	timeout := opts.BodyTimeout
	if timeout <= 0 {
		timeout = DefaultBodyTimeout
	}
	srv.Register(MutatePath, withReadDeadline(hook, timeout))
	return srv, nil
}

// withReadDeadline sets the connection's read deadline before h reads the
// body: controller-runtime's server has a header timeout but no body timeout.
func withReadDeadline(h http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
		h.ServeHTTP(w, r)
	})
}
