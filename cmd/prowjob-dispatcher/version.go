package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// Stamped by the build (make build, make image):
//
//	-ldflags "-X main.version=$(git describe --tags --always --dirty) -X main.revision=$(git rev-parse HEAD)"
var (
	version  = "dev"
	revision = "unknown"
)

// runVersion prints the version, the revision and the Go version it was built with.
func runVersion(_ context.Context, args []string) error {
	return printVersion(args, os.Stdout)
}

func printVersion(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	_, err := fmt.Fprintf(stdout, "version: %s\nrevision: %s\ngo: %s\n", version, revision, runtime.Version())
	return err
}

// buildInfo is the gauge prowjob_dispatcher_build_info{version,revision,goversion} = 1.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "prowjob_dispatcher_build_info",
		Help:        "Always 1; the labels say which build runs: version and revision stamped by the build, and the Go version.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
