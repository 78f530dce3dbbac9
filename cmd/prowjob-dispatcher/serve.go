package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
)

// optionGroup is a component's flags, in the shape of prow's
// flagutil.OptionGroup: it defines its flags and validates them on its
// own. (serve has no dry run, so Validate takes none.)
type optionGroup interface {
	AddFlags(fs *flag.FlagSet)
	Validate() error
}

// serveFlags are the serve subcommand's flags, one group per component.
type serveFlags struct {
	inputs      inputFlags
	gitJobs     gitJobsFlags
	dispatch    dispatchFlags
	bindAddress string
	webhook     webhookFlags
	api         apiFlags
	log         logFlags
	state       stateFlags
	health      healthFlags
	backup      backupFlags
}

// groups are the components' flag groups, in the order they validate.
func (f *serveFlags) groups() []optionGroup {
	return []optionGroup{&f.inputs, &f.backup, &f.health, &f.state, &f.gitJobs, &f.webhook, &f.api, &f.log, &f.dispatch}
}

// addFlags defines serve's flags on fs, component by component, and
// returns how -h groups them. A flag added to a component later lands in
// its group by itself.
func (f *serveFlags) addFlags(fs *flag.FlagSet) *flagGroups {
	g := newFlagGroups(fs)
	g.add("inputs", f.inputs.AddFlags)
	g.add("inputs", f.gitJobs.AddFlags)
	g.move("demand", demandFlagNames...)
	g.move("dispatch", dispatchFlagNames...)
	g.add("dispatch", f.dispatch.AddFlags)
	g.move("demand", "demand-max-drop")
	g.add("server", func(fs *flag.FlagSet) {
		fs.StringVar(&f.bindAddress, "bind-address", "", "address the webhook, API and health ports listen on (empty: all)")
	})
	g.add("server", f.webhook.AddFlags)
	g.add("server", f.api.AddFlags)
	g.add("server", f.log.AddFlags)
	g.add("state", f.state.AddFlags)
	g.add("health", f.health.AddFlags)
	g.add("backup", f.backup.AddFlags)
	g.add("kubernetes", f.state.kube.AddFlags)
	g.alias("health-port", "probe-port")
	return g
}

// Validate validates each group, then what spans two: the health drain's
// TTL against the longest drain the state keeps.
func (f *serveFlags) Validate() error {
	var errs []error
	for _, g := range f.groups() {
		errs = append(errs, g.Validate())
	}
	if f.health.drainTTL > f.state.maxDrainTTL {
		errs = append(errs, fmt.Errorf("--health-drain-ttl %s is over --max-drain-ttl %s", f.health.drainTTL, f.state.maxDrainTTL))
	}
	return errors.Join(errs...)
}

// parseServeFlags parses and validates args, then sets up the process's
// log, warning about the deprecated flags given.
func parseServeFlags(args []string, stderr io.Writer) (*serveFlags, logr.Logger, error) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	groups := f.addFlags(fs)
	fs.Usage = func() {
		groups.usage(fs.Output(), "Usage: prowjob-dispatcher serve [flags]\n\nRuns the admission webhook, the HTTP API and the dispatch loop.")
	}
	if err := fs.Parse(args); err != nil {
		return nil, logr.Discard(), err
	}
	if fs.NArg() > 0 {
		return nil, logr.Discard(), fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := f.Validate(); err != nil {
		return nil, logr.Discard(), err
	}
	log, _ := f.log.setUp(stderr)
	for _, d := range groups.Deprecations() {
		log.Info("Deprecated flag: " + d)
	}
	ctrllog.SetLogger(log) // controller-runtime names its loggers "controller-runtime/..." itself
	return f, log, nil
}

// newRegistry is serve's metrics registry, with the Go runtime's, the
// process's and the build's metrics.
func newRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo()} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering runtime metrics: %w", err)
		}
	}
	return reg, nil
}

// dispatchOptions are the dispatcher's options: the inputs and demand,
// the loop, what the state keeps and cluster health. The returned func
// flushes the health Events.
func (f *serveFlags) dispatchOptions(ctx context.Context, reg prometheus.Registerer, log logr.Logger) (dispatch.Options, func(), error) {
	source, err := f.inputs.demandSource(log.WithName("demand"))
	if err != nil {
		return dispatch.Options{}, func() {}, err
	}
	opts := f.inputs.options(source)
	f.dispatch.apply(&opts)
	f.state.apply(&opts)
	opts.Registerer, opts.Logger = reg, log.WithName("dispatch")
	var stopEvents func()
	opts.Health, stopEvents, err = f.health.options(ctx, f.inputs.prometheusURL, &f.inputs.prometheus, log.WithName("health"))
	return opts, stopEvents, err
}

// runServe runs the dispatch loop, the admission webhook, the API and the
// health endpoints until ctx is cancelled, then shuts down gracefully: the
// servers stop accepting and finish in-flight requests, then the dispatch
// loop stops and saves the state.
func runServe(ctx context.Context, args []string) error {
	return serve(ctx, args, os.Stdout, os.Stderr)
}

// serve builds serve's components from args and runs them (components.run).
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, log, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	reg, err := newRegistry()
	if err != nil {
		return err
	}
	opts, stopEvents, err := f.dispatchOptions(ctx, reg, log)
	defer stopEvents()
	if err != nil {
		return err
	}
	if err := f.webhook.ensureCertificate(log); err != nil {
		return err
	}
	token, err := f.api.openToken(reg, log)
	if err != nil {
		return err
	}
	st, releaseState, err := f.state.open(ctx, f.api.port, &opts, reg, log)
	defer releaseState()
	if err != nil {
		return err
	}
	var ref dispatcherRef
	jobSource, closeJobSource, err := f.gitJobs.start(ctx, &opts, ref.trigger, reg, log.WithName("jobconfig"))
	defer closeJobSource()
	if err != nil {
		return err
	}
	backup, cleanBackup, err := f.backup.attach(&opts, ref.buildFarm, reg, log.WithName("backup"), stdout, stderr)
	defer cleanBackup()
	if err != nil {
		return err
	}
	d, err := ref.set(dispatch.New(ctx, opts, st.backend))
	if err != nil {
		return err
	}
	hook, err := f.webhook.server(f.bindAddress, d, reg, log)
	if err != nil {
		return err
	}
	servers, err := f.api.servers(f.bindAddress, f.api.api(d, token, st, log), probes(d, reg, token, backup, jobSource, st), reg, log)
	if err != nil {
		return err
	}
	log.Info("Serving", "webhookPort", f.webhook.port, "apiPort", f.api.port, "healthPort", f.api.probePort, "stateDir", f.state.dir, "stateBackend", f.state.kube.backend)
	err = components{
		servers:    append(servers, hook),
		loops:      []component{st.loop(d, log)},
		background: append(st.background(d), background(backup, jobSource)...),
	}.run(ctx, log)
	log.Info("Stopped")
	return err
}
