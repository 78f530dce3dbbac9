package jobs

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A tree is a job config tree to write: file contents by slash path, and
// symlinks by slash path to their target.
type tree struct {
	files    map[string]string
	symlinks map[string]string
}

// write writes the tree under dir.
func (tr tree) write(t *testing.T, dir string) {
	t.Helper()
	for path, content := range tr.files {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(path)), content)
	}
	for path, target := range tr.symlinks {
		link := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.FromSlash(target), link); err != nil {
			t.Fatal(err)
		}
	}
}

// periodicsFile is a periodics file of the named jobs.
func periodicsFile(names ...string) string {
	var b strings.Builder
	b.WriteString("periodics:\n")
	for _, n := range names {
		b.WriteString("- name: " + n + "\n  interval: 1h\n  labels:\n    capability/arm64: arm64\n")
	}
	return b.String()
}

// gzipped returns s gzipped.
func gzipped(t *testing.T, s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkSameAsProw fails t unless Load and prow's reader give the same jobs,
// or the same error, for path.
func checkSameAsProw(t *testing.T, path string, labels Labels) {
	t.Helper()
	got, gotErr := Load(path, labels)
	want, wantErr := loadWithProwReader(path, labels)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("error:\n got %v\nwant %v", gotErr, wantErr)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jobs (-prow +Load):\n%s", diff)
	}
}

