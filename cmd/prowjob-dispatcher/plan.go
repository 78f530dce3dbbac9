package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/go-logr/logr"
	"sigs.k8s.io/yaml"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// planFlags are the plan subcommand's flags.
type planFlags struct {
	inputs                   inputFlags
	previous, output, format string
	writeBuildFarm, strict   bool
	maxMoves                 int
}

// runPlan runs the engine offline on config files and demand, prints the
// per-cluster loads and the moves against the previous assignment, and
// optionally writes the table and the dispatcher config with a regenerated buildFarm.
func runPlan(ctx context.Context, args []string) error {
	return plan(ctx, args, os.Stdout, os.Stderr)
}

func plan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f planFlags
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	groups := newFlagGroups(fs)
	groups.add("inputs", f.inputs.AddFlags)
	groups.move("demand", demandFlagNames...)
	groups.move("dispatch", dispatchFlagNames...)
	groups.add("inputs", func(fs *flag.FlagSet) {
		fs.StringVar(&f.previous, "previous", "", "previous assignment: a table JSON or a state file (default: the dispatcher config's buildFarm)")
		fs.BoolVar(&f.strict, "strict", false, "refuse keys of the dispatcher and cluster configs that this version does not know (without it they are named on stderr and ignored, as serve does)")
	})
	groups.add("output", func(fs *flag.FlagSet) {
		fs.StringVar(&f.output, "output", "", "write the new table to this file")
		fs.StringVar(&f.format, "format", "json", "format of --output: json or yaml")
		fs.BoolVar(&f.writeBuildFarm, "write-build-farm", false, "print the dispatcher config with the buildFarm regenerated from the new table to stdout (the report goes to stderr)")
		fs.IntVar(&f.maxMoves, "max-moves", 50, "list at most this many moves (all are counted)")
	})
	fs.Usage = func() {
		groups.usage(fs.Output(), "Usage: prowjob-dispatcher plan [flags]\n\nComputes a table from the configs offline and prints each cluster's load and the moves.")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		fs.Usage()
		return err
	}

	source, err := f.inputs.demandSource(logr.Discard())
	if err != nil {
		return err
	}
	var prev *table.Table
	if f.previous != "" {
		if prev, err = store.ReadTable(f.previous); err != nil {
			return err
		}
	}
	res, err := dispatch.Plan(ctx, f.inputs.options(source), prev)
	if err != nil {
		return err
	}
	if f.strict {
		if err := config.RefuseUnknownFields(res.Config, res.Clusters); err != nil {
			return fmt.Errorf("--strict: %w", err)
		}
	}
	for _, field := range config.UnknownFields(res.Config, res.Clusters) {
		fmt.Fprintf(stderr, "warning: %s: ignored (this version does not know the key; --strict refuses it)\n", field)
	}

	if f.output != "" {
		if err := writeTable(f.output, f.format, res.Table); err != nil {
			return err
		}
	}
	summary := stdout
	if f.writeBuildFarm {
		summary = stderr
		cfg := *res.Config
		cfg.BuildFarm = dispatch.BuildFarmFromTable(res.Clusters, res.Table, res.Config.BuildFarm)
		out, err := cfg.Marshal()
		if err != nil {
			return err
		}
		if _, err := stdout.Write(out); err != nil {
			return err
		}
	}
	return printReport(summary, res.Report, f.maxMoves)
}

func (f *planFlags) Validate() error {
	errs := []error{f.inputs.Validate()}
	if f.format != "json" && f.format != "yaml" {
		errs = append(errs, fmt.Errorf("--format %q: want json or yaml", f.format))
	}
	return errors.Join(errs...)
}

func writeTable(path, format string, t *table.Table) error {
	out, err := json.MarshalIndent(t, "", "  ")
	if err == nil && format == "yaml" {
		out, err = yaml.JSONToYAML(out)
	}
	if err != nil {
		return fmt.Errorf("table %s: %w", path, err)
	}
	if format == "json" {
		out = append(out, '\n')
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("table %s: %w", path, err)
	}
	return nil
}

// printReport prints the per-cluster loads, then the moves.
func printReport(w io.Writer, r *engine.Report, maxMoves int) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tPROVIDER\tCAPACITY\tJOBS\tLOAD\tBALANCED\tFORCED\tTARGET\tLOAD/TARGET\tNOTE")
	for _, c := range r.Clusters {
		note := ""
		switch {
		case c.Blocked:
			note = "blocked"
		case c.Role != config.RoleBuild:
			note = c.Role // manual or service: runs only the jobs that name it
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.3f\t%s\n", c.Name, c.Provider, c.Capacity, c.Jobs, c.Demand, c.BalancedDemand, c.ForcedDemand, c.Target, c.Ratio, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d jobs, max load/target %.3f (all demand on usable clusters), %d moved\n", r.Jobs, r.Imbalance, len(r.Moves))
	if len(r.Moves) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "JOB\tFROM\tTO\tREASON")
		for i, m := range r.Moves {
			if i == maxMoves {
				fmt.Fprintf(tw, "... and %d more\n", len(r.Moves)-maxMoves)
				break
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Job, m.From, m.To, m.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Unplaceable) > 0 {
		fmt.Fprintf(w, "\n%d unplaceable (no usable cluster meets what they need; none is sent to a cluster that lacks it):\n", len(r.Unplaceable))
		for i, u := range r.Unplaceable {
			if i == maxMoves {
				fmt.Fprintf(w, "... and %d more\n", len(r.Unplaceable)-maxMoves)
				break
			}
			where := "left on its job config's cluster"
			if u.Cluster != "" {
				where = "kept on " + u.Cluster
			}
			fmt.Fprintf(w, "  %s: %s; %s\n", u.Job, u.Problem, where)
		}
	}
	return nil
}
