package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/gitbackup"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/gitjobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/httpapi"
)

// shutdownTimeout bounds how long the HTTP servers wait for in-flight
// requests at shutdown (Kubernetes' default grace period is 30 s).
const shutdownTimeout = 25 * time.Second

// apiFlags are the flags of the plain-HTTP API and of the probes.
type apiFlags struct {
	port, probePort              int
	tokenFile                    string
	insecureAllowUnauthenticated bool
}

func (f *apiFlags) AddFlags(fs *flag.FlagSet) {
	fs.IntVar(&f.port, "api-port", 8080, "plain-HTTP port of the API")
	fs.IntVar(&f.probePort, "probe-port", 8081, "plain-HTTP port of the probes and the metrics: /healthz, /readyz and /metrics (0 or the API port: served on the API port)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file with the bearer token that dispatch, reschedule and override deletion require (re-read when it changes)")
	fs.BoolVar(&f.insecureAllowUnauthenticated, "insecure-allow-unauthenticated", false, "without --token-file, allow state-changing API requests from anyone (local use only)")
}

func (f *apiFlags) Validate() error {
	var errs []error
	if f.port < 1 || f.port > 65535 {
		errs = append(errs, fmt.Errorf("--api-port %d not in 1..65535", f.port))
	}
	if f.probePort < 0 || f.probePort > 65535 {
		errs = append(errs, fmt.Errorf("--probe-port %d not in 0..65535", f.probePort))
	}
	if f.tokenFile != "" && f.insecureAllowUnauthenticated {
		errs = append(errs, errors.New("--token-file and --insecure-allow-unauthenticated are exclusive"))
	}
	return errors.Join(errs...)
}

// openToken opens --token-file, nil without one.
func (f *apiFlags) openToken(reg prometheus.Registerer, log logr.Logger) (*httpapi.TokenFile, error) {
	if f.tokenFile == "" {
		if !f.insecureAllowUnauthenticated {
			log.Info("No --token-file: dispatch, reschedule and override deletion over the API are refused")
		}
		return nil, nil
	}
	token, err := httpapi.OpenTokenFile(f.tokenFile, httpapi.TokenFileOptions{Logger: log.WithName("auth"), Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	return token, nil
}

// api is the HTTP API over d, guarded by token.
func (f *apiFlags) api(d *dispatch.Dispatcher, token *httpapi.TokenFile, st *openState, log logr.Logger) *httpapi.API {
	a := &httpapi.API{Backend: d, Auth: httpapi.Authorizer{Token: token, AllowUnauthenticated: f.insecureAllowUnauthenticated}, Log: log.WithName("api")}
	st.exposeLeader(a)
	return a
}

// probes are /healthz, /readyz and /metrics: the dispatcher's readiness,
// and the status of what runs beside it (each nil when off).
func probes(d *dispatch.Dispatcher, reg prometheus.Gatherer, token *httpapi.TokenFile, backup *gitbackup.Backup, jobs *gitjobs.Source, st *openState) httpapi.HealthOptions {
	h := httpapi.HealthOptions{Status: d, Gatherer: reg}
	if backup != nil {
		h.Backup = func() any { return backup.Status() }
	}
	if token != nil {
		h.Auth = func() any { return token.Status() }
	}
	if jobs != nil {
		h.JobConfig = func() any { return jobs.Status() }
	}
	st.exposeReplication(&h)
	return h
}

// servers listens on the API port and, unless it is 0 or the API's, the
// probe port, so that a taken port fails the start; the servers serve
// once run.
func (f *apiFlags) servers(bindAddress string, a *httpapi.API, health httpapi.HealthOptions, reg prometheus.Registerer, log logr.Logger) ([]component, error) {
	apiMux := http.NewServeMux()
	a.Register(apiMux)
	metrics, err := httpapi.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	servers := []*namedServer{{name: "api", port: f.port, srv: newHTTPServer(metrics.Instrument(apiMux))}}
	if f.probePort == 0 || f.probePort == f.port {
		httpapi.RegisterHealth(apiMux, health)
	} else {
		healthMux := http.NewServeMux()
		httpapi.RegisterHealth(healthMux, health)
		servers = append(servers, &namedServer{name: "health", port: f.probePort, srv: newHTTPServer(healthMux)})
	}
	var out []component
	for _, s := range servers {
		if s.ln, err = net.Listen("tcp", net.JoinHostPort(bindAddress, strconv.Itoa(s.port))); err != nil {
			closeAll(servers)
			return nil, fmt.Errorf("%s server: %w", s.name, err)
		}
		out = append(out, component{name: s.name + " server", run: func(ctx context.Context) error { return s.serve(ctx, log) }})
	}
	return out, nil
}

// namedServer is one plain-HTTP server and its listener.
type namedServer struct {
	name string
	port int
	srv  *http.Server
	ln   net.Listener
}

// serve serves until ctx is done, then shuts down, letting in-flight
// requests finish within shutdownTimeout.
func (s *namedServer) serve(ctx context.Context, log logr.Logger) error {
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(s.ln) }()
	select {
	case err := <-served: // Serve returns only on failure before Shutdown
		return fmt.Errorf("%s server: %w", s.name, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(shutdownCtx); err != nil {
		log.Error(err, "Shutting down a server", "server", s.name)
	}
	return nil
}

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // a full dispatch answers when it is done
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

func closeAll(servers []*namedServer) {
	for _, s := range servers {
		if s.ln != nil {
			_ = s.ln.Close()
		}
	}
}
