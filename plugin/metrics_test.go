package plugin

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCommandMetrics: each command is counted by name and outcome, and
// failed GitHub calls by operation.
func TestCommandMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := New(Options{
		GitHub: flakyGitHub{newFakeGitHub()}, Dispatcher: newFakeDispatcher(),
		Presubmits: JobConfigPresubmits("testdata/jobs"), Config: testConfig(t), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ login, body string }{
		{stranger, "/dispatch refresh"},     // GitHub down: membership unknown
		{listedUser, "/dispatch refresh"},   // listed by name: no GitHub call needed
		{listedUser, "/reschedule"},         // malformed
		{stranger, "/reschedule a build01"}, // GitHub down again
	} {
		if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(c.login, c.body)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		command, outcome string
		want             float64
	}{
		{"dispatch_refresh", outcomeError, 1},
		{"dispatch_refresh", outcomeOK, 1},
		{"reschedule", outcomeMalformed, 1},
		{"reschedule", outcomeError, 1},
	} {
		if got := testutil.ToFloat64(p.metrics.commands.WithLabelValues(tc.command, tc.outcome)); got != tc.want {
			t.Errorf("commands{command=%s,outcome=%s} = %v, want %v", tc.command, tc.outcome, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(p.metrics.githubErrors.WithLabelValues("is_member")); got != 2 {
		t.Errorf("github_errors{operation=is_member} = %v, want 2", got)
	}
}
