package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/admission"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/certs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/httpapi"
)

// shutdownTimeout bounds how long the HTTP servers wait for in-flight
// requests at shutdown (Kubernetes' default grace period is 30 s).
const shutdownTimeout = 25 * time.Second

// serveFlags are the serve subcommand's flags.
type serveFlags struct {
	inputs                          inputFlags
	stateDir, schedule              string
	webhookBodyTimeout              time.Duration
	skipLabels                      string
	maxProvisional                  int
	provisionalTTL, maxDrainTTL     time.Duration
	previewTimeout                  time.Duration
	maxOverrideTTL                  time.Duration
	housekeeping                    time.Duration
	demandMaxDrop                   float64
	bindAddress                     string
	webhookPort, apiPort, probePort int
	certDir, tlsHosts               string
	selfSigned, enableHTTP2         bool
	tokenFile                       string
	insecureAllowUnauthenticated    bool
	log                             logFlags
	backup                          backupFlags
	health                          healthFlags
	kube                            kubeFlags
	gitJobs                         gitJobsFlags
}

// register defines serve's flags on fs, group by group, and returns the
// groups for -h. A component's flags (inputs, health, backup, kubernetes)
// are filed under its group as it defines them, so flags added to a
// component later need no change here.
func (f *serveFlags) register(fs *flag.FlagSet) *flagGroups {
	g := newFlagGroups(fs)
	g.add("inputs", f.inputs.register)
	g.add("inputs", f.gitJobs.register)
	g.move("demand", demandFlags...)
	g.move("dispatch", dispatchFlags...)
	g.add("dispatch", func(fs *flag.FlagSet) {
		fs.StringVar(&f.schedule, "schedule", dispatch.DefaultSchedule, "cron spec (UTC) of full dispatches")
		fs.DurationVar(&f.previewTimeout, "preview-timeout", dispatch.DefaultPreviewTimeout, "longest a plan (what-if) or a drain preview may compute, waiting for the one in progress included; past it the API answers 503")
	})
	g.add("demand", func(fs *flag.FlagSet) {
		fs.Float64Var(&f.demandMaxDrop, "demand-max-drop", dispatch.DefaultDemandMaxDrop, "refuse a demand answer whose total fell by more than this fraction against the last good one (1: accept any)")
	})
	g.add("server", func(fs *flag.FlagSet) {
		fs.StringVar(&f.bindAddress, "bind-address", "", "address the webhook, API and health ports listen on (empty: all)")
		fs.IntVar(&f.webhookPort, "webhook-port", 9443, "TLS port of the admission webhook (/mutate-prowjobs)")
		fs.IntVar(&f.apiPort, "api-port", 8080, "plain-HTTP port of the API")
		fs.IntVar(&f.probePort, "probe-port", 8081, "plain-HTTP port of the probes and the metrics: /healthz, /readyz and /metrics (0 or the API port: served on the API port)")
		fs.StringVar(&f.certDir, "cert-dir", filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs"), "dir holding tls.crt and tls.key (reloaded when they change)")
		fs.BoolVar(&f.selfSigned, "self-signed", false, "write a self-signed CA (ca.crt) and serving certificate into --cert-dir, keeping a valid one already there (the webhook's caBundle is the base64 of ca.crt)")
		fs.StringVar(&f.tlsHosts, "tls-hosts", "prowjob-dispatcher.prowjob-dispatcher.svc,prowjob-dispatcher.prowjob-dispatcher.svc.cluster.local", "comma-separated DNS names and IPs of the self-signed certificate (localhost and 127.0.0.1 are always added)")
		fs.BoolVar(&f.enableHTTP2, "enable-http2", false, "serve HTTP/2 on the webhook port")
		fs.StringVar(&f.skipLabels, "skip-labels", strings.Join(admission.DefaultSkipLabels, ","), "comma-separated labels whose ProwJobs admission leaves as created (rehearsals keep the cluster their PR's config gave them); empty: none")
		fs.DurationVar(&f.webhookBodyTimeout, "webhook-body-timeout", admission.DefaultBodyTimeout, "how long reading one admission request, body included, may take")
		fs.StringVar(&f.tokenFile, "token-file", "", "file with the bearer token that dispatch, reschedule and override deletion require (re-read when it changes)")
		fs.BoolVar(&f.insecureAllowUnauthenticated, "insecure-allow-unauthenticated", false, "without --token-file, allow state-changing API requests from anyone (local use only)")
		f.log.register(fs)
	})
	g.add("state", func(fs *flag.FlagSet) {
		fs.StringVar(&f.stateDir, "state-dir", "", "dir of the persisted table, overrides and demand counts (empty: memory only)")
		fs.IntVar(&f.maxProvisional, "max-provisional-jobs", dispatch.DefaultMaxProvisional, "most jobs first seen at admission, not in the job config, that get a row; beyond, such jobs are placed but not recorded")
		fs.DurationVar(&f.provisionalTTL, "provisional-ttl", dispatch.DefaultProvisionalTTL, "drop the row of a job not in the job config once it was not admitted for this long")
		fs.DurationVar(&f.housekeeping, "housekeeping-interval", dispatch.DefaultHousekeeping, "how often expired overrides, drains and caps are dropped and admission counts saved")
		fs.DurationVar(&f.maxDrainTTL, "max-drain-ttl", dispatch.DefaultMaxDrainTTL, "longest TTL a cluster drain or capacity cap may have (the shortest is "+dispatch.MinTTL.String()+")")
		fs.DurationVar(&f.maxOverrideTTL, "max-override-ttl", dispatch.DefaultMaxOverrideTTL, "longest TTL a job override (reschedule) may have, and the TTL of one asked without (the shortest is "+dispatch.MinTTL.String()+")")
	})
	g.add("health", f.health.register)
	g.add("backup", f.backup.register)
	g.add("kubernetes", f.kube.register)
	g.alias("health-port", "probe-port")
	return g
}

func (f *serveFlags) validate() error {
	errs := []error{f.inputs.validate(), f.backup.validate(), f.health.validate(), f.kube.validate(f.stateDir), f.gitJobs.validate()}
	for _, p := range []struct {
		name string
		port int
	}{{"--webhook-port", f.webhookPort}, {"--api-port", f.apiPort}} {
		if p.port < 1 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("%s %d not in 1..65535", p.name, p.port))
		}
	}
	if f.probePort < 0 || f.probePort > 65535 {
		errs = append(errs, fmt.Errorf("--probe-port %d not in 0..65535", f.probePort))
	}
	if f.health.drainTTL > f.maxDrainTTL {
		errs = append(errs, fmt.Errorf("--health-drain-ttl %s is over --max-drain-ttl %s", f.health.drainTTL, f.maxDrainTTL))
	}
	if f.tokenFile != "" && f.insecureAllowUnauthenticated {
		errs = append(errs, errors.New("--token-file and --insecure-allow-unauthenticated are exclusive"))
	}
	if err := f.log.validate(); err != nil {
		errs = append(errs, err)
	}
	if f.maxProvisional < 1 {
		errs = append(errs, fmt.Errorf("--max-provisional-jobs %d: want at least 1", f.maxProvisional))
	}
	if f.provisionalTTL <= 0 {
		errs = append(errs, fmt.Errorf("--provisional-ttl %s: want a positive duration", f.provisionalTTL))
	}
	if f.housekeeping <= 0 {
		errs = append(errs, fmt.Errorf("--housekeeping-interval %s: want a positive duration", f.housekeeping))
	}
	if f.previewTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--preview-timeout %s: want a positive duration", f.previewTimeout))
	}
	for _, b := range []struct {
		flag string
		ttl  time.Duration
	}{{"--max-drain-ttl", f.maxDrainTTL}, {"--max-override-ttl", f.maxOverrideTTL}, {"--health-drain-ttl", f.health.drainTTL}} {
		if b.ttl < dispatch.MinTTL && (b.ttl != 0 || b.flag != "--health-drain-ttl") { // 0: the health drain's default
			errs = append(errs, fmt.Errorf("%s %s: want at least %s", b.flag, b.ttl, dispatch.MinTTL))
		}
	}
	if !(f.demandMaxDrop > 0 && f.demandMaxDrop <= 1) {
		errs = append(errs, fmt.Errorf("--demand-max-drop %v: want more than 0, at most 1", f.demandMaxDrop))
	}
	return errors.Join(errs...)
}

