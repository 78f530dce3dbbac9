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
	"time"

	"sigs.k8s.io/yaml"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// planFlags are the plan subcommand's flags.
type planFlags struct {
	dispatcherConfig, clusterConfig, jobConfig string
	demandFile, prometheusURL                  string
	prometheusQuery, prometheusWeight          string
	demandWindow                               time.Duration
	previous, output, format                   string
	writeBuildFarm                             bool
	maxMoves                                   int
	tuning                                     tuningFlags
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
	fs.StringVar(&f.dispatcherConfig, "dispatcher-config", "", "dispatcher config file (required)")
	fs.StringVar(&f.clusterConfig, "cluster-config", "", "cluster config file (required)")
	fs.StringVar(&f.jobConfig, "job-config", "", "Prow job config dir (required)")
	fs.StringVar(&f.demandFile, "demand-file", "", "YAML/JSON map of job name -> demand")
	fs.StringVar(&f.prometheusURL, "prometheus-url", "", "Prometheus to query demand from (instead of --demand-file)")
	fs.StringVar(&f.prometheusQuery, "prometheus-query", demand.DefaultQuery, "demand query by job_name; {{.Window}} is the demand window")
	fs.StringVar(&f.prometheusWeight, "prometheus-weight-query", "", "optional query of a weight by job_name (e.g. average run duration) that multiplies each job's demand")
	fs.DurationVar(&f.demandWindow, "demand-window", demand.DefaultWindow, "demand window of the Prometheus query")
	fs.StringVar(&f.previous, "previous", "", "previous assignment: a table JSON or a state file (default: the dispatcher config's buildFarm)")
	fs.StringVar(&f.output, "output", "", "write the new table to this file")
	fs.StringVar(&f.format, "format", "json", "format of --output: json or yaml")
	fs.BoolVar(&f.writeBuildFarm, "write-build-farm", false, "print the dispatcher config with the buildFarm regenerated from the new table to stdout (the report goes to stderr)")
	fs.IntVar(&f.maxMoves, "max-moves", 50, "list at most this many moves (all are counted)")
	f.tuning.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		fs.Usage()
		return err
	}

	cfg, err := config.LoadDispatcher(f.dispatcherConfig)
	if err != nil {
		return err
	}
	clusters, err := config.LoadClusters(f.clusterConfig)
	if err != nil {
		return err
	}
	if err := config.Validate(cfg, clusters); err != nil {
		return err
	}
	js, err := jobs.Load(f.jobConfig, f.tuning.labels)
	if err != nil {
		return err
	}
	if err := cfg.CheckPathOverlaps(jobs.Files(js)); err != nil {
		return err
	}
	dm, err := f.demand(ctx)
	if err != nil {
		return err
	}
	var prev *table.Table
	if f.previous != "" {
		if prev, err = store.ReadTable(f.previous); err != nil {
			return err
		}
	}
	eng, err := engine.New(engine.Input{
		Jobs: js, Config: cfg, Clusters: clusters, Demand: dm, Previous: prev, Now: time.Now().UTC(), Options: f.tuning.engine,
	})
	if err != nil {
		return err
	}
	t, report, err := eng.Dispatch()
	if err != nil {
		return err
	}

	if f.output != "" {
		if err := writeTable(f.output, f.format, t); err != nil {
			return err
		}
	}
	summary := stdout
	if f.writeBuildFarm {
		summary = stderr
		cfg.BuildFarm = config.BuildFarmFromTable(clusters, t, cfg.BuildFarm)
		out, err := cfg.Marshal()
		if err != nil {
			return err
		}
		if _, err := stdout.Write(out); err != nil {
			return err
		}
	}
	return printReport(summary, report, f.maxMoves)
}

func (f *planFlags) validate() error {
	switch {
	case f.dispatcherConfig == "" || f.clusterConfig == "" || f.jobConfig == "":
		return errors.New("--dispatcher-config, --cluster-config and --job-config are required")
	case f.demandFile != "" && f.prometheusURL != "":
		return errors.New("give --demand-file or --prometheus-url, not both")
	case f.format != "json" && f.format != "yaml":
		return fmt.Errorf("--format %q: want json or yaml", f.format)
	}
	return f.tuning.validate()
}

// demand reads the demand source the flags name; none means every job gets the default demand.
func (f *planFlags) demand(ctx context.Context) (map[string]float64, error) {
	var src demand.Source
	switch {
	case f.demandFile != "":
		src = demand.File{Path: f.demandFile}
	case f.prometheusURL != "":
		p, err := demand.NewPrometheus(demand.PrometheusOptions{
			URL: f.prometheusURL, Query: f.prometheusQuery, WeightQuery: f.prometheusWeight, Window: f.demandWindow,
		})
		if err != nil {
			return nil, err
		}
		src = p
	default:
		return nil, nil
	}
	return src.Demand(ctx)
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
	fmt.Fprintln(tw, "CLUSTER\tPROVIDER\tCAPACITY\tJOBS\tDEMAND\tTARGET\tRATIO\tNOTE")
	for _, c := range r.Clusters {
		note := ""
		switch {
		case c.Blocked:
			note = "blocked"
		case c.Manual:
			note = "manual"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.3f\t%s\n", c.Name, c.Provider, c.Capacity, c.Jobs, c.Demand, c.Target, c.Ratio, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d jobs, imbalance %.3f, %d moved\n", r.Jobs, r.Imbalance, len(r.Moves))
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
	for _, u := range r.Unplaceable {
		fmt.Fprintf(w, "unplaceable: %s\n", u)
	}
	return nil
}
