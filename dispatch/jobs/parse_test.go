package jobs

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	prowconfig "sigs.k8s.io/prow/pkg/config"
	"sigs.k8s.io/yaml"
)

// fastParse runs the fast parser alone on data, as file f.yaml.
func fastParse(data []byte, labels Labels) ([]Job, bool) {
	r := newFileReader(".", labels)
	jobs, ok := r.parser.parse(data, r, "f.yaml")
	if !ok {
		return nil, false
	}
	jobs = append([]Job(nil), jobs...)
	sortFully(jobs)
	return jobs, true
}

// sortFully sorts jobs by all they hold, so that jobs of the same name in one
// file come in one order.
func sortFully(jobs []Job) {
	slices.SortFunc(jobs, func(a, b Job) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
}

// prowParse decodes data as prow's yamlToConfig does and builds its jobs as
// the old Load did, sorted; it also returns the label keys it saw.
func prowParse(data []byte, labels Labels) ([]Job, []string, error) {
	var jc prowconfig.JobConfig
	if err := yaml.Unmarshal(data, &jc); err != nil {
		return nil, nil, err
	}
	var jobs []Job
	var keys []string
	seen := map[string]bool{}
	eachJob(&jc, func(t Type, base prowconfig.JobBase) {
		jobs = append(jobs, labels.jobOf(t, base, "f.yaml"))
		for k := range base.Labels {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	})
	sortFully(jobs)
	return jobs, keys, nil
}

// The fields of prow's job config that dispatch reads, nested the same way:
// decoding into these fails when something dispatch reads is malformed, and
// not for the other fields.
type (
	minimalBase struct {
		Name    string            `json:"name"`
		Labels  map[string]string `json:"labels,omitempty"`
		Agent   string            `json:"agent,omitempty"`
		Cluster string            `json:"cluster,omitempty"`
	}
	minimalJob    struct{ minimalBase }
	minimalConfig struct {
		Presets []struct {
			Labels map[string]string `json:"labels"`
		} `json:"presets,omitempty"`
		Presubmits  map[string][]minimalJob `json:"presubmits,omitempty"`
		Postsubmits map[string][]minimalJob `json:"postsubmits,omitempty"`
		Periodics   []minimalJob            `json:"periodics,omitempty"`
	}
)

// checkFastParse fails t when the fast parser takes data and reads other
// jobs from it than prow does, or takes data that prow refuses for what
// dispatch reads.
func checkFastParse(t *testing.T, data []byte) (taken bool) {
	t.Helper()
	got, ok := fastParse(data, DefaultLabels())
	if !ok {
		return false
	}
	want, keys, err := prowParse(data, DefaultLabels())
	if err != nil {
		if minErr := yaml.Unmarshal(data, &minimalConfig{}); minErr != nil {
			t.Fatalf("fast parser took what prow refuses: %v\n%s", minErr, data)
		}
		// Prow refuses something dispatch does not read (see Load).
		return true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("fast parser differs from prow (-prow +fast):\n%s\n%s", diff, data)
	}
	// Requirements keep only some label values: compare each label's
	// value by making it the cloud label.
	for _, k := range keys {
		labels := Labels{Cloud: k}
		got, _ := fastParse(data, labels)
		want, _, _ := prowParse(data, labels)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("label %q: fast parser differs from prow (-prow +fast):\n%s\n%s", k, diff, data)
		}
	}
	return true
}

// parseCases are job files for the fast parser; taken says whether it reads
// them itself rather than leave them to prow's decoding.
var parseCases = []struct {
	name  string
	data  string
	taken bool
}{
	{"empty", "", true},
	{"comments only", "# nothing\n\n  # here\n", true},
	{"null sections", "presubmits:\npostsubmits: ~\nperiodics: null\n", true},
	{"empty sections", "presubmits: {}\npostsubmits: {} # none\nperiodics: []\n", true},
	{"unknown top-level keys", "foo: bar\nprow_ignored:\n  a: [1, 2]\n", false},
	{"unknown top-level keys, plain", "foo: bar\nprow_ignored:\n  a:\n  - 1\n  - b: c\n", true},
	{"presubmit", `presubmits:
  org/repo:
  - name: pull-a
    agent: kubernetes
    cluster: build01
    always_run: true
    branches:
    - ^main$
    labels:
      capability/arm64: arm64
      ci-operator.openshift.io/cloud: aws
      devices.kubevirt.io/kvm: "true"
    spec:
      containers:
      - args:
        - --target=e2e
        - --foo=bar # comment
        command: [ci-operator]
`, false},
	{"presubmit, block sequences", `presubmits:
  org/repo:
    - name: pull-a
      agent: kubernetes
      cluster: build01
      branches:
        - ^main$
      labels:
        capability/arm64: arm64
        ci-operator.openshift.io/cloud: aws
        devices.kubevirt.io/kvm: "true"
        ci-operator.openshift.io/cluster: 'build05'
      spec:
        containers:
        - args:
          - --target=e2e
          - --foo=bar # comment
          command:
          - ci-operator
          resources: {}
    - name: "pull-b"
      agent: ''
      cluster:
      labels:
  other/repo: []
  third/repo:
postsubmits:
  org/repo:
  - name: branch-a
    labels: {}
periodics:
- name: periodic-a
  agent: jenkins
  cron: 0 0 * * *
  extra_refs:
  - org: org
    repo: repo
    base_ref: main
- name: periodic-b
  labels:
    ci.openshift.io/no-builds: 'it''s true'
    dptp.openshift.io/ssh-bastion: ""
`, true},
	{"quoted and odd plain values", `periodics:
- name: a.b-c_d
  cluster: build01 # pinned
  labels:
    l0: "a: b"
    l1: 'a # b'
    l2: a#b
    l3: http://x:80/y
    l4: 2024-01-02
    l5: ~x
    l6: =
    l7: (?m)^/test( | .* )e2e,?($|\s.*)
    l8: --target=e2e
    l9: "null"
    l10: null
  spec:
    n: 1_000
    m: 0x1F
    l: yes
    k: 1e3
`, true},
	{"tab", "periodics:\n- name: a\n\tagent: x\n", false},
	{"CRLF", "periodics:\r\n- name: a\r\n", false},
	{"non-ASCII", "periodics:\n- name: a # café\n", false},
	{"document marker", "---\nperiodics:\n- name: a\n", false},
	{"second document", "periodics:\n- name: a\n---\nperiodics:\n- name: b\n", false},
	{"anchor and alias", "periodics:\n- name: a\n  labels: &l\n    x: y\n- name: b\n  labels: *l\n", false},
	{"merge key", "periodics:\n- name: a\n  <<: {cluster: x}\n", false},
	{"flow sequence", "periodics:\n- name: a\n  branches: [main]\n", false},
	{"block scalar", "periodics:\n- name: a\n  args:\n  - |\n    echo hi\n", false},
	{"multi-line plain scalar", "periodics:\n- name: a\n  trigger: foo\n    bar\n", false},
	{"multi-line plain name", "periodics:\n- name: a\n\n   b\n", false},
	{"multi-line quoted", "periodics:\n- name: 'a\n    b'\n", false},
	{"escapes in double quotes", "periodics:\n- name: \"a\\tb\"\n", false},
	{"tag", "periodics:\n- name: !!str a\n", false},
	{"name differs in case", "periodics:\n- Name: a\n", false},
	{"labels differ in case", "periodics:\n- name: a\n  LABELS:\n    x: y\n", false},
	{"section differs in case", "Periodics:\n- name: a\n", false},
	{"presets", "presets:\n- labels:\n    x: y\n", false},
	{"duplicate name", "periodics:\n- name: a\n  name: b\n", false},
	{"duplicate label", "periodics:\n- name: a\n  labels:\n    x: y\n    x: z\n", false},
	{"duplicate repo", "presubmits:\n  o/r:\n  - name: a\n  o/r:\n  - name: b\n", false},
	{"duplicate section", "periodics:\n- name: a\nperiodics:\n- name: b\n", false},
	{"duplicate unread key", "periodics:\n- name: a\n  cron: x\n  cron: y\n", true},
	{"boolean label value", "periodics:\n- name: a\n  labels:\n    x: true\n", false},
	{"yes label value", "periodics:\n- name: a\n  labels:\n    x: yes\n", false},
	{"number name", "periodics:\n- name: 123\n", false},
	{"on label key", "periodics:\n- name: a\n  labels:\n    on: x\n", false},
	{"number repo", "presubmits:\n  123:\n  - name: a\n", false},
	{"null key", "periodics:\n- name: a\n  null: x\n", false},
	{"NaN", "periodics:\n- name: a\n  x: .nan\n", false},
	{"scalar root", "foo\n", false},
	{"sequence root", "- name: a\n", false},
	{"indented root", "  periodics:\n  - name: a\n", false},
	{"presubmits is a list", "presubmits:\n- name: a\n", false},
	{"presubmits is an empty list", "presubmits: []\n", false},
	{"periodics is a map", "periodics:\n  name: a\n", false},
	{"job is a scalar", "periodics:\n- a\n", false},
	{"labels is a list", "periodics:\n- name: a\n  labels:\n  - x\n", false},
	{"name is a map", "periodics:\n- name:\n    x: y\n", false},
	{"bare dash", "periodics:\n-\n  name: a\n", false},
	{"nested sequence", "periodics:\n- - name: a\n", false},
	{"mapping in a value", "periodics:\n- name: a: b\n", false},
	{"value ending in a colon", "periodics:\n- name: a:\n", false},
	{"key without a space", "periodics:\n- name:a\n", false},
	{"bad indentation", "periodics:\n- name: a\n   agent: b\n", false},
	{"bad dedent", "periodics:\n  - name: a\n    spec:\n      x: y\n   z: w\n", false},
	{"dash at a mapping's column", "periodics:\n- name: a\n  - x\n", false},
	{"unclosed quote", "periodics:\n- name: 'a\n", false},
	{"text after a quote", "periodics:\n- name: 'a' b\n", false},
	{"indicator start", "periodics:\n- name: a\n  x: @y\n", false},
	{"long key", "periodics:\n- name: a\n  " + strings.Repeat("k", 1100) + ": v\n", false},
}

func TestFastParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			if taken := checkFastParse(t, []byte(tc.data)); taken != tc.taken {
				t.Errorf("taken %v, want %v", taken, tc.taken)
			}
		})
	}
}

