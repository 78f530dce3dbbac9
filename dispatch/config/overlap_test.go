package config

import (
	"strings"
	"testing"
)

func TestCheckPathOverlaps(t *testing.T) {
	files := []string{
		"openshift/origin/openshift-origin-main-presubmits.yaml",
		"openshift-priv/origin/openshift-priv-origin-main-presubmits.yaml",
		"openshift-priv/installer/openshift-priv-installer-main-presubmits.yaml",
		"kubevirt/kubevirt/kubevirt-kubevirt-main-periodics.yaml",
	}
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings of the error; none: no error
	}{{
		name: "disjoint",
		yaml: "default: build01\ngroups:\n  build01:\n    paths: ['^openshift-priv/']\n  build02:\n    paths: ['^kubevirt/']\n",
	}, {
		name: "overlap inside one group is harmless",
		yaml: "default: build01\ngroups:\n  build01:\n    paths: ['^openshift-priv/', '-presubmits.yaml$']\n",
	}, {
		name: "regexes that could overlap but match no common file",
		yaml: "default: build01\ngroups:\n  build01:\n    paths: ['origin']\n  build02:\n    paths: ['^kubevirt/.*periodics']\n",
	}, {
		name: "two groups match the same files",
		yaml: "default: build01\ngroups:\n  build01:\n    paths: ['^kubevirt/', '^openshift-priv/']\n  build02:\n    paths: ['origin']\n",
		want: []string{
			`dispatcher config d.yaml: groups["build02"].paths[0]: path regex "origin" overlaps groups["build01"].paths[1] "^openshift-priv/": both match 1 job file(s), e.g. "openshift-priv/origin/openshift-priv-origin-main-presubmits.yaml"`,
			`could go to "build01" or "build02"`,
		},
	}, {
		name: "every overlapping pair is reported",
		yaml: "default: build01\ngroups:\n  build01:\n    paths: ['presubmits']\n  build02:\n    paths: ['^openshift-priv/']\n  build03:\n    paths: ['installer']\n",
		want: []string{
			`groups["build02"].paths[0]: path regex "^openshift-priv/" overlaps groups["build01"].paths[0] "presubmits": both match 2 job file(s)`,
			`groups["build03"].paths[0]: path regex "installer" overlaps groups["build01"].paths[0] "presubmits": both match 1 job file(s)`,
			`groups["build03"].paths[0]: path regex "installer" overlaps groups["build02"].paths[0] "^openshift-priv/"`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDispatcher("d.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = d.CheckPathOverlaps(files)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
