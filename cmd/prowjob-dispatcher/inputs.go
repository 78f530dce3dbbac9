package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
)

// inputFlags are the flags serve and plan share, so that a plan previews
// exactly what serve would do: the three inputs, the demand source, the job
// labels that steer placement and the engine's balancing options.
type inputFlags struct {
	dispatcherConfig, clusterConfig, jobConfig string

	prometheusURL, prometheusQuery, prometheusWeight string
	prometheusTimeout, demandWindow                  time.Duration
	demandFile                                       string
	prometheus                                       prometheusClientFlags
	weights                                          demand.Weights

	labels      jobs.Labels
	engine      engine.Options
	clusterJobs patternList
}

// patternList is a repeatable flag of regexes with a capture group.
type patternList struct {
	set      bool // a flag replaced the defaults
	patterns []*regexp.Regexp
}

func (p *patternList) String() string {
	if p == nil {
		return ""
	}
	out := make([]string, len(p.patterns))
	for i, re := range p.patterns {
		out[i] = re.String()
	}
	return strings.Join(out, " ")
}

func (p *patternList) Set(v string) error {
	re, err := regexp.Compile(v)
	if err != nil {
		return err
	}
	if re.NumSubexp() == 0 {
		return fmt.Errorf("%q captures no cluster: want a group, e.g. (?P<cluster>...)", v)
	}
	if !p.set {
		p.set, p.patterns = true, nil
	}
	p.patterns = append(p.patterns, re)
	return nil
}

// demandFlagNames and dispatchFlagNames are the flags of inputFlags that -h lists
// under demand and under dispatch rather than inputs.
var (
	demandFlagNames = []string{"prometheus-url", "prometheus-query", "prometheus-weight-query", "prometheus-timeout", "demand-window", "demand-file", "default-demand",
		"prometheus-bearer-token-path", "prometheus-ca-file", "prometheus-cert-file", "prometheus-key-file", "prometheus-server-name",
		"prometheus-insecure-skip-verify", "prometheus-username", "prometheus-password-path", "prometheus-http-config",
		"prometheus-job-cpu-query", "prometheus-job-duration-query", "prometheus-job-memory-query",
		"job-run-weight", "job-duration-hour-weight", "job-cpu-hour-weight", "job-memory-gb-hour-weight", "minimum-job-demand"}
	dispatchFlagNames = []string{"balance-tolerance", "max-move-fraction", "cluster-job-pattern"}
)

func (f *inputFlags) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.dispatcherConfig, "dispatcher-config", "", "dispatcher config file (required)")
	fs.StringVar(&f.clusterConfig, "cluster-config", "", "cluster config file (required)")
	fs.StringVar(&f.jobConfig, "job-config", "", "Prow job config dir (required)")

	fs.StringVar(&f.prometheusURL, "prometheus-url", "", "Prometheus to query demand from")
	fs.StringVar(&f.prometheusQuery, "prometheus-query", demand.DefaultQuery, "demand query by job_name; {{.Window}} is the demand window")
	fs.StringVar(&f.prometheusWeight, "prometheus-weight-query", "", "optional query of a weight by job_name (e.g. average run duration) that multiplies each job's demand; {{.Window}} as above")
	fs.DurationVar(&f.prometheusTimeout, "prometheus-timeout", demand.DefaultTimeout, "timeout of one demand query")
	fs.DurationVar(&f.demandWindow, "demand-window", demand.DefaultWindow, "demand window")
	fs.StringVar(&f.demandFile, "demand-file", "", "YAML/JSON map of job name -> demand, instead of Prometheus")
	f.prometheus.AddFlags(fs)
	// The previous dispatcher's (ci-tools prow-job-dispatcher) demand weights, flag for flag.
	w := demand.DefaultWeights()
	fs.StringVar(&f.weights.DurationQuery, "prometheus-job-duration-query", "", "optional query of the summed run time in seconds by job_name over the demand window ({{.Window}}); weighed by --job-duration-hour-weight per hour")
	fs.StringVar(&f.weights.CPUQuery, "prometheus-job-cpu-query", "", "optional query of the summed CPU seconds by job_name over the demand window; weighed by --job-cpu-hour-weight per CPU-hour")
	fs.StringVar(&f.weights.MemoryQuery, "prometheus-job-memory-query", "", "optional query of the summed memory byte-seconds by job_name over the demand window; weighed by --job-memory-gb-hour-weight per GiB-hour")
	fs.Float64Var(&f.weights.Run, "job-run-weight", w.Run, "demand weight of one run (of the demand query's count)")
	fs.Float64Var(&f.weights.DurationHour, "job-duration-hour-weight", w.DurationHour, "demand weight of one job hour")
	fs.Float64Var(&f.weights.CPUHour, "job-cpu-hour-weight", w.CPUHour, "demand weight of one CPU-hour")
	fs.Float64Var(&f.weights.MemoryGiBHour, "job-memory-gb-hour-weight", w.MemoryGiBHour, "demand weight of one GiB-hour of memory")
	fs.Float64Var(&f.weights.Minimum, "minimum-job-demand", w.Minimum, "least weighted demand of a job Prometheus returns")

	d := jobs.DefaultLabels()
	fs.StringVar(&f.labels.CapabilityPrefix, "label-capability-prefix", d.CapabilityPrefix, "prefix of the job labels that require a capability (PREFIX+NAME: NAME)")
	fs.StringVar(&f.labels.Cluster, "label-cluster", d.Cluster, "job label that pins a job to a cluster")
	fs.StringVar(&f.labels.KVM, "label-kvm", d.KVM, "job label that asks for a KVM cluster (dispatcher config's kvm list)")
	fs.StringVar(&f.labels.NoBuilds, "label-no-builds", d.NoBuilds, "job label that marks a job without builds (dispatcher config's noBuilds list)")
	fs.StringVar(&f.labels.Cloud, "label-cloud", d.Cloud, "job label naming the job's cloud (dispatcher config's cloudMapping)")
	fs.StringVar(&f.labels.SSHBastion, "label-ssh-bastion", d.SSHBastion, "job label that asks for the dispatcher config's sshBastion cluster")
	fs.Float64Var(&f.engine.DefaultDemand, "default-demand", 0, "demand of jobs without demand data (0: the median of known jobs)")
	fs.Float64Var(&f.engine.Tolerance, "balance-tolerance", engine.DefaultTolerance, "load/target ratio up to which a cluster counts as balanced, so a rerun moves nothing")
	for _, p := range engine.DefaultClusterJobPatterns {
		f.clusterJobs.patterns = append(f.clusterJobs.patterns, regexp.MustCompile(p))
	}
	fs.Var(&f.clusterJobs, "cluster-job-pattern", "name regex of jobs that work on one cluster (its upgrade, its apply), with a group capturing the cluster; they stay there even while it is blocked. Repeat for more; the first replaces the defaults")
	fs.Float64Var(&f.engine.MaxMoveFraction, "max-move-fraction", engine.DefaultMaxMoveFraction, "fraction of all jobs a rerun may move for balance alone (moves forced by rules are not bounded)")
}