// runServe runs the dispatch loop, the admission webhook, the API and the
// health endpoints until ctx is cancelled, then shuts down gracefully: the
// servers stop accepting and finish in-flight requests, then the dispatch
// loop stops and saves the state.
func runServe(ctx context.Context, args []string) error {
	return serve(ctx, args, os.Stdout, os.Stderr)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	groups := f.register(fs)
	fs.Usage = func() {
		groups.usage(fs.Output(), "Usage: prowjob-dispatcher serve [flags]\n\nRuns the admission webhook, the HTTP API and the dispatch loop.")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := f.validate(); err != nil {
		return err
	}
	log, _ := f.log.setUp(stderr)
	for _, d := range groups.Deprecations() {
		log.Info("Deprecated flag: " + d)
	}
	ctrllog.SetLogger(log) // controller-runtime names its loggers "controller-runtime/..." itself

	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo()} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering runtime metrics: %w", err)
		}
	}
	source, err := f.inputs.demandSource(log.WithName("demand"))
	if err != nil {
		return err
	}
	if f.selfSigned {
		_, reused, err := certs.Ensure(f.certDir, certs.Hosts(strings.Split(f.tlsHosts, ",")), time.Now())
		if err != nil {
			return fmt.Errorf("--self-signed: %w", err)
		}
		// The CA is in the cert dir; it never goes to stdout or the log.
		log.Info("Self-signed webhook certificate: the webhook configuration's caBundle is the base64 of its CA file",
			"caFile", filepath.Join(f.certDir, "ca.crt"), "reused", reused, "hosts", certs.Hosts(strings.Split(f.tlsHosts, ",")))
	}
	var token *httpapi.TokenFile
	if f.tokenFile != "" {
		if token, err = httpapi.OpenTokenFile(f.tokenFile, httpapi.TokenFileOptions{Logger: log.WithName("auth"), Registerer: reg}); err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
	} else if !f.insecureAllowUnauthenticated {
		log.Info("No --token-file: dispatch, reschedule and override deletion over the API are refused")
	}

	var st state.Backend = state.Memory{}
	if f.stateDir != "" {
		lock, err := store.LockDir(f.stateDir)
		if err != nil {
			return err
		}
		defer func() { _ = lock.Release() }()
		if st, err = store.NewBackend(f.stateDir); err != nil {
			return fmt.Errorf("dispatcher: %w", err)
		}
	}
	opts := f.inputs.options(source)
	opts.Schedule = f.schedule
	opts.MaxProvisional, opts.ProvisionalTTL, opts.DemandMaxDrop = f.maxProvisional, f.provisionalTTL, f.demandMaxDrop
	opts.MaxDrainTTL, opts.MaxOverrideTTL, opts.Housekeeping = f.maxDrainTTL, f.maxOverrideTTL, f.housekeeping
	opts.PreviewTimeout = f.previewTimeout
	opts.Registerer, opts.Logger = reg, log.WithName("dispatch")
	var stopEvents func()
	if opts.Health, stopEvents, err = f.health.options(ctx, f.inputs.prometheusURL, &f.inputs.prometheus, log.WithName("health")); err != nil {
		return err
	}
	defer stopEvents()
	var d *dispatch.Dispatcher // the backup reads the table only once Run starts, after New
	jobSource, cleanJobSource, err := f.gitJobs.start(ctx, &opts, func() {
		if d != nil { // nil during the first fetch, before New
			d.Trigger()
		}
	}, reg, log.WithName("jobconfig"))
	if err != nil {
		return err
	}
	defer cleanJobSource()
	backup, cleanBackup, err := f.backup.build(func() map[string]map[string]*config.BuildFarmCluster { return d.Snapshot().BuildFarm() }, reg, log.WithName("backup"), stdout, stderr)
	if err != nil {
		return err
	}
	defer cleanBackup()
	if backup != nil {
		opts.OnDispatched = func(_ *table.Table, r *engine.Report) { backup.Notify(r) }
	}
	var shared *kubestate.Backend
	var replicaAuth *httpapi.ReplicaAuth
	if f.kube.enabled() {
		if replicaAuth, err = f.kube.replicaAuth(); err != nil {
			return err
		}
		if err := replicaAuth.Register(reg); err != nil {
			return err
		}
		if shared, err = f.kube.startShared(ctx, f.apiPort, &opts, reg, log.WithName("kubestate")); err != nil {
			return err
		}
		st = shared
	}
	if d, err = dispatch.New(ctx, opts, st); err != nil {
		return err
	}
	if shared != nil {
		go func() { _ = d.LoadInputsRetrying(ctx) }() // the shared table serves meanwhile
	}
	metrics, err := admission.NewMetrics(reg)
	if err != nil {
		return err
	}
	var skip []string
	for _, l := range strings.Split(f.skipLabels, ",") {
		if l = strings.TrimSpace(l); l != "" {
			skip = append(skip, l)
		}
	}
	adm, err := admission.NewHandler(d, metrics, log.WithName("admission"), skip...)
	if err != nil {
		return err
	}
	hookServer, err := admission.NewServer(admission.ServerOptions{
		Host: f.bindAddress, Port: f.webhookPort, CertDir: f.certDir, EnableHTTP2: f.enableHTTP2, Logger: log.WithName("webhook"),
		BodyTimeout: f.webhookBodyTimeout,
	}, adm)
	if err != nil {
		return err
	}

	apiMux := http.NewServeMux()
	httpAPI := &httpapi.API{Backend: d, Auth: httpapi.Authorizer{Token: token, AllowUnauthenticated: f.insecureAllowUnauthenticated}, Log: log.WithName("api")}
	health := httpapi.HealthOptions{Status: d, Gatherer: reg}
	if backup != nil {
		health.Backup = func() any { return backup.Status() }
	}
	if token != nil {
		health.Auth = func() any { return token.Status() }
	}
	if jobSource != nil {
		health.JobConfig = func() any { return jobSource.Status() }
		go jobSource.Run(ctx)
	}
	if shared != nil {
		_, replica, _ := f.kube.names(f.apiPort)
		httpAPI.Leader, httpAPI.ReplicaAuth = leaderOf{b: shared, replica: replica}, replicaAuth
		health.Replication = func() any { return shared.Status() }
	}
	httpAPI.Register(apiMux)
	apiMetrics, err := httpapi.NewMetrics(reg)
	if err != nil {
		return err
	}
	servers := []*namedServer{{name: "api", port: f.apiPort, srv: newHTTPServer(apiMetrics.Instrument(apiMux))}}
	if f.probePort == 0 || f.probePort == f.apiPort {
		httpapi.RegisterHealth(apiMux, health)
	} else {
		healthMux := http.NewServeMux()
		httpapi.RegisterHealth(healthMux, health)
		servers = append(servers, &namedServer{name: "health", port: f.probePort, srv: newHTTPServer(healthMux)})
	}
	for _, s := range servers { // listen now, so a taken port fails the start
		if s.ln, err = net.Listen("tcp", net.JoinHostPort(f.bindAddress, strconv.Itoa(s.port))); err != nil {
			closeAll(servers)
			return fmt.Errorf("%s server: %w", s.name, err)
		}
	}

	// The dispatch loop outlives the servers: it stops only after they have
	// drained, then saves the state.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	runDone := make(chan error, 1)
	if shared == nil {
		go func() { runDone <- d.Run(runCtx) }()
	} else {
		// Every replica follows the shared state; the leader alone runs the dispatch loop.
		sharedDone := make(chan error, 1)
		go func() { sharedDone <- shared.Run(runCtx) }()
		go func() {
			shared.Elect(runCtx, func(leadCtx context.Context) {
				if err := d.Run(leadCtx); err != nil {
					log.Error(err, "The dispatch loop ended with an error")
				}
			})
			runDone <- <-sharedDone
		}()
	}

	srvCtx, stopServers := context.WithCancel(ctx)
	defer stopServers()
	if backup != nil { // never waited for: a run in progress must not hold up the shutdown
		go func() { _ = backup.Run(srvCtx) }()
	}
	errs := make(chan error, len(servers)+1)
	hookDone := make(chan struct{})
	go func() {
		defer close(hookDone)
		if err := hookServer.Start(srvCtx); err != nil {
			errs <- fmt.Errorf("webhook server: %w", err)
		}
	}()
	for _, s := range servers {
		go func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("%s server: %w", s.name, err)
			}
		}()
	}
	log.Info("Serving", "webhookPort", f.webhookPort, "apiPort", f.apiPort, "healthPort", f.probePort, "stateDir", f.stateDir, "stateBackend", f.kube.backend)

	var failed error
	select {
	case <-ctx.Done():
		log.Info("Shutting down: draining in-flight requests")
	case failed = <-errs:
		log.Error(failed, "A server failed: shutting down")
	}
	stopServers() // the webhook server drains in-flight admissions, up to a minute
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, s := range servers {
		if err := s.srv.Shutdown(shutdownCtx); err != nil {
			log.Error(err, "Shutting down a server", "server", s.name)
		}
	}
	<-hookDone
	stopRun()
	if err := <-runDone; err != nil {
		log.Error(err, "Saving the state at shutdown")
		failed = errors.Join(failed, fmt.Errorf("saving the state at shutdown: %w", err))
	}
	log.Info("Stopped")
	return failed
}

// namedServer is one plain-HTTP server and its listener.
type namedServer struct {
	name string
	port int
	srv  *http.Server
	ln   net.Listener
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
