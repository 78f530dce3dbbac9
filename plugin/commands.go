package plugin

import (
	"regexp"
	"strconv"
	"strings"
)

// The commands, one anchored regexp each. They are matched line by line, so
// `\s` never reaches into the next line of a multi-line comment. A TTL
// starts with a digit ("4h", "90m"); a drain's and a cap's flags come after
// the reason, at the end of the line.
var (
	dispatchRe   = regexp.MustCompile(`(?mi)^/dispatch(?:\s+(refresh|plan))?\s*$`)
	drainRe      = regexp.MustCompile(`(?mi)^/dispatch\s+drain\s+(\S+)\s+(\d\S*)\s+(.*?\S)((?:\s+--(?:force|dry-run))*)\s*$`)
	capRe        = regexp.MustCompile(`(?mi)^/dispatch\s+cap\s+(\S+)\s+(\d+)\s+(\d\S*)\s+(.*?\S)((?:\s+--dry-run)*)\s*$`)
	undrainRe    = regexp.MustCompile(`(?mi)^/dispatch\s+undrain\s+(\S+)\s*$`)
	rescheduleRe = regexp.MustCompile(`(?mi)^/reschedule\s+(\S+)(?:\s+(\S+))?\s*$`)
	// The loose forms find lines that start a command but do not match it; they get a usage reply.
	drainLooseRe      = regexp.MustCompile(`(?i)^/dispatch\s+drain(?:\s|$)`)
	capLooseRe        = regexp.MustCompile(`(?i)^/dispatch\s+cap(?:\s|$)`)
	undrainLooseRe    = regexp.MustCompile(`(?i)^/dispatch\s+undrain(?:\s|$)`)
	dispatchLooseRe   = regexp.MustCompile(`(?i)^/dispatch(?:\s|$)`)
	rescheduleLooseRe = regexp.MustCompile(`(?i)^/reschedule(?:\s|$)`)
)

// maxCommands bounds the commands handled from one comment.
const maxCommands = 10

// commandKind names a command.
type commandKind int

const (
	cmdDispatch commandKind = iota
	cmdRefresh
	cmdReschedule
	cmdPlan
	cmdDrain
	cmdCap
	cmdUndrain
	cmdDispatchUsage
	cmdRescheduleUsage
	cmdDrainUsage
	cmdCapUsage
	cmdUndrainUsage
)

// command is one command found in a comment.
type command struct {
	kind commandKind
	// job and cluster are /reschedule's arguments (cluster may be empty);
	// cluster is also the cluster of drain, cap and undrain.
	job, cluster string
	// ttl, reason, capacity, force and dryRun are drain's and cap's
	// arguments, as typed (the dispatcher checks the TTL).
	ttl, reason   string
	capacity      int
	force, dryRun bool
}

// Usage strings, shown in help and in replies to malformed commands.
const (
	dispatchUsage   = "/dispatch [refresh|plan]"
	rescheduleUsage = "/reschedule <job-name> [cluster]"
	drainUsage      = "/dispatch drain <cluster> <ttl> <reason...> [--force] [--dry-run]"
	capUsage        = "/dispatch cap <cluster> <capacity 1-100> <ttl> <reason...> [--dry-run]"
	undrainUsage    = "/dispatch undrain <cluster>"
)

// usageHelp is the reply's usage for a malformed command.
func usageHelp(k commandKind) string {
	switch k {
	case cmdRescheduleUsage:
		return code(rescheduleUsage) + " (the cluster is optional: without it the dispatcher picks the best other eligible cluster)."
	case cmdDrainUsage:
		return code(drainUsage) + ": the TTL is a duration such as `4h`, the reason is required, and the flags come last " +
			"(`--force` drains even when jobs would be stranded, `--dry-run` previews and changes nothing)."
	case cmdCapUsage:
		return code(capUsage) + ": the capacity is 1 to 100 (to drain, use `/dispatch drain`), the TTL a duration such as `4h`, " +
			"the reason is required, and `--dry-run` (last) previews and changes nothing."
	case cmdUndrainUsage:
		return code(undrainUsage) + "."
	default:
		return code(dispatchUsage) + ", " + code(drainUsage) + ", " + code(capUsage) + " or " + code(undrainUsage) + "."
	}
}

// parseCommands returns the commands of a comment in the order they appear,
// at most maxCommands. A line that starts with /dispatch or /reschedule but
// does not match its command is a malformed command.
func parseCommands(body string) []command {
	var cmds []command
	for _, line := range strings.Split(body, "\n") {
		if len(cmds) == maxCommands {
			break
		}
		line = strings.TrimRight(line, "\r")
		if c, ok := parseLine(line); ok {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// parseLine returns the command of one line, if it has one.
func parseLine(line string) (command, bool) {
	if m := dispatchRe.FindStringSubmatch(line); m != nil {
		switch strings.ToLower(m[1]) {
		case "refresh":
			return command{kind: cmdRefresh}, true
		case "plan":
			return command{kind: cmdPlan}, true
		}
		return command{kind: cmdDispatch}, true
	}
	if m := drainRe.FindStringSubmatch(line); m != nil {
		c := command{kind: cmdDrain, cluster: m[1], ttl: m[2], reason: m[3]}
		c.force, c.dryRun = hasFlag(m[4], "--force"), hasFlag(m[4], "--dry-run")
		if !plainReason(c.reason) {
			return command{kind: cmdDrainUsage}, true
		}
		return c, true
	}
	if m := capRe.FindStringSubmatch(line); m != nil {
		capacity, err := strconv.Atoi(m[2])
		c := command{kind: cmdCap, cluster: m[1], capacity: capacity, ttl: m[3], reason: m[4], dryRun: hasFlag(m[5], "--dry-run")}
		if err != nil || capacity < 1 || capacity > 100 || !plainReason(c.reason) {
			return command{kind: cmdCapUsage}, true
		}
		return c, true
	}
	if m := undrainRe.FindStringSubmatch(line); m != nil {
		return command{kind: cmdUndrain, cluster: m[1]}, true
	}
	if m := rescheduleRe.FindStringSubmatch(line); m != nil {
		return command{kind: cmdReschedule, job: m[1], cluster: m[2]}, true
	}
	switch {
	case drainLooseRe.MatchString(line):
		return command{kind: cmdDrainUsage}, true
	case capLooseRe.MatchString(line):
		return command{kind: cmdCapUsage}, true
	case undrainLooseRe.MatchString(line):
		return command{kind: cmdUndrainUsage}, true
	case dispatchLooseRe.MatchString(line):
		return command{kind: cmdDispatchUsage}, true
	case rescheduleLooseRe.MatchString(line):
		return command{kind: cmdRescheduleUsage}, true
	}
	return command{}, false
}

// hasFlag reports whether flags (the flags group of a match) holds flag.
func hasFlag(flags, flag string) bool {
	for _, f := range strings.Fields(flags) {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// plainReason refuses a reason with a word that looks like a flag: a
// misplaced or mistyped --force or --dry-run must not apply a drain
// silently without it.
func plainReason(reason string) bool {
	for _, w := range strings.Fields(reason) {
		if strings.HasPrefix(w, "--") {
			return false
		}
	}
	return true
}
