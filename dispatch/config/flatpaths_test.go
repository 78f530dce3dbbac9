package config

import (
	"strings"
	"testing"
)

func TestFlatPathProblems(t *testing.T) {
	d, err := ParseDispatcher("_config.yaml", []byte(`default: build01
groups:
  build02:
    paths: ["^openshift/hive/", "[^-]infra-periodics.yaml"]
  build03:
    paths: ["^openshift/installer/"]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files []string
		want  []string
	}{
		{"a tree: no problem", []string{"openshift/hive/openshift-hive-master-presubmits.yaml", "infra-periodics.yaml"}, nil},
		{"flat (a ConfigMap): the dir regexes never match", []string{"openshift-hive-master-presubmits.yaml", "infra-periodics.yaml"},
			[]string{`groups["build02"].paths[0]: path regex "^openshift/hive/"`, `groups["build03"].paths[0]: path regex "^openshift/installer/"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := d.FlatPathProblems(tc.files)
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) || !strings.Contains(got[i], "_config.yaml") || !strings.Contains(got[i], "flat") {
					t.Errorf("problem %q, want it to name %s, the file and why", got[i], w)
				}
			}
		})
	}
}
