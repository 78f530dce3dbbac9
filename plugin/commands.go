package plugin

import (
	"regexp"
	"strings"
)

// The commands, one anchored regexp each. They are matched line by line, so
// `\s` never reaches into the next line of a multi-line comment.
var (
	dispatchRe   = regexp.MustCompile(`(?mi)^/dispatch(?:\s+(refresh))?\s*$`)
	rescheduleRe = regexp.MustCompile(`(?mi)^/reschedule\s+(\S+)(?:\s+(\S+))?\s*$`)
	// The loose forms find lines that start a command but do not match it; they get a usage reply.
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
	cmdDispatchUsage
	cmdRescheduleUsage
)

// command is one command found in a comment.
type command struct {
	kind commandKind
	// job and cluster are /reschedule's arguments; cluster may be empty.
	job, cluster string
}

// Usage strings, shown in help and in replies to malformed commands.
const (
	dispatchUsage   = "/dispatch [refresh]"
	rescheduleUsage = "/reschedule <job-name> [cluster]"
)

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
		if m := dispatchRe.FindStringSubmatch(line); m != nil {
			kind := cmdDispatch
			if m[1] != "" {
				kind = cmdRefresh
			}
			cmds = append(cmds, command{kind: kind})
			continue
		}
		if m := rescheduleRe.FindStringSubmatch(line); m != nil {
			cmds = append(cmds, command{kind: cmdReschedule, job: m[1], cluster: m[2]})
			continue
		}
		switch {
		case dispatchLooseRe.MatchString(line):
			cmds = append(cmds, command{kind: cmdDispatchUsage})
		case rescheduleLooseRe.MatchString(line):
			cmds = append(cmds, command{kind: cmdRescheduleUsage})
		}
	}
	return cmds
}
