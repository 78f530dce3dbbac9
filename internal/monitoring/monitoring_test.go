package monitoring

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const root = "../.."

// promtool returns promtool's path. It skips the test where promtool is
// missing, except under make test-rules (PROMTOOL_REQUIRED=1), which
// installs it first.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("PROMTOOL_REQUIRED") != "" {
			t.Fatalf("promtool is not installed: make test-rules installs it (e2e/hack/install-assets.sh): %v", err)
		}
		t.Skipf("promtool is not installed (make test-rules installs it): %v", err)
	}
	return path
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`absent(up{job="prowjob-dispatcher"} == 1)`, []string{"up"}},
		{`max by (pod) (a_b) > 60`, []string{"a_b"}},
		{`sum without(le, "x") (rate(h_bucket{name=~"a{1}",code!="200"}[10m] offset 5m))`, []string{"h_bucket"}},
		{`a / on (pod) group_left (cluster) b unless c and bool d or e`, []string{"a", "b", "c", "d", "e"}},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))`, []string{"x_bucket"}},
		{`time() - max(ts) > 8 * 86400 + 1e3 + 0x1F`, []string{"ts"}},
		{`max by (cluster) (r{cluster=~"$cluster"}) > 1.25 # a comment naming no_metric`, []string{"r"}},
		{`count(sum (x)) + topk(3, y) + quantile(0.5, z) + count_values("v", w)`, []string{"w", "x", "y", "z"}},
		{`changes(m[1h:1m]) + label_replace(n, "a", "$1", "b", "(.*)")`, []string{"m", "n"}},
		{`rec:rate5m{a="'}"} * on() group_right() Inf`, []string{"rec:rate5m"}},
	} {
		got, err := MetricNames(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("MetricNames(%q) = %q, %v; want %q", tc.expr, got, err, tc.want)
		}
	}
	for _, bad := range []string{`a{b="c"`, `rate(a[5m)`, `a{b="c}`} {
		if got, err := MetricNames(bad); err == nil {
			t.Errorf("MetricNames(%q) = %q, want an error", bad, got)
		}
	}
}

// ruleTestFiles are the promtool unit test files of the alerts.
func ruleTestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, RulesTestGlob))
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool unit tests %s: %v", RulesTestGlob, err)
	}
	return files
}

// TestAlertRules runs promtool's syntax check and the unit tests of
// rules_test.yaml on the PrometheusRule's spec.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	rules, err := LoadRules(filepath.Join(root, RulesPath))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := rules.WriteRuleFile(filepath.Join(dir, RulesFileName)); err != nil {
		t.Fatal(err)
	}
	testFiles := ruleTestFiles(t)
	var names []string
	for _, f := range testFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(f))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"check", "rules", RulesFileName}, append([]string{"test", "rules"}, names...)} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertIsTestedAndHasARunbook checks that each alert has a unit
// test in which it fires, a severity, a summary, and a runbook_url whose
// anchor is a section of docs/runbook.md; and that the runbook has no
// section for an alert that does not exist.
func TestEveryAlertIsTestedAndHasARunbook(t *testing.T) {
	rules, err := LoadRules(filepath.Join(root, RulesPath))
	if err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, f := range ruleTestFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var unit struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string           `json:"alertname"`
					ExpAlerts []map[string]any `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		if err := yaml.Unmarshal(data, &unit); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range unit.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				}
			}
		}
	}
	runbook, err := os.ReadFile(filepath.Join(root, RunbookPath))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)$`).FindAllStringSubmatch(string(runbook), -1) {
		sections[m[1]] = true
	}
	alerts := rules.Alerts()
	if len(alerts) < 12 {
		t.Errorf("%d alerts, want at least the 12 kinds the issue lists", len(alerts))
	}
	names := map[string]bool{}
	for _, a := range alerts {
		names[a.Alert] = true
		if !fires[a.Alert] {
			t.Errorf("alert %s: no unit test in %s in which it fires", a.Alert, RulesTestGlob)
		}
		if s := a.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", a.Alert, s)
		}
		if a.Annotations["summary"] == "" {
			t.Errorf("alert %s: no summary", a.Alert)
		}
		want := "https://github.com/prowjob-dispatcher/prowjob-dispatcher/blob/main/" + RunbookPath + "#" + strings.ToLower(a.Alert)
		if got := a.Annotations["runbook_url"]; got != want {
			t.Errorf("alert %s: runbook_url %q, want %q", a.Alert, got, want)
		}
		if !sections[a.Alert] {
			t.Errorf("alert %s: no section \"## %s\" in %s", a.Alert, a.Alert, RunbookPath)
		}
	}
	for s := range sections {
		if !names[s] {
			t.Errorf("%s has a section for %s, which is no alert", RunbookPath, s)
		}
	}
}

// TestDashboardQueries checks the dashboard's queries with promtool (as
// recording rules, Grafana's variables replaced) and that it shows what
// on-call needs.
func TestDashboardQueries(t *testing.T) {
	exprs, err := DashboardExprs(filepath.Join(root, DashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	rf := RuleFile{Groups: []RuleGroup{{Name: "dashboard"}}}
	for i, e := range exprs {
		names, err := MetricNames(e.PromQL)
		if err != nil {
			t.Errorf("%s: %v", e.Origin, err)
		}
		for _, n := range names {
			used[n] = true
		}
		rf.Groups[0].Rules = append(rf.Groups[0].Rules, Rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: GrafanaToPromQL(e.PromQL)})
	}
	for _, want := range []string{
		"prowjob_dispatcher_cluster_balanced_demand", "prowjob_dispatcher_cluster_target", // load against target
		"prowjob_dispatcher_admissions_total",                                    // admissions by outcome
		"apiserver_admission_webhook_admission_duration_seconds_bucket",          // latency
		"prowjob_dispatcher_jobs_moved_total",                                    // moves per dispatch
		"prowjob_dispatcher_cluster_drained", "prowjob_dispatcher_job_overrides", // drains and overrides
		"prowjob_dispatcher_cluster_health", // health
	} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	bin := promtool(t)
	path := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := rf.WriteRuleFile(path); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
