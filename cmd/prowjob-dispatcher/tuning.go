package main

import (
	"errors"
	"flag"
	"fmt"
	"math"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
)

// tuningFlags are the placement flags serve and plan share, so a plan
// previews exactly what serve would do: the job labels that steer placement
// and the engine's balancing options.
type tuningFlags struct {
	labels jobs.Labels
	engine engine.Options
}

func (t *tuningFlags) register(fs *flag.FlagSet) {
	d := jobs.DefaultLabels()
	fs.StringVar(&t.labels.CapabilityPrefix, "label-capability-prefix", d.CapabilityPrefix, "prefix of the job labels that require a capability (PREFIX+NAME: NAME)")
	fs.StringVar(&t.labels.Cluster, "label-cluster", d.Cluster, "job label that pins a job to a cluster")
	fs.StringVar(&t.labels.KVM, "label-kvm", d.KVM, "job label that asks for a KVM cluster (dispatcher config's kvm list)")
	fs.StringVar(&t.labels.NoBuilds, "label-no-builds", d.NoBuilds, "job label that marks a job without builds (dispatcher config's noBuilds list)")
	fs.StringVar(&t.labels.Cloud, "label-cloud", d.Cloud, "job label naming the job's cloud (dispatcher config's cloudMapping)")
	fs.StringVar(&t.labels.SSHBastion, "label-ssh-bastion", d.SSHBastion, "job label that asks for the dispatcher config's sshBastion cluster")
	fs.Float64Var(&t.engine.DefaultDemand, "default-demand", 0, "demand of jobs without demand data (0: the median of known jobs)")
	fs.Float64Var(&t.engine.Tolerance, "balance-tolerance", engine.DefaultTolerance, "load/target ratio up to which a cluster counts as balanced, so a rerun moves nothing")
	fs.Float64Var(&t.engine.MaxMoveFraction, "max-move-fraction", engine.DefaultMaxMoveFraction, "fraction of all jobs a rerun may move for balance alone (moves forced by rules are not bounded)")
}

func (t *tuningFlags) validate() error {
	var errs []error
	for name, v := range map[string]string{
		"--label-capability-prefix": t.labels.CapabilityPrefix, "--label-cluster": t.labels.Cluster,
		"--label-kvm": t.labels.KVM, "--label-no-builds": t.labels.NoBuilds,
		"--label-cloud": t.labels.Cloud, "--label-ssh-bastion": t.labels.SSHBastion,
	} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s must not be empty", name))
		}
	}
	if t.engine.DefaultDemand < 0 || math.IsNaN(t.engine.DefaultDemand) || math.IsInf(t.engine.DefaultDemand, 0) {
		errs = append(errs, fmt.Errorf("--default-demand %v: want 0 (median) or a positive number", t.engine.DefaultDemand))
	}
	if !(t.engine.Tolerance >= 1 && t.engine.Tolerance <= 10) {
		errs = append(errs, fmt.Errorf("--balance-tolerance %v: want 1..10", t.engine.Tolerance))
	}
	if !(t.engine.MaxMoveFraction > 0 && t.engine.MaxMoveFraction <= 1) {
		errs = append(errs, fmt.Errorf("--max-move-fraction %v: want more than 0, at most 1", t.engine.MaxMoveFraction))
	}
	return errors.Join(errs...)
}
