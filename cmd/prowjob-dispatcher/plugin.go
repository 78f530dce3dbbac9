package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	"sigs.k8s.io/prow/pkg/config/secret"
	prowflagutil "sigs.k8s.io/prow/pkg/flagutil"
	"sigs.k8s.io/prow/pkg/pluginhelp/externalplugins"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/plugin"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// pluginOptions are the plugin subcommand's flags.
type pluginOptions struct {
	port                int
	hmacSecretFile      string
	configPath          string
	jobConfigPath       string
	dispatcherURL       string
	dispatcherTokenFile string
	dispatcherTimeout   time.Duration
	dryRun              bool
	log                 logFlags
	github              prowflagutil.GitHubOptions
}

// addFlags defines the plugin's flags on fs, group by group, and returns
// the groups for -h.
func (o *pluginOptions) addFlags(fs *flag.FlagSet) *flagGroups {
	g := newFlagGroups(fs)
	g.add("inputs", func(fs *flag.FlagSet) {
		fs.StringVar(&o.configPath, "plugin-config", "", "plugin config YAML (allowed_orgs, allowed_teams, allowed_users, default_ttl, dispatcher_url, dispatcher_token_file)")
		fs.StringVar(&o.jobConfigPath, "job-config", "", "Prow job config file or dir, read for /dispatch (required)")
	})
	g.add("server", func(fs *flag.FlagSet) {
		fs.IntVar(&o.port, "port", 8888, "port of GitHub webhooks (from Prow's hook), /help, /healthz, /readyz and /metrics")
		fs.StringVar(&o.hmacSecretFile, "hmac-secret-file", "/etc/webhook/hmac", "file with the GitHub webhook HMAC secret (one token, or Prow's org/repo -> tokens map)")
		o.log.AddFlags(fs)
	})
	g.add("dispatcher", func(fs *flag.FlagSet) {
		fs.StringVar(&o.dispatcherURL, "dispatcher-url", "", "dispatcher API root; overrides the plugin config's dispatcher_url")
		fs.StringVar(&o.dispatcherTokenFile, "dispatcher-token-file", "", "file with the dispatcher API's bearer token; overrides the plugin config's dispatcher_token_file")
		fs.DurationVar(&o.dispatcherTimeout, "dispatcher-timeout", 10*time.Second, "timeout of one call to the dispatcher API")
		fs.BoolVar(&o.dryRun, "dry-run", false, "answer commands but change nothing: no GitHub comments are posted and no dispatch or reschedule is asked of the dispatcher")
	})
	g.add("GitHub", o.github.AddFlags)
	g.alias("config", "plugin-config")
	g.alias("job-config-path", "job-config")
	return g
}

// complete merges the plugin config into the flags and checks them.
func (o *pluginOptions) complete(cfg *plugin.Config) error {
	if o.dispatcherURL == "" {
		o.dispatcherURL = cfg.DispatcherURL
	}
	if o.dispatcherTokenFile == "" {
		o.dispatcherTokenFile = cfg.DispatcherTokenFile
	}
	var errs []error
	if o.dispatcherURL == "" {
		errs = append(errs, errors.New("--dispatcher-url (or the config's dispatcher_url) is required"))
	}
	if o.jobConfigPath == "" {
		errs = append(errs, errors.New("--job-config is required"))
	}
	if o.hmacSecretFile == "" {
		errs = append(errs, errors.New("--hmac-secret-file is required"))
	}
	if o.port < 1 || o.port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d: not in 1..65535", o.port))
	}
	if o.dispatcherTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--dispatcher-timeout %s: must be positive", o.dispatcherTimeout))
	}
	if err := o.github.Validate(o.dryRun); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// runPlugin runs the Prow external plugin for /dispatch and /reschedule until
