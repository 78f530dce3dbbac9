// Command prowjob-dispatcher decides which build cluster runs each ProwJob.
//
//	prowjob-dispatcher serve   # the admission webhook, HTTP API and dispatch loop
//	prowjob-dispatcher plan    # run the engine offline and show the result
//	prowjob-dispatcher plugin  # the Prow external plugin for /dispatch and /reschedule
//	prowjob-dispatcher certs   # write the webhook's serving certificate into a Secret, once
//	prowjob-dispatcher version # the version and revision it was built from
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// subcommands maps a subcommand name to its entry point. Each takes the
// arguments after its name and returns when ctx is cancelled or it is done.
var subcommands = map[string]struct {
	run     func(ctx context.Context, args []string) error
	summary string
}{
	"serve":   {runServe, "run the admission webhook, HTTP API and dispatch loop"},
	"plan":    {runPlan, "run the engine on config files and a demand file, print loads and moves"},
	"plugin":  {runPlugin, "run the Prow external plugin for /dispatch and /reschedule"},
	"certs":   {runCerts, "write the webhook's serving certificate into a Secret once and its CA into the webhook config (without cert-manager)"},
	"version": {runVersion, "print the version, revision and Go version of this build"},
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	cmd, ok := subcommands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "prowjob-dispatcher: unknown subcommand %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "prowjob-dispatcher %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: prowjob-dispatcher <subcommand> [flags]")
	fmt.Fprintln(os.Stderr)
	for _, name := range []string{"serve", "plan", "plugin", "certs", "version"} {
		fmt.Fprintf(os.Stderr, "  %-7s %s\n", name, subcommands[name].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'prowjob-dispatcher <subcommand> -h' for its flags.")
}
