// Package monitoring reads the alerts and the Grafana dashboard that
// manifests/components/monitoring ships, and names the metrics their PromQL
// uses, so that tests can run the alerts' unit tests and hold every metric
// named against what the binaries really expose.
package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// The files of manifests/components/monitoring, relative to the repository root.
const (
	RulesPath      = "manifests/components/monitoring/prometheusrule.yaml"
	RulesTestGlob  = "manifests/components/monitoring/rules*_test.yaml"
	DashboardPath  = "manifests/components/monitoring/dashboard.json"
	RunbookPath    = "docs/runbook.md"
	RulesFileName  = "rules.yaml" // the name rules_test.yaml's rule_files expects
	dashboardTitle = "dashboard"
)

// Rule is one alerting or recording rule of the PrometheusRule.
type Rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RuleGroup is one group of rules.
type RuleGroup struct {
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// RuleFile is the spec of the PrometheusRule: a Prometheus rule file.
type RuleFile struct {
	Groups []RuleGroup `json:"groups"`
}

// LoadRules reads the PrometheusRule at path and returns its spec.
func LoadRules(path string) (*RuleFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the alerts: %w", err)
	}
	var obj struct {
		Kind string   `json:"kind"`
		Spec RuleFile `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if obj.Kind != "PrometheusRule" {
		return nil, fmt.Errorf("%s: kind %q, want PrometheusRule", path, obj.Kind)
	}
	if len(obj.Spec.Groups) == 0 {
		return nil, fmt.Errorf("%s: no rule groups", path)
	}
	return &obj.Spec, nil
}

// WriteRuleFile writes the spec as a Prometheus rule file that promtool reads.
func (f *RuleFile) WriteRuleFile(path string) error {
	data, err := yaml.Marshal(f)
	if err != nil {
		return fmt.Errorf("encoding the rule file: %w", err)
	}
	return os.WriteFile(path, data, 0o644)
}

// Alerts lists the alerting rules.
func (f *RuleFile) Alerts() []Rule {
	var out []Rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// Expr is a PromQL expression and where it comes from.
type Expr struct {
	// Origin names the alert, or the dashboard panel and its query.
	Origin string
	// PromQL is the expression; a dashboard's may hold Grafana variables
	// ($__rate_interval, $cluster).
	PromQL string
}

// dashboard is the part of a Grafana dashboard that holds PromQL.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a row's
}

// labelValuesRE matches Grafana's label_values(METRIC, LABEL) variable query.
var labelValuesRE = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)

// DashboardExprs returns every query of the dashboard at path: its panels'
// targets, and its variables' label_values(METRIC, ...) as the bare METRIC.
func DashboardExprs(path string) ([]Expr, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the dashboard: %w", err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Expr
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if t.Expr != "" {
					out = append(out, Expr{Origin: fmt.Sprintf("%s panel %q query %s", dashboardTitle, p.Title, t.RefID), PromQL: t.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		q := v.Query
		if m, ok := q.(map[string]any); ok {
			q = m["query"]
		}
		s, _ := q.(string)
		if m := labelValuesRE.FindStringSubmatch(s); m != nil {
			out = append(out, Expr{Origin: fmt.Sprintf("%s variable %q", dashboardTitle, v.Name), PromQL: m[1]})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no queries", path)
	}
	return out, nil
}

// Expressions returns every expression of the alerts and the dashboard
// under the repository root.
func Expressions(root string) ([]Expr, error) {
	rules, err := LoadRules(filepath.Join(root, RulesPath))
	if err != nil {
		return nil, err
	}
	var out []Expr
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out = append(out, Expr{Origin: "alert " + r.Alert + r.Record, PromQL: r.Expr})
		}
	}
	dash, err := DashboardExprs(filepath.Join(root, DashboardPath))
	if err != nil {
		return nil, err
	}
	return append(out, dash...), nil
}

// UsedMetrics maps each metric the alerts and the dashboard name to the
// expressions that name it. A histogram's series (_bucket, _sum, _count)
// are named as written.
func UsedMetrics(root string) (map[string][]string, error) {
	exprs, err := Expressions(root)
	if err != nil {
		return nil, err
	}
	used := map[string][]string{}
	for _, e := range exprs {
		names, err := MetricNames(e.PromQL)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Origin, err)
		}
		for _, n := range names {
			used[n] = append(used[n], e.Origin)
		}
	}
	return used, nil
}

// Words of PromQL that are never metric names when they stand outside
// braces: keywords, and the aggregation operators (which may be followed by
// by/without before their parenthesis).
var notMetric = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// Keywords followed by a parenthesized list of label names.
var labelListKeyword = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// MetricNames returns, sorted and once each, the metric names a PromQL
// expression selects. It is a small lexer, not a full parser (promtool
// checks the syntax): it skips strings, label matchers {...}, ranges
// [...], Grafana variables ($x, ${x}), numbers and durations, label lists
// after by/without/on/ignoring/group_left/group_right, keywords, and
// identifiers followed by "(" (functions).
func MetricNames(expr string) ([]string, error) {
	var names []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '{' || c == '[':
			end, err := skipGroup(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				for i < len(expr) && expr[i] != '}' {
					i++
				}
				i++
				continue
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := i
			for next < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[next])) {
				next++
			}
			switch {
			case labelListKeyword[strings.ToLower(word)]:
				if next < len(expr) && expr[next] == '(' {
					end, err := skipGroup(expr, next)
					if err != nil {
						return nil, err
					}
					i = end
				}
			case notMetric[strings.ToLower(word)]:
			case next < len(expr) && expr[next] == '(':
				// a function
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at offset %d of %q", i, s)
}

// skipGroup returns the index after the bracket opened at i and its
// match, skipping strings and nested brackets.
func skipGroup(s string, i int) (int, error) {
	closing := map[byte]byte{'{': '}', '[': ']', '(': ')'}
	var stack []byte
	for j := i; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case closing[c] != 0:
			stack = append(stack, closing[c])
		case c == '}' || c == ']' || c == ')':
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return 0, fmt.Errorf("unbalanced %q at offset %d of %q", c, j, s)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %q at offset %d of %q", s[i], i, s)
}

// GrafanaToPromQL replaces the dashboard's Grafana variables by values
// Prometheus accepts, so promtool can check its queries.
func GrafanaToPromQL(expr string) string {
	return strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$cluster", ".*").Replace(expr)
}
