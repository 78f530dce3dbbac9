package engine_test

import (
	"strings"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// allRules are the rules Explain lists, in order.
var allRules = []table.Reason{table.ReasonAgent, table.ReasonOverride, table.ReasonClusterJob, table.ReasonManual, table.ReasonPinned,
	table.ReasonSSHBastion, table.ReasonCapability, table.ReasonKVM, table.ReasonNoBuilds, table.ReasonCloud,
	table.ReasonGroupJob, table.ReasonGroupPath, table.ReasonBalanced, table.ReasonDefault}

func TestExplainListsEveryRule(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t, tc.job)
			if tc.previous != nil {
				in.Previous = &table.Table{Assignments: []table.Assignment{*tc.previous}}
			}
			if tc.override != nil {
				in.Overrides[tc.job.Name] = *tc.override
			}
			e, tb, _ := dispatch(t, in)
			x := e.Explain(tc.job)
			if len(x.Steps) != len(allRules) {
				t.Fatalf("%d steps, want %d: %+v", len(x.Steps), len(allRules), x.Steps)
			}
			matched := map[table.Reason]bool{}
			for i, s := range x.Steps {
				if s.Rule != allRules[i] || s.Detail == "" {
					t.Errorf("step %d: %+v, want rule %s with a detail", i, s, allRules[i])
				}
				matched[s.Rule] = s.Matched
			}
			if tc.skipped {
				if !matched[table.ReasonAgent] {
					t.Error("agent step not matched for a skipped job")
				}
				return
			}
			if !matched[tc.reason] {
				t.Errorf("deciding rule %s not matched: %+v", tc.reason, x.Steps)
			}
			if want := tb.ByJob()[tc.job.Name]; x.Assignment != want {
				t.Errorf("assignment %+v, want the table's %+v", x.Assignment, want)
			}
			if len(x.Eligible) == 0 && tc.reason != table.ReasonPinned && !tc.stranded {
				t.Error("no eligible clusters")
			}
			for _, c := range x.Eligible {
				if !contains(tc.want, c.Name) && tc.reason != table.ReasonDefault && !strings.Contains(tc.detail, "kept") {
					t.Errorf("eligible %s, want one of %v", c.Name, tc.want)
				}
			}
		})
	}
}

func TestExplainAnUnknownJobPlacesWithoutRecording(t *testing.T) {
	e, _, _ := dispatch(t, background(t))
	before := mustJSON(t, e.Loads())
	j := job("never-seen")
	j.Requirements.Capabilities = []string{"arm64"}
	x := e.Explain(j)
	if !contains([]string{"build01", "build05"}, x.Assignment.Cluster) || x.Assignment.Reason != table.ReasonCapability {
		t.Errorf("assignment %+v, want capability on build01 or build05", x.Assignment)
	}
	if len(x.Eligible) != 2 || x.Eligible[0].Name != "build01" || x.Eligible[1].Name != "build05" || x.Eligible[0].Target == 0 {
		t.Errorf("eligible %+v, want build01 and build05 with their loads", x.Eligible)
	}
	if mustJSON(t, e.Loads()) != before {
		t.Error("Explain changed the loads")
	}
}
