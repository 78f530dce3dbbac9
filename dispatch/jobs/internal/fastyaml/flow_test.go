package fastyaml

import "testing"

// TestParseFlowEdgeCases checks the parser against prow's decoder on odd
// flow collections (scalars that start or hold indicators, numbers, keys
// and spacing go-yaml resolves its own way) as a value the parser skips, as
// labels and as a sequence entry.
func TestParseFlowEdgeCases(t *testing.T) {
	taken := 0
	for _, v := range []string{
		"[a, b]: c", "[a]   # c", `["a"b]`, "['a' , 'b']", "{a: b c}", "{a:  b}", "{a : b}", "[a,b]", "{a: b,c: d}", "[0o7, 1_0, 0b1, -0b1, +1, .5, 1e3]",
		"[~x, =, <a, (a), ^a, $a, /a, \\a, ;a, .a, _a, +a]", "[a -]", "[a - b]", "[a -b]", "[a- b]", "[a !b]", "[a &b]", "[a *b]", "[a |b]", "[a >b]",
		"[a %b]", "[a @b]", "[a `b]", "[a 'b]", "[a \"b]", "[a'b']", "[a\"b\"]", "['a'b]", "[\"\"]", "['']", "[' ']", "[\" \"]", "{a: ''}", "{a: \"\"}",
		"{a: b, a: c}", "{.a: b}", "{a.b: c}", "{a/b: c}", "{a-b: c}", "{_a: b}", "{1: a}", "{0x1: a}", "{yes: a}", "{on: a}", "{1.5: a}", "{2024-01-01: a}",
		"[2024-01-01 10:00:00]", "[2024-01-01T10:00:00Z]", "[12:30]", "[y, n, Y, N]", "[a b c d]", "[a    b]", "{a: b  }", "[ a]", "[a ]", "[ ]", "{ }",
		"[-1, -.5, -a, --a]", "[.inf]", "[-.inf]", "[+.inf]", "[.NaN]", "[0x]", "[1__0]", "[_1]", "[1_]", "[1.]", "[.]", "[..]", "[...]", "[---]", "[a...]",
		"{a: [b]}", "[{}]", "[[]]", "{a: {}}", "{a: []}", "[a, {}]",
	} {
		for _, doc := range []string{
			"periodics:\n- name: a\n  x: " + v + "\n",
			"periodics:\n- name: a\n  labels: " + v + "\n",
			"periodics:\n- name: a\n  x:\n  - " + v + "\n",
		} {
			if checkParse(t, []byte(doc)) {
				taken++
			}
		}
	}
	// Most are in the subset: the comparison is not a vacuous one.
	if taken < 100 {
		t.Errorf("took %d files, want most of them", taken)
	}
}