// TestFastParseTakesPlainFiles checks that the fast parser, not prow's
// decoding, reads the test job files and the generated OpenShift-shaped ones.
func TestFastParseTakesPlainFiles(t *testing.T) {
	dir := t.TempDir()
	writeOpenShiftTree(t, dir, 2, 2)
	for _, root := range []string{filepath.Join("testdata", "jobs"), filepath.Join("testdata", "dup"), dir} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !checkFastParse(t, data) {
				t.Errorf("%s: left to prow's decoding", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzFastParse checks that whatever the fast parser takes, it reads as prow
// does.
func FuzzFastParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.data))
	}
	for _, path := range []string{
		filepath.Join("testdata", "jobs", "openshift", "origin", "openshift-origin-main-presubmits.yaml"),
		filepath.Join("testdata", "jobs", "infra", "periodics", "openshift-release-infra-periodics.yaml"),
	} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	var b strings.Builder
	writeBenchPresubmit(&b, "org", "repo", "main", 1, 1)
	f.Add([]byte("presubmits:\n  org/repo:\n" + b.String()))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastParse(t, data)
	})
}

// randomJobFile writes a random job file built from the keys, scalars and
// layouts that matter to the fast parser, valid or not.
func randomJobFile(rng *rand.Rand) []byte {
	// odd tells whether to make one of the odd choices, which are more
	// frequent in some files than in others.
	oddness := []int{0, 50, 10}[rng.IntN(3)]
	odd := func() bool { return oddness > 0 && rng.IntN(oddness) == 0 }
	keys := []string{"name", "agent", "cluster", "labels", "spec", "cron", "branches", "a/b.c_d-e", ".x", "_x", "x",
		"-x", "Name", "NAME", "Labels", "aGent", "y", "on", "no", "null", "1", "1.5", "0x1", "~", "<<", "'q'", "\"name\"", "a b"}
	scalars := []string{"a", "build01", "kubernetes", "jenkins", "a.b", "x-y_z", `""`, "''", "--x=y", "^main$", "=",
		"yes", "no", "true", "False", "~", "null", "Null",
		`'it''s'`, `"a: b"`, "a: b", "1", "0x1F", "1_0", "0o7", "0b1", ".5", "+1", "-1", ".nan", "-.inf", "2024-01-01",
		"2024-01-01T00:00:00Z", "--x=y", "- x", "-", "[]", "{}", "[a]", "{a: b}", "|", ">-", "&a x", "*a", "!!str x",
		`"a\tb"`, "# c", "a # c", "a#c", "?x", ":x", "%x", "@x", "`x", "<<", "=", "~x", "a:", "a:b", "(?m)^/test( | .* )e,?($|\\s.*)",
		"'a", `"a`, "'a' b", "x y z", "^main$", "1e3", "123", "-0b1", "0b", "1:2", "12:30", ".", "..."}
	sp := func(n int) string { return strings.Repeat(" ", n) }
	var b strings.Builder
	line := func(ind int, s string) {
		b.WriteString(sp(ind))
		b.WriteString(s)
		if rng.IntN(20) == 0 {
			b.WriteString(" # c")
		}
		b.WriteByte('\n')
		switch rng.IntN(30) {
		case 0:
			b.WriteString("\n")
		case 1:
			b.WriteString(sp(rng.IntN(8)) + "# comment\n")
		}
	}
	// pick mostly picks among the first few, which the fast parser takes.
	pick := func(xs []string) string {
		if !odd() {
			return xs[rng.IntN(min(len(xs), 11))]
		}
		return xs[rng.IntN(len(xs))]
	}
	var value func(ind, depth int, key string)
	// block writes a nested block under a key at ind.
	block := func(ind, depth int) {
		nind := ind + 1 + rng.IntN(3)
		if odd() {
			nind = ind + rng.IntN(5) - 2
		}
		if nind < 0 {
			nind = 0
		}
		if rng.IntN(2) == 0 {
			for range 1 + rng.IntN(3) {
				k := pick(keys)
				b.WriteString(sp(nind) + k + ":")
				value(nind, depth+1, k)
			}
			return
		}
		if rng.IntN(2) == 0 {
			nind = ind // a sequence may sit at its key's column
		}
		for range 1 + rng.IntN(3) {
			if rng.IntN(2) == 0 {
				line(nind, "- "+pick(scalars))
				continue
			}
			k, dashSp := pick(keys), 1+rng.IntN(2)
			b.WriteString(sp(nind) + "-" + sp(dashSp) + k + ":")
			value(nind+1+dashSp, depth+1, k)
		}
	}
	value = func(ind, depth int, key string) {
		nested := rng.IntN(3) == 0
		if depth == 1 && (key == "name" || key == "agent" || key == "cluster") {
			nested = odd()
		}
		if depth > 4 || !nested {
			line(0, " "+pick(scalars))
			return
		}
		b.WriteString("\n")
		block(ind, depth)
	}
	job := func(ind int) {
		sep := sp(1 + rng.IntN(2))
		first := true
		for _, k := range []string{"name", "agent", "cluster", "labels", "spec", "x"} {
			if odd() {
				k = pick(keys)
			}
			if rng.IntN(5) == 0 {
				continue
			}
			prefix := sp(len(sep) + 1)
			if first {
				prefix = "-" + sep
				first = false
			}
			if k == "labels" && !odd() {
				b.WriteString(sp(ind) + prefix + "labels:\n")
				for range rng.IntN(4) {
					lk := pick([]string{"ci-operator.openshift.io/cloud", "capability/arm64", "devices.kubevirt.io/kvm", "ci-operator.openshift.io/cluster", "x", "z", "a.b", "c/d", "e-f", "g_h", "capability/", "y", "on", "1", "null"})
					line(ind+len(sep)+3, lk+": "+pick(scalars))
				}
				continue
			}
			b.WriteString(sp(ind) + prefix + k + ":")
			value(ind+len(sep)+1, 1, k)
		}
		if first {
			line(ind, "- name: "+pick(scalars))
		}
	}
	for _, section := range []string{"presubmits", "postsubmits", "periodics", "other"} {
		if rng.IntN(3) == 0 {
			continue
		}
		if odd() {
			section = []string{"Periodics", "presets", "periodics"}[rng.IntN(3)]
		}
		b.WriteString(section + ":\n")
		switch section {
		case "presubmits", "postsubmits":
			for range 1 + rng.IntN(2) {
				line(2, pick([]string{"org/repo", "org/other", "org/repo", "org/a", "org/b", "org/c", "org/d", "org/e", "org/f", "org/g", "org/h", "on", "1"})+":")
				ind := 2 + 2*rng.IntN(2)
				for range 1 + rng.IntN(3) {
					job(ind)
				}
			}
		case "periodics":
			ind := 2 * rng.IntN(2)
			for range 1 + rng.IntN(3) {
				job(ind)
			}
		default:
			block(0, 1)
		}
	}
	return []byte(b.String())
}

// TestFastParseRandom checks the fast parser against prow on random job
// files shaped to hit its edge cases.
func TestFastParseRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, taken := 3000, 0
	if testing.Short() {
		n = 300
	}
	for range n {
		if checkFastParse(t, randomJobFile(rng)) {
			taken++
		}
	}
	if taken < n/10 {
		t.Errorf("took only %d of %d files", taken, n)
	}
	t.Logf("took %d of %d files", taken, n)
}
