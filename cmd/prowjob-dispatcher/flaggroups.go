package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// flagGroups sorts the flags of a subcommand into named groups, so that -h
// prints them the way the product reads (inputs, server, state, ...)
// rather than as one alphabetical list. Each component registers its flags
// through add under its group: a flag added later to a component lands in
// that component's group by itself.
type flagGroups struct {
	fs    *flag.FlagSet
	order []string          // groups in the order they print
	group map[string]string // flag name -> group
	// aliases maps each deprecated name to the flag it sets; used lists
	// the deprecated names given, for the caller to warn about once it logs.
	aliases map[string]string
	used    []string
}

// deprecatedGroup is the group -h lists the deprecated aliases under.
const deprecatedGroup = "deprecated"

func newFlagGroups(fs *flag.FlagSet) *flagGroups {
	return &flagGroups{fs: fs, group: map[string]string{}, aliases: map[string]string{}}
}

// add runs register on the flag set and files the flags it defines under group.
func (g *flagGroups) add(group string, register func(fs *flag.FlagSet)) {
	before := map[string]bool{}
	g.fs.VisitAll(func(f *flag.Flag) { before[f.Name] = true })
	register(g.fs)
	g.fs.VisitAll(func(f *flag.Flag) {
		if !before[f.Name] {
			g.group[f.Name] = group
		}
	})
	if !slices.Contains(g.order, group) {
		g.order = append(g.order, group)
	}
}

// move files flags already defined under group instead (a component whose
// flags belong to two groups).
func (g *flagGroups) move(group string, names ...string) {
	for _, n := range names {
		if g.fs.Lookup(n) == nil {
			panic("flagGroups.move: no flag --" + n)
		}
		g.group[n] = group
	}
	if !slices.Contains(g.order, group) {
		g.order = append(g.order, group)
	}
}

// alias defines old as a deprecated alias of the flag name: setting it sets
// name, and records the use (Deprecations).
func (g *flagGroups) alias(old, name string) {
	target := g.fs.Lookup(name)
	if target == nil {
		panic("flagGroups.alias: no flag --" + name)
	}
	g.fs.Var(&aliasValue{Value: target.Value, note: func() { g.used = append(g.used, old) }}, old,
		fmt.Sprintf("deprecated: use --%s", name))
	g.group[old] = deprecatedGroup
	g.aliases[old] = name
}

// Deprecations says, for each deprecated alias given, which flag replaces it.
func (g *flagGroups) Deprecations() []string {
	var out []string
	for _, old := range g.used {
		out = append(out, fmt.Sprintf("--%s is deprecated: use --%s", old, g.aliases[old]))
	}
	return out
}

// aliasValue is a deprecated flag's value: the target flag's, noting each Set.
type aliasValue struct {
	flag.Value
	note func()
}

func (a *aliasValue) Set(s string) error {
	a.note()
	return a.Value.Set(s)
}

// IsBoolFlag keeps a boolean alias usable without a value.
func (a *aliasValue) IsBoolFlag() bool {
	b, ok := a.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// usage prints the synopsis, then the flags group by group, sorted within
// each group; flags of no group print last under "other".
func (g *flagGroups) usage(w io.Writer, synopsis string) {
	fmt.Fprintf(w, "%s\n", synopsis)
	byGroup := map[string][]*flag.Flag{}
	g.fs.VisitAll(func(f *flag.Flag) {
		grp := g.group[f.Name]
		if grp == "" {
			grp = "other"
		}
		byGroup[grp] = append(byGroup[grp], f)
	})
	order := slices.Clone(g.order)
	for _, extra := range []string{"other", deprecatedGroup} {
		if len(byGroup[extra]) > 0 && !slices.Contains(order, extra) {
			order = append(order, extra)
		}
	}
	for _, grp := range order {
		if len(byGroup[grp]) == 0 {
			continue
		}
		heading := capitalize(grp) + " flags:"
		if grp == deprecatedGroup {
			heading = "Deprecated flags (still accepted, each sets the flag it names):"
		}
		fmt.Fprintf(w, "\n%s\n", heading)
		for _, f := range byGroup[grp] {
			printFlag(w, f)
		}
	}
}

// printFlag prints one flag as flag.PrintDefaults does, with two dashes.
func printFlag(w io.Writer, f *flag.Flag) {
	typ, usage := flag.UnquoteUsage(f)
	line := "  --" + f.Name
	if typ != "" {
		line += " " + typ
	}
	line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
	if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
		if typ == "string" {
			line += fmt.Sprintf(" (default %q)", f.DefValue)
		} else {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
	}
	fmt.Fprintln(w, line)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
