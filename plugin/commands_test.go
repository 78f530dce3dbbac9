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
