package jobs

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseFile: one file's content gives the jobs and the errors Load gives
// for it, naming the file under the given dir.
func TestParseFile(t *testing.T) {
	const dir, rel = "ci-operator/jobs", "org/repo/org-repo-main-presubmits.yaml"
	all := "presubmits:\n  org/repo:\n  - name: pull-b\n    cluster: build02\n    labels:\n      capability/arm64: arm64\n  - name: pull-a\n    agent: kubernetes\n" +
		"postsubmits:\n  org/repo:\n  - name: branch-a\n    agent: jenkins\n" +
		"periodics:\n- name: periodic-a\n  labels:\n    devices.kubevirt.io/kvm: \"true\"\n"
	want := []Job{
		{Name: "branch-a", File: rel, Type: Postsubmit, Agent: "jenkins"},
		{Name: "periodic-a", File: rel, Type: Periodic, Agent: "kubernetes", Requirements: Requirements{KVM: true}},
		{Name: "pull-a", File: rel, Type: Presubmit, Agent: "kubernetes"},
		{Name: "pull-b", File: rel, Type: Presubmit, Agent: "kubernetes", Cluster: "build02", Requirements: Requirements{Capabilities: []string{"arm64"}}},
	}
	for name, tc := range map[string]struct {
		data    string
		want    []Job
		wantErr []string // substrings of the error
	}{
		"presubmits, postsubmits and periodics": {data: all, want: want},
		"gzipped":                               {data: gzipped(t, all), want: want},
		"prow's decoding (a flow sequence)":     {data: "periodics: [{name: periodic-a}]\n", want: []Job{{Name: "periodic-a", File: rel, Type: Periodic, Agent: "kubernetes"}}},
		"empty":                                 {data: "", want: nil},
		"malformed YAML": {data: "presubmits: [",
			wantErr: []string{"job config " + dir + ": error unmarshalling " + dir + "/" + rel + ": "}},
		"bad gzip": {data: "\x1f\x8bnot gzip", wantErr: []string{"job config " + dir + ": error reading " + dir + "/" + rel + ": "}},
		"a job twice in the file": {data: "periodics:\n- name: periodic-a\n- name: periodic-a\n",
			wantErr: []string{`job config ` + dir + `: job "periodic-a" defined twice: periodic ` + rel + ` and periodic ` + rel}},
		"presets sharing a label": {
			data:    "presets:\n- labels: {a: b}\n- labels: {a: b}\nperiodics:\n- name: periodic-a\n",
			wantErr: []string{"job config " + dir + ": duplicated preset 'label:value' pair : a:b"}},
		"an unknown field of a job is not read": {data: "periodics:\n- name: periodic-a\n  bogus: 1\n",
			want: []Job{{Name: "periodic-a", File: rel, Type: Periodic, Agent: "kubernetes"}}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseFile(dir, rel, []byte(tc.data), Labels{})
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("jobs %+v, want an error", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("jobs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseFileSameAsLoad: every file of the test tree parsed alone gives
// the jobs Load gives for it.
func TestParseFileSameAsLoad(t *testing.T) {
	dir := filepath.Join("testdata", "jobs")
	loaded, err := Load(dir, DefaultLabels())
	if err != nil {
		t.Fatal(err)
	}
	byFile := map[string][]Job{}
	for _, j := range loaded {
		byFile[j.File] = append(byFile[j.File], j)
	}
	var parsed [][]Job
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".yaml" {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, dir+string(filepath.Separator)))
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		got, err := ParseFile("jobs", rel, data, DefaultLabels())
		if err != nil {
			return err
		}
		if diff := cmp.Diff(byFile[rel], got); diff != "" {
			t.Errorf("%s (-Load +ParseFile):\n%s", rel, diff)
		}
		parsed = append(parsed, got)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := Merge(dir, parsed...)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(loaded, merged); diff != "" {
		t.Errorf("merged files differ from Load (-Load +Merge):\n%s", diff)
	}
}

// TestMerge: jobs defined in two files are an error naming both, every such
// job reported; the sets are not changed.
func TestMerge(t *testing.T) {
	a := []Job{{Name: "x", File: "a/a.yaml", Type: Presubmit}, {Name: "y", File: "a/a.yaml", Type: Presubmit}}
	b := []Job{{Name: "y", File: "b/b.yaml", Type: Periodic}, {Name: "x", File: "b/b.yaml", Type: Periodic}}
	c := []Job{{Name: "w", File: "c/c.yaml", Type: Periodic}}
	got, err := Merge("ci-operator/jobs", a, c)
	if err != nil {
		t.Fatal(err)
	}
	if names := []string{got[0].Name, got[1].Name, got[2].Name}; !cmp.Equal(names, []string{"w", "x", "y"}) {
		t.Errorf("merged %v, want sorted by name", names)
	}
	_, err = Merge("ci-operator/jobs", a, b)
	want := `job config ci-operator/jobs: job "x" defined twice: presubmit a/a.yaml and periodic b/b.yaml` + "\n" +
		`job config ci-operator/jobs: job "y" defined twice: presubmit a/a.yaml and periodic b/b.yaml`
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want\n%s", err, want)
	}
	if b[0].Name != "y" {
		t.Error("Merge changed a set")
	}
}