func (f *inputFlags) Validate() error {
	var errs []error
	for _, v := range []struct{ name, value string }{
		{"--dispatcher-config", f.dispatcherConfig}, {"--cluster-config", f.clusterConfig}, {"--job-config", f.jobConfig},
	} {
		if v.value == "" {
			errs = append(errs, fmt.Errorf("%s is required", v.name))
		}
	}
	if f.prometheusURL != "" && f.demandFile != "" {
		errs = append(errs, errors.New("--prometheus-url and --demand-file are exclusive"))
	}
	if f.prometheusWeight != "" && f.prometheusURL == "" {
		errs = append(errs, errors.New("--prometheus-weight-query needs --prometheus-url"))
	}
	if err := f.weights.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--job-*-weight, --minimum-job-demand: %w", err))
	}
	errs = append(errs, f.prometheus.Validate())
	for _, v := range []struct{ name, value string }{
		{"--label-capability-prefix", f.labels.CapabilityPrefix}, {"--label-cluster", f.labels.Cluster},
		{"--label-kvm", f.labels.KVM}, {"--label-no-builds", f.labels.NoBuilds},
		{"--label-cloud", f.labels.Cloud}, {"--label-ssh-bastion", f.labels.SSHBastion},
	} {
		if v.value == "" {
			errs = append(errs, fmt.Errorf("%s must not be empty", v.name))
		}
	}
	if d := f.engine.DefaultDemand; d < 0 || math.IsNaN(d) || math.IsInf(d, 0) {
		errs = append(errs, fmt.Errorf("--default-demand %v: want 0 (median) or a positive number", d))
	}
	if !(f.engine.Tolerance >= 1 && f.engine.Tolerance <= 10) {
		errs = append(errs, fmt.Errorf("--balance-tolerance %v: want 1..10", f.engine.Tolerance))
	}
	if !(f.engine.MaxMoveFraction > 0 && f.engine.MaxMoveFraction <= 1) {
		errs = append(errs, fmt.Errorf("--max-move-fraction %v: want more than 0, at most 1", f.engine.MaxMoveFraction))
	}
	return errors.Join(errs...)
}

// demandSource returns the demand source the flags name, or nil for none
// (serve then counts demand from admissions; plan gives every job the
// default demand). A demand file is read once here, so a bad one fails the start.
func (f *inputFlags) demandSource(log logr.Logger) (demand.Source, error) {
	switch {
	case f.prometheusURL != "":
		rt, err := f.prometheus.roundTripper()
		if err != nil {
			return nil, err
		}
		p, err := demand.NewPrometheus(demand.PrometheusOptions{
			URL: f.prometheusURL, Query: f.prometheusQuery, WeightQuery: f.prometheusWeight, Weights: f.weights,
			Window: f.demandWindow, Timeout: f.prometheusTimeout, RoundTripper: rt, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("--prometheus-url: %w", err)
		}
		return p, nil
	case f.demandFile != "":
		if _, err := demand.ReadFile(f.demandFile); err != nil {
			return nil, fmt.Errorf("--demand-file: %w", err)
		}
		return demand.File{Path: f.demandFile}, nil
	default:
		return nil, nil
	}
}

// options returns the dispatch options the flags set: inputs, labels,
// balancing and the demand source.
func (f *inputFlags) options(source demand.Source) dispatch.Options {
	balancing := f.engine
	balancing.ClusterJobs = f.clusterJobs.patterns
	return dispatch.Options{
		DispatcherConfigPath: f.dispatcherConfig,
		ClusterConfigPath:    f.clusterConfig,
		JobConfigDir:         f.jobConfig,
		Labels:               f.labels,
		Engine:               balancing,
		Demand:               source,
	}
}
