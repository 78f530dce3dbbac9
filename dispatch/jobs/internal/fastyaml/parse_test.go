package fastyaml

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	prowconfig "sigs.k8s.io/prow/pkg/config"
	"sigs.k8s.io/yaml"
)

// record is what a test compares of one job.
type record struct {
	Section              Section
	Name, Agent, Cluster string
	Labels               map[string]string
}

// sortRecords sorts records by all they hold, so that the jobs of a file
// come in one order whatever the order of its repos.
func sortRecords(rs []record) {
	slices.SortFunc(rs, func(a, b record) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
}

// fastParse runs the parser on data and returns the records of its jobs.
func fastParse(data []byte) ([]record, bool) {
	var p Parser
	jobs, ok := p.Parse(data)
	if !ok {
		return nil, false
	}
	var rs []record
	for _, j := range jobs {
		r := record{Section: j.Section, Name: string(j.Name), Agent: string(j.Agent), Cluster: string(j.Cluster)}
		for _, kv := range j.Labels {
			if r.Labels == nil {
				r.Labels = map[string]string{}
			}
			r.Labels[string(kv[0])] = string(kv[1])
		}
		rs = append(rs, r)
	}
	sortRecords(rs)
	return rs, true
}

// prowParse decodes data as prow's yamlToConfig does and returns the records
// of its jobs.
func prowParse(data []byte) ([]record, error) {
	var jc prowconfig.JobConfig
	if err := yaml.Unmarshal(data, &jc); err != nil {
		return nil, err
	}
	var rs []record
	add := func(s Section, base prowconfig.JobBase) {
		r := record{Section: s, Name: base.Name, Agent: base.Agent, Cluster: base.Cluster}
		if len(base.Labels) > 0 {
			r.Labels = base.Labels
		}
		rs = append(rs, r)
	}
	for _, ps := range jc.PresubmitsStatic {
		for _, p := range ps {
			add(Presubmits, p.JobBase)
		}
	}
	for _, ps := range jc.PostsubmitsStatic {
		for _, p := range ps {
			add(Postsubmits, p.JobBase)
		}
	}
	for _, p := range jc.Periodics {
		add(Periodics, p.JobBase)
	}
	sortRecords(rs)
	return rs, nil
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

// checkParse fails t when the parser takes data and reads other jobs from it
// than prow's decoder does, or takes data that prow refuses for what
// dispatch reads.
func checkParse(t *testing.T, data []byte) (taken bool) {
	t.Helper()
	got, ok := fastParse(data)
	if !ok {
		return false
	}
	want, err := prowParse(data)
	if err != nil {
		if minErr := yaml.Unmarshal(data, &minimalConfig{}); minErr != nil {
			t.Fatalf("fast parser took what prow refuses: %v\n%s", minErr, data)
		}
		// Prow refuses something dispatch does not read (see jobs.Load).
		return true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("fast parser differs from prow (-prow +fast):\n%s\n%s", diff, data)
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
	{"unknown top-level keys", "foo: bar\nprow_ignored:\n  a: [1, 2]\n", true},
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
`, true},
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
	{"merge key in a flow mapping", "periodics:\n- name: a\n  x: {<<: {cluster: x}}\n", false},
	{"flow sequence", "periodics:\n- name: a\n  branches: [main]\n", true},
	{"flow styles", `presubmits:
  org/repo:
  - name: pull-a
    branches: [^main$, '^release-4\.1[0-9]$', 'it''s']
    labels: {capability/arm64: arm64, ci-operator.openshift.io/cloud: "aws", devices.kubevirt.io/kvm: 'true', x: ~}
    spec:
      containers:
      - args: ["--target=e2e", '--a=b', --c=d, "", '']
        command: [ci-operator] # comment
        resources: {requests: 1, limits: [2]}
        env: [ {name: a} ]
        x: [ a ,b , c d ]
        y: [1, 0x1F, 1.5, yes, null, ~, true, 2024-01-02]
        z: {1: a, 1.5: b, true: c, x: null}
postsubmits:
  org/repo: []
periodics:
- {name: periodic-a}
`, false},
	{"flow styles, no nesting", `presubmits:
  org/repo:
  - name: pull-a
    branches: [^main$, '^release-4\.1[0-9]$', 'it''s']
    labels: {capability/arm64: arm64, ci-operator.openshift.io/cloud: "aws", devices.kubevirt.io/kvm: 'true', x: ~}
    spec:
      containers:
      - args: ["--target=e2e", '--a=b', --c=d, "", '']
        command: [ci-operator] # comment
        resources: {requests: 1, limits: 2}
        x: [ a ,b , c d ]
        y: [1, 0x1F, 1.5, yes, null, ~, true, 2024-01-02]
        z: {1: a, 1.5: b, true: c, x: null}
        w: [a  b, a'b, a"b, a!b, a*b, a&b, a|b, a>b, a%b, a@b, a-b, -a, a -b, (a)]
postsubmits:
  org/repo: []
periodics:
- name: periodic-a
  labels: {}
- name: periodic-b
  labels: { }
  x: [ ]
`, true},
	{"commas and colons in quotes", "periodics:\n- name: a\n  labels: {x: 'a, b', u: \"c: d\", z: '}', w: \"]\", v: '#'}\n  args: ['a, b', \"c: d\", '[', \"{\", 'x'' y']\n", true},
	{"flow labels, quoted key", "periodics:\n- name: a\n  labels: {\"x\": y}\n", false},
	{"flow labels, number key", "periodics:\n- name: a\n  labels: {1: y}\n", false},
	{"flow labels, bool value", "periodics:\n- name: a\n  labels: {x: true}\n", false},
	{"flow labels, duplicate key", "periodics:\n- name: a\n  labels: {x: y, x: z}\n", false},
	{"flow labels, YAML 1.1 bool key", "periodics:\n- name: a\n  labels: {y: x}\n", false},
	{"flow labels, list", "periodics:\n- name: a\n  labels: [x]\n", false},
	{"flow name", "periodics:\n- name: [a]\n", false},
	{"flow job list", "periodics: [{name: a}]\n", false},
	{"flow repos", "presubmits: {o/r: []}\n", false},
	{"nested flow sequence", "periodics:\n- name: a\n  x: [a, [b]]\n", false},
	{"nested flow mapping", "periodics:\n- name: a\n  x: {a: {b: c}}\n", false},
	{"flow mapping in a sequence", "periodics:\n- name: a\n  x: [{a: b}]\n", false},
	{"multi-line flow", "periodics:\n- name: a\n  x: [a,\n    b]\n", false},
	{"trailing comma", "periodics:\n- name: a\n  x: [a, ]\n", false},
	{"empty entry", "periodics:\n- name: a\n  x: [a, , b]\n", false},
	{"unclosed flow", "periodics:\n- name: a\n  x: [a, b\n", false},
	{"text after a flow", "periodics:\n- name: a\n  x: [a] b\n", false},
	{"comment in a flow", "periodics:\n- name: a\n  x: [a #b]\n", false},
	{"colon in a flow scalar", "periodics:\n- name: a\n  x: [http://x]\n", false},
	{"flow mapping without a space", "periodics:\n- name: a\n  x: {a:b}\n", false},
	{"flow mapping key without a value", "periodics:\n- name: a\n  x: {a, b: c}\n", false},
	{"flow mapping empty value", "periodics:\n- name: a\n  x: {a: , b: c}\n", false},
	{"flow null key", "periodics:\n- name: a\n  x: {~: a}\n", false},
	{"flow NaN", "periodics:\n- name: a\n  x: [.nan]\n", false},
	{"flow dash", "periodics:\n- name: a\n  x: [-, - a]\n", false},
	{"flow alias", "periodics:\n- name: a\n  x: [*a]\n", false},
	{"flow escapes", "periodics:\n- name: a\n  x: [\"a\\\"b\"]\n", false},
	{"flow single-pair mapping", "periodics:\n- name: a\n  x: [a: b]\n", false},
	{"flow explicit key", "periodics:\n- name: a\n  x: [? a]\n", false},
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

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			if taken := checkParse(t, []byte(tc.data)); taken != tc.taken {
				t.Errorf("taken %v, want %v", taken, tc.taken)
			}
		})
	}
}

// FuzzParse checks that whatever the parser takes, it reads as prow's
// decoder does.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.data))
	}
	for _, path := range []string{
		filepath.Join("..", "..", "testdata", "jobs", "openshift", "origin", "openshift-origin-main-presubmits.yaml"),
		filepath.Join("..", "..", "testdata", "jobs", "infra", "periodics", "openshift-release-infra-periodics.yaml"),
	} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, data)
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
	// flowScalars are scalars for flow collections, the first few in the
	// subset the parser takes.
	flowScalars := []string{"a", "build01", "ci-operator", `"--a=b"`, "'--c'", `"a, b"`, "'c: d'", `"]"`, "'}'", "x y", "''",
		"a:b", "a: b", "a #b", "a#b", "?a", "a?b", "-", "- a", "-a", "[a]", "{a: b}", "[]", "{}", "*a", "&a b", "!!str a", ",", "",
		`"a\"b"`, "'a''b'", "'", `"`, "yes", "~", "null", ".nan", "1", "0x1F", "2024-01-01", "http://x", "a]", "a}", "a[b", "<<"}
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
	// flow writes a one-line flow sequence or mapping of scalars, or, when
	// odd, one with odd entries, nested or with odd separators.
	flow := func(isMap bool) string {
		open, end := "[", "]"
		if isMap {
			open, end = "{", "}"
		}
		var items []string
		for range rng.IntN(4) {
			item := pick(flowScalars)
			if odd() {
				item = pick(scalars)
			}
			if isMap {
				sep := ": "
				if odd() {
					sep = []string{":", " : ", ":  "}[rng.IntN(3)]
				}
				item = pick(keys) + sep + item
			}
			items = append(items, item)
		}
		sep := []string{", ", ",", " , "}[rng.IntN(3)]
		if odd() {
			sep = []string{" ", ",, ", "\n  "}[rng.IntN(3)]
		}
		s := open + strings.Join(items, sep) + end
		if odd() {
			s = open + strings.Join(items, sep) + []string{", ", ",", "", " "}[rng.IntN(4)] + end
		}
		return s
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
			if (depth > 1 || key != "name" && key != "agent" && key != "cluster" || odd()) && rng.IntN(4) == 0 {
				line(0, " "+flow(rng.IntN(2) == 0))
				return
			}
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
			if k == "labels" && rng.IntN(4) == 0 {
				line(ind, prefix+"labels: "+flow(!odd()))
				continue
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

// TestParseRandom checks the parser against prow's decoder on random job
// files shaped to hit its edge cases.
func TestParseRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, taken := 3000, 0
	if testing.Short() {
		n = 300
	}
	// A flow collection of one or more entries.
	flows := regexp.MustCompile(`: [[{][^]}]`)
	tookFlows := 0
	for range n {
		data := randomJobFile(rng)
		if checkParse(t, data) {
			taken++
			if flows.Match(data) {
				tookFlows++
			}
		}
	}
	if taken < n/10 || tookFlows < n/20 {
		t.Errorf("took only %d of %d files, %d with flow collections", taken, n, tookFlows)
	}
	t.Logf("took %d of %d files, %d with flow collections", taken, n, tookFlows)
}
