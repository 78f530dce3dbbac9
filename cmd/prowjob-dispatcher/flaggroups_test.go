package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// TestHelpShowsGroups: serve -h and plugin -h list every flag once, under
// the group of the component that owns it, groups in order, none in "other".
func TestHelpShowsGroups(t *testing.T) {
	var serveHelp bytes.Buffer
	if err := serve(context.Background(), []string{"-h"}, io.Discard, &serveHelp); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve -h: %v, want flag.ErrHelp", err)
	}
	pluginFS := flag.NewFlagSet("plugin", flag.ContinueOnError)
	var o pluginOptions
	var pluginHelp bytes.Buffer
	pluginFS.SetOutput(&pluginHelp)
	o.addFlags(pluginFS).usage(&pluginHelp, "Usage: prowjob-dispatcher plugin [flags]")

	var planHelp bytes.Buffer
	if err := plan(context.Background(), []string{"-h"}, io.Discard, &planHelp); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("plan -h: %v, want flag.ErrHelp", err)
	}

	serveFS := flag.NewFlagSet("serve", flag.ContinueOnError)
	var f serveFlags
	f.addFlags(serveFS)
	for _, tc := range []struct {
		name   string
		help   string
		fs     *flag.FlagSet
		groups []string
	}{
		{"serve", serveHelp.String(), serveFS, []string{"Inputs", "Demand", "Dispatch", "Server", "State", "Health", "Backup", "Kubernetes", "Deprecated"}},
		{"plugin", pluginHelp.String(), pluginFS, []string{"Inputs", "Server", "Dispatcher", "GitHub", "Deprecated"}},
		{"plan", planHelp.String(), nil, []string{"Inputs", "Demand", "Dispatch", "Output"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := -1
			for _, g := range tc.groups {
				i := strings.Index(tc.help, "\n"+g+" flags")
				if i < 0 {
					t.Errorf("no %q group in -h:\n%s", g, tc.help)
					continue
				}
				if i < at {
					t.Errorf("group %q out of order in -h", g)
				}
				at = i
			}
			if strings.Contains(tc.help, "\nOther flags:") {
				t.Errorf("-h has flags of no group:\n%s", tc.help)
			}
			if tc.fs == nil {
				return
			}
			tc.fs.VisitAll(func(fl *flag.Flag) {
				if n := strings.Count(tc.help, "\n  --"+fl.Name+" ") + strings.Count(tc.help, "\n  --"+fl.Name+"\n"); n != 1 {
					t.Errorf("--%s is listed %d times in -h, want once", fl.Name, n)
				}
			})
		})
	}
}

// TestDeprecatedFlagAliases: the old names set the new flags and are
// reported, so the process can warn.
func TestDeprecatedFlagAliases(t *testing.T) {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	g := f.addFlags(fs)
	if err := fs.Parse([]string{"--health-port", "9999"}); err != nil {
		t.Fatal(err)
	}
	if f.api.probePort != 9999 {
		t.Errorf("--health-port 9999 set --probe-port to %d", f.api.probePort)
	}
	if d := g.Deprecations(); len(d) != 1 || !strings.Contains(d[0], "--health-port is deprecated: use --probe-port") {
		t.Errorf("deprecations %q", d)
	}

	var o pluginOptions
	fs = flag.NewFlagSet("plugin", flag.ContinueOnError)
	g = o.addFlags(fs)
	if err := fs.Parse([]string{"--config", "plugin.yaml", "--job-config-path", "jobs", "--dry-run"}); err != nil {
		t.Fatal(err)
	}
	if o.configPath != "plugin.yaml" || o.jobConfigPath != "jobs" || !o.dryRun {
		t.Errorf("aliases set plugin-config %q, job-config %q", o.configPath, o.jobConfigPath)
	}
	if d := g.Deprecations(); len(d) != 2 {
		t.Errorf("deprecations %q, want --config and --job-config-path", d)
	}
	// The new names report nothing.
	fs = flag.NewFlagSet("plugin", flag.ContinueOnError)
	g = (&pluginOptions{}).addFlags(fs)
	if err := fs.Parse([]string{"--plugin-config", "p", "--job-config", "j"}); err != nil || len(g.Deprecations()) != 0 {
		t.Errorf("new names: %v, deprecations %q", err, g.Deprecations())
	}
}

// TestServeFlagsBelongToComponents: every flag of serve but --bind-address
// (every server's) and the deprecated aliases is defined by exactly one
// component's flag group.
func TestServeFlagsBelongToComponents(t *testing.T) {
	var f serveFlags
	all := flag.NewFlagSet("serve", flag.ContinueOnError)
	f.addFlags(all)
	owner := map[string]int{}
	for i, g := range append(f.groups(), &f.state.kube) {
		fs := flag.NewFlagSet("group", flag.ContinueOnError)
		g.AddFlags(fs)
		fs.VisitAll(func(fl *flag.Flag) {
			if all.Lookup(fl.Name) == nil {
				t.Errorf("group %d (%T) defines --%s, which serve does not", i, g, fl.Name)
			}
			owner[fl.Name]++
		})
	}
	all.VisitAll(func(fl *flag.Flag) {
		if fl.Name == "bind-address" || strings.HasPrefix(fl.Usage, "deprecated:") {
			return
		}
		if owner[fl.Name] != 1 {
			t.Errorf("--%s is defined by %d component groups, want 1", fl.Name, owner[fl.Name])
		}
	})
}