// ctx is done, then stops taking deliveries and waits for those in progress.
func runPlugin(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("plugin", flag.ContinueOnError)
	var o pluginOptions
	groups := o.addFlags(fs)
	fs.Usage = func() {
		groups.usage(fs.Output(), "Usage: prowjob-dispatcher plugin [flags]\n\nRuns the Prow external plugin: /dispatch and /reschedule.")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := o.log.Validate(); err != nil {
		return err
	}
	_, handler := o.log.setUp(os.Stderr)
	logger := logrus.New()
	routeLogrus(logger, handler)
	log := logger.WithField("plugin", plugin.Name)
	for _, d := range groups.Deprecations() {
		log.Warn("Deprecated flag: " + d)
	}

	cfg, err := loadPluginConfig(o.configPath, log)
	if err != nil {
		return err
	}
	if err := o.complete(cfg); err != nil {
		return err
	}
	var tokenFunc func() (string, error)
	if o.dispatcherTokenFile != "" {
		if _, err = readDispatcherToken(o.dispatcherTokenFile); err != nil {
			return err // checked at start; then read per request, so that a rotated token is used
		}
		tokenFunc = func() (string, error) { return readDispatcherToken(o.dispatcherTokenFile) }
	}
	if err := secret.Add(o.hmacSecretFile); err != nil {
		return fmt.Errorf("hmac secret %s: %w", o.hmacSecretFile, err)
	}
	ghc, err := o.github.GitHubClient(o.dryRun)
	if err != nil {
		return fmt.Errorf("github client: %w", err)
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering runtime metrics: %w", err)
		}
	}
	p, err := plugin.New(plugin.Options{
		Registerer: reg,
		GitHub:     ghc,
		Dispatcher: &api.Client{BaseURL: o.dispatcherURL, TokenFunc: tokenFunc, HTTP: &http.Client{Timeout: o.dispatcherTimeout}},
		Presubmits: plugin.JobConfigPresubmits(o.jobConfigPath),
		Config:     cfg,
		DryRun:     o.dryRun,
	})
	if err != nil {
		return err
	}
	// Comments already being handled finish after ctx is done (each is bounded by the plugin's timeout).
	server := plugin.NewServer(context.WithoutCancel(ctx), p, secret.GetTokenGenerator(o.hmacSecretFile), log)
	mux := http.NewServeMux()
	mux.Handle("/", server)
	externalplugins.ServeExternalPluginHelp(mux, log, p.HelpProvider)
	// Not ready once shutting down, so the Service stops sending deliveries.
	plugin.RegisterHealth(mux, reg, func() error { return context.Cause(ctx) })
	httpServer := &http.Server{
		Addr:              ":" + strconv.Itoa(o.port),
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
	}
	return servePlugin(ctx, httpServer, server, log)
}

// loadPluginConfig reads the plugin config; without one nobody is trusted.
// readDispatcherToken reads the plugin's bearer token for the dispatcher
// API: the token alone, on one line (the dispatcher's own token file names
// callers, "plugin TOKEN"; this one must not). Its errors never show the token.
func readDispatcherToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("dispatcher token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	switch {
	case token == "":
		return "", fmt.Errorf("dispatcher token %s: empty", path)
	case strings.ContainsAny(token, " \t\r\n"):
		return "", fmt.Errorf("dispatcher token %s: %d fields, want the token alone on one line", path, len(strings.Fields(token)))
	}
	return token, nil
}

func loadPluginConfig(path string, log *logrus.Entry) (*plugin.Config, error) {
	if path == "" {
		log.Warn("No --plugin-config: nobody may use /dispatch refresh or /reschedule.")
		return plugin.ParseConfig(nil)
	}
	return plugin.LoadConfig(path)
}

// servePlugin serves until ctx is done, then shuts down gracefully.
func servePlugin(ctx context.Context, httpServer *http.Server, server *plugin.Server, log *logrus.Entry) error {
	errc := make(chan error, 1)
	go func() {
		log.WithField("addr", httpServer.Addr).Info("Serving GitHub webhooks.")
		errc <- httpServer.ListenAndServe()
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("listening on %s: %w", httpServer.Addr, err)
	case <-ctx.Done():
	}
	log.Info("Shutting down.")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := httpServer.Shutdown(shutdownCtx)
	server.Wait()
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}