// TestLoadSameAsProwReader checks that Load gives what prow's ReadJobConfig
// gives, jobs or error, on trees that exercise its file selection, its
// errors and the files its fast parser leaves to prow's decoding.
func TestLoadSameAsProwReader(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "ext.yaml"), periodicsFile("periodic-outside"))
	writeFile(t, filepath.Join(outside, "dir", "in-linked-dir.yaml"), periodicsFile("periodic-in-linked-dir"))
	pre := "presubmits:\n  o/r:\n  - name: pull-a\n    labels:\n      ci-operator.openshift.io/cloud: aws\n"

	for _, tc := range []struct {
		name string
		tree tree
		// wantErr is a part of the error both must give, if any.
		wantErr string
	}{
		{name: "selection", tree: tree{files: map[string]string{
			"a/x.yaml":                pre,
			"a/y.yml":                 periodicsFile("periodic-yml"),
			"a/README.md":             periodicsFile("periodic-md"),
			"a/OWNERS":                "approvers: [a]\n",
			"a/jobs.json":             `{"periodics": [{"name": "periodic-json"}]}`,
			"a/x.yaml.orig":           periodicsFile("periodic-orig"),
			"a/.hidden.yaml":          periodicsFile("periodic-hidden"),
			"a/..hidden.yaml":         periodicsFile("periodic-dotdot"),
			"..data/k.yaml":           periodicsFile("periodic-k8s-volume"),
			"..2024_01_01/k.yaml":     periodicsFile("periodic-k8s-volume-2"),
			"folder.yaml/inside.yaml": periodicsFile("periodic-in-yaml-folder"),
			"a/empty.yaml":            "",
			"a/comments.yaml":         "# no jobs yet\n",
			"a/null.yaml":             "presubmits:\nperiodics: ~\n",
			"Z.YAML":                  periodicsFile("periodic-upper-ext"),
		}}},
		{name: "malformed", tree: tree{files: map[string]string{
			"a/x.yaml":   pre,
			"b/bad.yaml": "presubmits: [",
		}}, wantErr: "bad.yaml"},
		{name: "several errors", tree: tree{files: map[string]string{
			"a/bad.yaml":  "periodics:\n- name: [",
			"b/bad.yaml":  periodicsFile("periodic-b"),
			"c/bad2.yaml": "periodics: {",
			"d/ok.yaml":   periodicsFile("periodic-d"),
		}}, wantErr: "duplicated basename is not allowed: bad.yaml"},
		{name: "duplicate job", tree: tree{files: map[string]string{
			"a/one.yaml": periodicsFile("periodic-x", "periodic-y"),
			"b/two.yaml": pre + "  - name: periodic-x\n",
		}}, wantErr: `job "periodic-x" defined twice: periodic a/one.yaml and presubmit b/two.yaml`},
		{name: "prowignore", tree: tree{files: map[string]string{
			".prowignore":         "ignored/\n*-skip.yaml\n",
			"a/ok.yaml":           periodicsFile("periodic-ok"),
			"a/x-skip.yaml":       "malformed: [",
			"ignored/bad.yaml":    "malformed: [",
			"nested/.prowignore":  "bad2.yaml\n",
			"nested/bad2.yaml":    "malformed: [",
			"nested/fine.yaml":    periodicsFile("periodic-nested"),
			"elsewhere/bad2.yaml": periodicsFile("periodic-not-ignored"),
		}}},
		{name: "prowignore sorted after files", tree: tree{files: map[string]string{
			"a/.prowignore": "-first.yaml\n",
			"a/-first.yaml": "malformed: [",
			"a/ok.yaml":     periodicsFile("periodic-ok"),
		}}},
		{name: "symlinks", tree: tree{
			files: map[string]string{"a/ok.yaml": periodicsFile("periodic-ok")},
			symlinks: map[string]string{
				"a/link.yaml":   filepath.ToSlash(filepath.Join(outside, "ext.yaml")),
				"linked-dir":    filepath.ToSlash(filepath.Join(outside, "dir")),
				"a/linked.yml":  "ok.yaml.txt",
				"a/ok.yaml.txt": "ok.yaml",
			},
		}, wantErr: `job "periodic-ok" defined twice: periodic a/linked.yml and periodic a/ok.yaml`},
		{name: "symlink to a dir named .yaml", tree: tree{
			files:    map[string]string{"a/ok.yaml": periodicsFile("periodic-ok")},
			symlinks: map[string]string{"d.yaml": filepath.ToSlash(filepath.Join(outside, "dir"))},
		}, wantErr: "is a directory"},
		{name: "dangling symlink", tree: tree{
			files:    map[string]string{"a/ok.yaml": periodicsFile("periodic-ok")},
			symlinks: map[string]string{"a/gone.yaml": "nowhere.yaml"},
		}, wantErr: "gone.yaml"},
		{name: "gzip", tree: tree{files: map[string]string{
			"a/zipped.yaml":   gzipped(t, periodicsFile("periodic-zipped")),
			"a/badzip.yaml":   "\x1f\x8bnot gzip",
			"a/plain.yaml":    periodicsFile("periodic-plain"),
			"a/zipped-2.yaml": gzipped(t, "periodics: ["),
		}}, wantErr: "badzip.yaml"},
		{name: "left to prow's decoding", tree: tree{files: map[string]string{
			"a/flow.yaml":    "periodics: [{name: periodic-flow, labels: {capability/gpu: gpu}, cluster: b01}]\n",
			"a/anchors.yaml": "periodics:\n- name: periodic-anchor\n  labels: &l\n    ci-operator.openshift.io/cloud: gcp\n- name: periodic-alias\n  labels: *l\n- <<: {cluster: b02, agent: jenkins}\n  name: periodic-merged\n",
			"a/case.yaml":    "Periodics:\n- NAME: periodic-case\n  Labels:\n    ci-operator.openshift.io/cluster: b03\n",
			"a/block.yaml":   "periodics:\n- name: periodic-block\n  spec:\n    containers:\n    - args:\n      - |\n        echo hi\n        exit 0\n",
			"a/tabs.yaml":    "periodics:\n- name: periodic-tabs\n  cron: \"\t@daily\"\n",
			"a/crlf.yaml":    "periodics:\r\n- name: periodic-crlf\r\n",
			"a/utf8.yaml":    "periodics:\n- name: periodic-utf8 # é\n",
			"a/docs.yaml":    "---\nperiodics:\n- name: periodic-doc1\n---\nperiodics:\n- name: periodic-doc2\n",
			"a/dupkey.yaml":  "periodics:\n- name: periodic-first\n  name: periodic-second\n",
			"a/wrapped.yaml": "periodics:\n- name: periodic-wrapped\n  labels:\n    ci-operator.openshift.io/cloud: a\n      b\n",
		}}},
		{name: "presets", tree: tree{files: map[string]string{
			"a/one.yaml": "presets:\n- labels:\n    preset-a: \"true\"\n" + periodicsFile("periodic-one"),
			"b/two.yaml": "presets:\n- labels:\n    preset-b: \"true\"\n" + periodicsFile("periodic-two"),
		}}},
		{name: "duplicate presets", tree: tree{files: map[string]string{
			"a/one.yaml": "presets:\n- labels:\n    preset-a: \"true\"\n",
			"b/two.yaml": "presets:\n- labels:\n    preset-a: \"true\"\n",
		}}, wantErr: "duplicated preset 'label:value' pair : preset-a:true"},
		{name: "a label prow refuses", tree: tree{files: map[string]string{
			"a/yes.yaml": "periodics:\n- name: periodic-yes\n  labels:\n    devices.kubevirt.io/kvm: yes\n",
		}}, wantErr: "yes.yaml"},
		{name: "a name prow refuses", tree: tree{files: map[string]string{
			"a/num.yaml": "periodics:\n- name: 12345\n",
		}}, wantErr: "num.yaml"},
		{name: "top level list", tree: tree{files: map[string]string{
			"a/list.yaml": "- name: a\n",
		}}, wantErr: "list.yaml"},
		{name: "no name, no agent", tree: tree{files: map[string]string{
			"a/anon.yaml": "periodics:\n- interval: 1h\n- name: ~\n  agent: ''\n",
		}}, wantErr: `job "" defined twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.tree.write(t, dir)
			checkSameAsProw(t, dir, DefaultLabels())
			if tc.wantErr != "" {
				if _, err := Load(dir, DefaultLabels()); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("want an error with %q, got %v", tc.wantErr, err)
				}
			} else if got, err := Load(dir, DefaultLabels()); err != nil || len(got) == 0 {
				t.Errorf("want jobs, got %d and error %v", len(got), err)
			}
		})
	}
}

// TestLoadSameAsProwReaderOnTrees compares Load with prow's reader on the
// test trees, a generated OpenShift-shaped one, single files and odd roots.
func TestLoadSameAsProwReaderOnTrees(t *testing.T) {
	generated := t.TempDir()
	writeOpenShiftTree(t, generated, 6, 2)
	linkedRoot := filepath.Join(t.TempDir(), "jobs")
	if err := os.Symlink(generated, linkedRoot); err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(t.TempDir(), "jobs.txt")
	writeFile(t, single, periodicsFile("periodic-single"))
	custom := DefaultLabels()
	custom.CapabilityPrefix, custom.Cloud = "ci-operator.openshift.io/", "ci-operator.openshift.io/variant"
	for _, tc := range []struct {
		name   string
		path   string
		labels Labels
	}{
		{"testdata", filepath.Join("testdata", "jobs"), DefaultLabels()},
		{"testdata, zero labels", filepath.Join("testdata", "jobs"), Labels{}},
		{"testdata, trailing slash", filepath.Join("testdata", "jobs") + "/", DefaultLabels()},
		{"duplicates", filepath.Join("testdata", "dup"), DefaultLabels()},
		{"generated", generated, DefaultLabels()},
		{"generated, other labels", generated, custom},
		{"symlinked root", linkedRoot, DefaultLabels()},
		{"symlinked root, trailing slash", linkedRoot + "/", DefaultLabels()},
		{"single file", filepath.Join("testdata", "jobs", "infra", "periodics", "openshift-release-infra-periodics.yaml"), DefaultLabels()},
		{"single file of any name", single, DefaultLabels()},
		{"missing", filepath.Join(t.TempDir(), "absent"), DefaultLabels()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSameAsProw(t, tc.path, tc.labels)
		})
	}
}

// TestLoadIgnoresWhatDispatchDoesNotRead documents where Load knowingly
// differs from prow's reader: it does not decode the fields it does not
// read, so it does not see that they are malformed.
func TestLoadIgnoresWhatDispatchDoesNotRead(t *testing.T) {
	for name, content := range map[string]string{
		"wrong type":     "periodics:\n- name: periodic-a\n  max_concurrency: lots\n",
		"bad quantity":   "periodics:\n- name: periodic-a\n  spec:\n    containers:\n    - resources:\n        requests:\n          cpu: lots\n",
		"bad duration":   "periodics:\n- name: periodic-a\n  decoration_config:\n    timeout: forever\n",
		"wrong top type": "decorate_all_jobs: maybe\nperiodics:\n- name: periodic-a\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "a", "f.yaml"), content)
			if _, err := loadWithProwReader(dir, DefaultLabels()); err == nil {
				t.Fatal("prow's reader took it: the case no longer shows a difference")
			}
			got, err := Load(dir, DefaultLabels())
			if err != nil || len(got) != 1 || got[0].Name != "periodic-a" {
				t.Errorf("got %v, %v", got, err)
			}
		})
	}
}
