package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestReplaceBuildFarm(t *testing.T) {
	farm := map[string]map[string]*BuildFarmCluster{
		"aws": {"build01": {Filenames: []string{"a-presubmits.yaml", "b-periodics.yaml"}}},
		"gcp": {"build02": {Filenames: []string{"c-postsubmits.yaml"}}, "build04": {Disabled: true}},
	}
	const section = `buildFarm:
  aws:
    build01:
      filenames:
      - a-presubmits.yaml
      - b-periodics.yaml
  gcp:
    build02:
      filenames:
      - c-postsubmits.yaml
    build04:
      disabled: true
`
	for _, tc := range []struct {
		name, in, want string
		wantErr        string
	}{{
		name: "middle section, comments and order of the other keys kept",
		in: `# The dispatcher config of OpenShift CI.
default: build01  # the fallback
kvm:
  - build02       # indented sequences stay indented
buildFarm:
  aws:
    build01:
      filenames:
      - old.yaml
# The groups: keep them together.
groups:
  build03:
    jobs: [periodic-foo]
`,
		want: `# The dispatcher config of OpenShift CI.
default: build01  # the fallback
kvm:
  - build02       # indented sequences stay indented
` + section + `# The groups: keep them together.
groups:
  build03:
    jobs: [periodic-foo]
`,
	}, {
		name: "last section, with an indented trailing comment and no final newline",
		in:   "default: build01\nbuildFarm:\n  aws:\n    build09:\n      filenames: [x.yaml, y.yaml]\n    # gone with the section",
		want: "default: build01\n" + section,
	}, {
		name: "a comment at column 0 inside the section goes with it",
		in: `default: build01
buildFarm:
  aws:
    build01:
      filenames:
      - old.yaml
# gcp is new
  gcp:
    build05: {}

sshBastion: build01
`,
		want: "default: build01\n" + section + "\nsshBastion: build01\n",
	}, {
		name: "flow style section",
		in:   "buildFarm: {aws: {build01: {filenames: [z.yaml]}}}\ndefault: build01\n",
		want: section + "default: build01\n",
	}, {
		name: "null section: the next key stays",
		in:   "default: build01\nbuildFarm:   # generated\ngroups: {}\n",
		want: "default: build01\n" + section + "groups: {}\n",
	}, {
		name: "no section: appended",
		in:   "default: build01\ncloudMapping:\n  aws: aws\n",
		want: "default: build01\ncloudMapping:\n  aws: aws\n" + section,
	}, {
		name: "no section, no final newline",
		in:   "default: build01",
		want: "default: build01\n" + section,
	}, {
		name: "empty file",
		in:   "",
		want: section,
	}, {
		name:    "not a mapping",
		in:      "- default\n",
		wantErr: "not a mapping",
	}, {
		name:    "two sections",
		in:      "buildFarm: {}\ndefault: x\nbuildFarm: {}\n",
		wantErr: "appears twice",
	}, {
		name:    "not YAML",
		in:      "default: [\n",
		wantErr: "dispatcher config",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReplaceBuildFarm([]byte(tc.in), farm)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
			again, err := ReplaceBuildFarm(got, farm)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(got) {
				t.Errorf("not idempotent: a second replacement gave\n%s", again)
			}
			var cfg DispatcherConfig
			if err := yaml.Unmarshal(got, &cfg); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.BuildFarm, farm) {
				t.Errorf("the edited file's buildFarm is %v, want %v", cfg.BuildFarm, farm)
			}
		})
	}
}

// TestReplaceBuildFarmRealFile edits the fixture shaped like OpenShift CI's
// _config.yaml: the file decodes to the same config but for buildFarm, and
// an unchanged farm gives the file back byte for byte once its section was
// written by Marshal's rules.
func TestReplaceBuildFarmRealFile(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("..", "testdata", "openshift-release", "_config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var before DispatcherConfig
	if err := yaml.UnmarshalStrict(in, &before); err != nil {
		t.Fatal(err)
	}
	farm := map[string]map[string]*BuildFarmCluster{"aws": {"build01": {Filenames: []string{"only.yaml"}}}}
	out, err := ReplaceBuildFarm(in, farm)
	if err != nil {
		t.Fatal(err)
	}
	var after DispatcherConfig
	if err := yaml.UnmarshalStrict(out, &after); err != nil {
		t.Fatalf("the edited file does not decode: %v", err)
	}
	if !reflect.DeepEqual(after.BuildFarm, farm) {
		t.Errorf("buildFarm %v, want %v", after.BuildFarm, farm)
	}
	after.BuildFarm, before.BuildFarm = nil, nil
	if !reflect.DeepEqual(after, before) {
		t.Errorf("the other keys changed:\n%+v\nwant\n%+v", after, before)
	}
	// The same farm as in the file: a file whose section is in Marshal's
	// form comes back unchanged.
	canonical, err := ReplaceBuildFarm(in, buildFarmOf(t, in))
	if err != nil {
		t.Fatal(err)
	}
	again, err := ReplaceBuildFarm(canonical, buildFarmOf(t, in))
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(canonical) {
		t.Error("replacing a section by the farm it holds changed the file")
	}
}

// buildFarmOf decodes the buildFarm of a dispatcher config file.
func buildFarmOf(t *testing.T, in []byte) map[string]map[string]*BuildFarmCluster {
	t.Helper()
	var cfg DispatcherConfig
	if err := yaml.Unmarshal(in, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.BuildFarm
}
