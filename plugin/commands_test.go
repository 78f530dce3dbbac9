package plugin

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCommands(t *testing.T) {
	cases := []struct {
		body string
		want []command
	}{
		{body: "/dispatch", want: []command{{kind: cmdDispatch}}},
		{body: "/Dispatch Refresh", want: []command{{kind: cmdRefresh}}},
		{body: "/dispatch\trefresh  \r", want: []command{{kind: cmdRefresh}}},
		{body: "/reschedule job-a", want: []command{{kind: cmdReschedule, job: "job-a"}}},
		{body: "/RESCHEDULE job-a build02 ", want: []command{{kind: cmdReschedule, job: "job-a", cluster: "build02"}}},
		{body: "please\n/reschedule job-a build02\nthanks\n/dispatch", want: []command{{kind: cmdReschedule, job: "job-a", cluster: "build02"}, {kind: cmdDispatch}}},
		{body: "/reschedule", want: []command{{kind: cmdRescheduleUsage}}},
		{body: "/reschedule job-a build02 extra", want: []command{{kind: cmdRescheduleUsage}}},
		{body: "/reschedule\njob-a", want: []command{{kind: cmdRescheduleUsage}}},
		{body: "/dispatch now", want: []command{{kind: cmdDispatchUsage}}},
		{body: " /dispatch", want: nil},
		{body: "> /dispatch", want: nil},
		{body: "run /dispatch please", want: nil},
		{body: "/dispatcher\n/rescheduled job-a", want: nil},
		{body: "/dispatch drain build03 4h node upgrade, see #123", want: []command{{kind: cmdDrain, cluster: "build03", ttl: "4h", reason: "node upgrade, see #123"}}},
		{body: "/Dispatch Drain build03 1h30m r --force  ", want: []command{{kind: cmdDrain, cluster: "build03", ttl: "1h30m", reason: "r", force: true}}},
		{body: "/dispatch drain build03 4h r --dry-run --force", want: []command{{kind: cmdDrain, cluster: "build03", ttl: "4h", reason: "r", force: true, dryRun: true}}},
		{body: "/dispatch drain build03 4h r\n--force", want: []command{{kind: cmdDrain, cluster: "build03", ttl: "4h", reason: "r"}}},
		{body: "/dispatch drain build03 4h --force", want: []command{{kind: cmdDrainUsage}}},
		{body: "/dispatch drain build03 4h r --forced", want: []command{{kind: cmdDrainUsage}}},
		{body: "/dispatch drain build03 four-hours r", want: []command{{kind: cmdDrainUsage}}},
		{body: "/dispatch drain", want: []command{{kind: cmdDrainUsage}}},
		{body: "/dispatch cap build02 40 2h half down --dry-run", want: []command{{kind: cmdCap, cluster: "build02", capacity: 40, ttl: "2h", reason: "half down", dryRun: true}}},
		{body: "/dispatch cap build02 100 2h r", want: []command{{kind: cmdCap, cluster: "build02", capacity: 100, ttl: "2h", reason: "r"}}},
		{body: "/dispatch cap build02 0 2h r", want: []command{{kind: cmdCapUsage}}},
		{body: "/dispatch cap build02 99999999999999999999 2h r", want: []command{{kind: cmdCapUsage}}},
		{body: "/dispatch cap build02 2h r", want: []command{{kind: cmdCapUsage}}},
		{body: "/dispatch undrain build03", want: []command{{kind: cmdUndrain, cluster: "build03"}}},
		{body: "/dispatch undrain", want: []command{{kind: cmdUndrainUsage}}},
		{body: "/dispatch drainage build03", want: []command{{kind: cmdDispatchUsage}}},
		{body: strings.Repeat("/dispatch\n", maxCommands+5), want: func() []command {
			var c []command
			for range maxCommands {
				c = append(c, command{kind: cmdDispatch})
			}
			return c
		}()},
	}
	for _, tc := range cases {
		if got := parseCommands(tc.body); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseCommands(%q) = %+v, want %+v", tc.body, got, tc.want)
		}
	}
}
