package config

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// PathMatcher matches job files against a list of group path regexes as
// MatchPath does, but fast: a regex anchored on a literal prefix (such as
// `^openshift/hive/`, the usual form) is only tried on the files that have
// that prefix, so a file costs a few map look-ups plus one match per regex
// that could match it, not one match per regex.
type PathMatcher struct {
	res      []*regexp.Regexp
	always   []int            // regexes without a literal prefix: tried on every file
	byPrefix map[string][]int // literal prefix, without a leading "/" -> regexes, in order
	lengths  []int            // the distinct lengths of the keys of byPrefix, ascending
}

// NewPathMatcher indexes res (nil entries never match).
func NewPathMatcher(res []*regexp.Regexp) *PathMatcher {
	m := &PathMatcher{res: res, byPrefix: map[string][]int{}}
	for i, re := range res {
		if re == nil {
			continue
		}
		p, ok := anchoredPrefix(re.String())
		if !ok {
			m.always = append(m.always, i)
			continue
		}
		// MatchPath also tries "/"+file: a prefix "/x" matches file "x...".
		keys := []string{p}
		if rest, slash := strings.CutPrefix(p, "/"); slash {
			keys = append(keys, rest)
		}
		for _, k := range keys {
			if _, seen := m.byPrefix[k]; !seen && !slices.Contains(m.lengths, len(k)) {
				m.lengths = append(m.lengths, len(k))
			}
			m.byPrefix[k] = append(m.byPrefix[k], i)
		}
	}
	slices.Sort(m.lengths)
	return m
}

// anchoredPrefix returns the literal a regex's matches must start the
// input with (`^abc` -> "abc"); ok is false when it has none.
func anchoredPrefix(pattern string) (string, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpBeginText {
		return "", false
	}
	lit := re.Sub[1]
	if lit.Op != syntax.OpLiteral || lit.Flags&syntax.FoldCase != 0 || len(lit.Rune) == 0 {
		return "", false
	}
	return string(lit.Rune), true
}

// Matches appends to dst the indexes of the regexes that match file (as
// MatchPath decides), ascending, and returns it.
func (m *PathMatcher) Matches(dst []int, file string) []int {
	return m.match(dst, file, false)
}

// First returns the index of the first regex that matches file, or -1.
func (m *PathMatcher) First(file string) int {
	if found := m.match(nil, file, true); len(found) > 0 {
		return found[0]
	}
	return -1
}

func (m *PathMatcher) match(dst []int, file string, first bool) []int {
	cand := slices.Clone(m.always)
	for _, n := range m.lengths {
		if n > len(file) {
			break
		}
		cand = append(cand, m.byPrefix[file[:n]]...)
	}
	slices.Sort(cand)
	cand = slices.Compact(cand)
	slashed := ""
	for _, i := range cand {
		re := m.res[i]
		if !re.MatchString(file) {
			if slashed == "" {
				slashed = "/" + file
			}
			if !re.MatchString(slashed) {
				continue
			}
		}
		dst = append(dst, i)
		if first {
			break
		}
	}
	return dst
}
