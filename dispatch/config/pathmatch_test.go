package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPathMatcherIsMatchPath: the matcher finds, for every file, exactly
// the regexes MatchPath matches, whatever their shape.
func TestPathMatcherIsMatchPath(t *testing.T) {
	patterns := []string{
		`^openshift/hive/`, `^openshift/`, `^/openshift/installer/`, `^/`, `[^-]infra-periodics.yaml`,
		`.*-vsphere-.*\.yaml$`, `(?i)^OpenShift/origin/`, `^(openshift/api)/`, `^openshift/a|^openshift/b`,
		`(?m)^openshift/console/`, `^openshift/console/.*-periodics\.yaml$`, `presubmits`,
	}
	files := []string{
		"openshift/hive/openshift-hive-main-presubmits.yaml", "openshift/installer/x-periodics.yaml",
		"infra-periodics.yaml", "openshift-release-infra-periodics.yaml", "org/repo/org-repo-main-vsphere-e2e.yaml",
		"openshift/origin/o.yaml", "openshift/api/api.yaml", "openshift/b/b.yaml", "openshift/console/c-periodics.yaml",
		"a", "", "openshift",
	}
	res := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		res[i] = regexp.MustCompile(p)
	}
	m := NewPathMatcher(res)
	for _, f := range files {
		var want []int
		for i, re := range res {
			if MatchPath(re, f) {
				want = append(want, i)
			}
		}
		if got := m.Matches(nil, f); !slices.Equal(got, want) {
			t.Errorf("Matches(%q) = %v, want %v", f, got, want)
		}
		first := -1
		if len(want) > 0 {
			first = want[0]
		}
		if got := m.First(f); got != first {
			t.Errorf("First(%q) = %d, want %d", f, got, first)
		}
	}
}

// TestGroupPathBounds: a dispatcher config's group path regexes are
// bounded in number, length and compiled size.
func TestGroupPathBounds(t *testing.T) {
	paths := func(n int, format string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "    - '"+format+"'\n", i)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, paths, wantErr string
	}{
		{name: "the maximum", paths: paths(MaxGroupPaths, `^openshift/repo%04d/`)},
		{name: "one more", paths: paths(MaxGroupPaths+1, `^openshift/repo%04d/`), wantErr: "201 path regexes, more than the 200"},
		{name: "too long", paths: paths(1, "^"+strings.Repeat("a", MaxGroupPathBytes)+"%d"), wantErr: "path regex of 514 bytes, more than the 512"},
		{name: "too large compiled", paths: paths(60, `^x%d(?:a{1000})`), wantErr: "compile to more than 20000 instructions together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := "default: build01\ngroups:\n  build02:\n    paths:\n" + tc.paths
			_, err := ParseDispatcher("_config.yaml", []byte(data))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("ParseDispatcher: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("ParseDispatcher: err = %v, want one with %q", err, tc.wantErr)
			}
		})
	}
}
