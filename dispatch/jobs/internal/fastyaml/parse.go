// Package fastyaml reads the name, agent, cluster and labels of the jobs of
// a Prow job config file without decoding the file in full. It takes a plain
// subset of YAML and says when a file is outside it, so that the caller
// decodes that file with prow's decoder instead.
package fastyaml

import (
	"bytes"
	"regexp"
	"strconv"
	"time"
)

// Section is the part of a job config a job is listed in.
type Section uint8

// The sections of a job config.
const (
	Presubmits Section = iota
	Postsubmits
	Periodics
)

// Job is what Parse reads of one job. Its byte slices point into the parsed
// data or the parser's buffers: they are valid until the parser's next Parse.
type Job struct {
	Section Section
	// Name, Agent and Cluster are nil when absent or null.
	Name, Agent, Cluster []byte
	// Labels are the job's labels as key and value pairs in file order; a
	// null value is nil.
	Labels [][2][]byte
}

// Parser reads job files. It takes only a plain subset of YAML, the one
// prowgen and most people write: printable ASCII, spaces for indentation,
// block mappings and sequences, keys made of letters, digits and "_./-",
// one-line plain and quoted scalars, one-line flow sequences and flow
// mappings of such scalars ("[a, 'b']", "{a: b}", "[]", "{}"), comments.
// For a file in that subset it knows exactly what go-yaml v2 and
// encoding/json, which prow's reader uses, make of the name, agent, cluster
// and labels of each job, and it checks that the rest is well-formed YAML.
// Anything else (tabs, multi-line or block scalars, nested or multi-line
// flow collections, anchors, aliases, tags, several documents, non-ASCII
// text, keys that differ from a known field only in case, duplicate keys,
// values of the wrong type where dispatch reads them, presets) makes it give
// up, and the file must go through prow's decoding instead.
//
// The zero Parser is ready; it is not safe for concurrent use, and reusing
// one saves allocations.
type Parser struct {
	buf  []byte
	next int    // offset of the line after the current one
	ind  int    // indentation of the current line; -1 at the end of the file
	text []byte // current line after its indentation, trailing spaces cut

	jobs   []Job
	labels [][2][]byte // the labels of all jobs, each job's a slice of it
	pairs  []flowPair  // the entries of the last flow mapping read
}

// flowPair is an entry of a flow mapping: its key, and its value's kind and
// string value.
type flowPair struct {
	key, value []byte
	kind       int
}

// giveUp is the panic value that ends parsing a file the parser does not take.
type giveUp struct{}

// fail gives up on the file.
func (p *Parser) fail() { panic(giveUp{}) }

// Parse returns the jobs of the job file data in file order, and true; or
// nil and false when data is outside the subset the parser takes. The jobs
// are valid until the next call.
func (p *Parser) Parse(data []byte) (jobs []Job, ok bool) {
	for _, c := range data {
		if (c < 0x20 || c > 0x7e) && c != '\n' {
			return nil, false
		}
	}
	*p = Parser{buf: data, jobs: p.jobs[:0], labels: p.labels[:0], pairs: p.pairs[:0]}
	defer func() {
		if v := recover(); v != nil {
			if _, is := v.(giveUp); !is {
				panic(v)
			}
			jobs, ok = nil, false
		}
	}()
	p.document()
	return p.jobs, true
}

// advance moves to the next line that is neither blank nor only a comment.
func (p *Parser) advance() {
	for p.next < len(p.buf) {
		line := p.buf[p.next:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
			p.next += i + 1
		} else {
			p.next = len(p.buf)
		}
		ind := 0
		for ind < len(line) && line[ind] == ' ' {
			ind++
		}
		if ind == len(line) || line[ind] == '#' {
			continue
		}
		if ind == 0 && (bytes.HasPrefix(line, []byte("---")) || bytes.HasPrefix(line, []byte("..."))) {
			// Document markers.
			p.fail()
		}
		end := len(line)
		for line[end-1] == ' ' {
			end--
		}
		p.ind, p.text = ind, line[ind:end]
		return
	}
	p.ind, p.text = -1, nil
}

// The fields of the job config that dispatch reads. encoding/json matches
// keys to fields regardless of case, so a key that differs from one of
// these only in case is left to prow's decoding.
var (
	topFields = []string{"presubmits", "postsubmits", "periodics", "presets"}
	jobFields = []string{"name", "agent", "cluster", "labels"}
)

// foldsTo tells whether key equals one of fields but for case.
func foldsTo(key []byte, fields []string) bool {
	for _, f := range fields {
		if len(f) == len(key) && bytes.EqualFold(key, []byte(f)) {
			return true
		}
	}
	return false
}

// document parses the whole file: nothing, or a mapping at column 0.
func (p *Parser) document() {
	p.advance()
	if p.ind < 0 {
		return
	}
	if p.ind != 0 {
		p.fail()
	}
	var seen [3]bool
	once := func(i int) {
		if seen[i] {
			p.fail()
		}
		seen[i] = true
	}
	p.mapping(0, p.text, func(key, rest []byte) {
		switch string(key) {
		case "presubmits":
			once(0)
			p.repos(0, rest, Presubmits)
		case "postsubmits":
			once(1)
			p.repos(0, rest, Postsubmits)
		case "periodics":
			once(2)
			p.jobList(0, rest, Periodics)
		default:
			if foldsTo(key, topFields) {
				p.fail()
			}
			p.skipValue(0, rest)
		}
	})
	if p.ind >= 0 {
		p.fail()
	}
}

// mapping parses a block mapping at column col whose first entry is on the
// current line, with first its text from the key on. handle gets each key
// and the rest of its line and must consume the value.
func (p *Parser) mapping(col int, first []byte, handle func(key, rest []byte)) {
	text := first
	for {
		key, rest := keyLine(text)
		if key == nil || resolvePlain(key) == plainNull {
			// Not a key, or a null key, which prow cannot convert to JSON.
			p.fail()
		}
		handle(key, rest)
		if p.ind != col {
			if p.ind > col {
				p.fail()
			}
			return
		}
		text = p.text
	}
}

// keyLine splits "key: rest" or "key:" into the key and the rest, after the
// spaces and without a comment; key is nil when text is not such a line.
func keyLine(text []byte) (key, rest []byte) {
	i := 0
	for i < len(text) && isKeyByte(text[i]) {
		i++
	}
	if i == 0 || i >= 1024 || i == len(text) || text[i] != ':' || text[0] == '-' {
		return nil, nil
	}
	if i+1 < len(text) && text[i+1] != ' ' {
		return nil, nil
	}
	rest = text[i+1:]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] == '#' {
		rest = nil
	}
	return text[:i], rest
}

// isKeyByte tells whether c may be in a key of the subset.
func isKeyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '/' || c == '-'
}

// isDash tells whether text starts a sequence entry.
func isDash(text []byte) bool {
	return len(text) > 0 && text[0] == '-' && (len(text) == 1 || text[1] == ' ')
}

// The kinds of inline value.
const (
	inlineNull = iota
	inlineString
	inlineOther // a bool or a number
	inlineEmptySeq
	inlineEmptyMap
	inlineFlowSeq // a flow sequence of scalars
	inlineFlowMap // a flow mapping of scalars, its entries in p.pairs
)

// inline parses the value rest on the current line, owned by a key or a
// sequence dash at column col, and moves past the line; the next line must
// not be deeper than col, where YAML would continue a plain scalar. For a
// string it returns its value.
func (p *Parser) inline(col int, rest []byte) (kind int, value []byte) {
	switch rest[0] {
	case '[', '{':
		kind = p.flow(rest)
	default:
		var n int
		kind, value, n = scalarValue(rest, false)
		if kind >= 0 && !commentOrEnd(rest[n:]) {
			kind = -1
		}
	}
	if kind < 0 {
		p.fail()
	}
	p.advance()
	if p.ind > col {
		p.fail()
	}
	return kind, value
}

// flow parses a flow collection of scalars that takes the rest of the line,
// rest from its opening bracket on, and returns its kind, or -1 when it is
// outside the subset. The entries of a mapping go to p.pairs.
func (p *Parser) flow(rest []byte) (kind int) {
	isMap, end := rest[0] == '{', byte(']')
	if isMap {
		end = '}'
	}
	p.pairs = p.pairs[:0]
	s := trimSpaces(rest[1:])
	if len(s) > 0 && s[0] == end {
		if !commentOrEnd(s[1:]) {
			return -1
		}
		if isMap {
			return inlineEmptyMap
		}
		return inlineEmptySeq
	}
	for {
		var key []byte
		if isMap {
			// A plain key, as keyLine takes them, then ": ".
			i := 0
			for i < len(s) && isKeyByte(s[i]) {
				i++
			}
			if i == 0 || i >= 1024 || s[0] == '-' || i+1 >= len(s) || s[i] != ':' || s[i+1] != ' ' || resolvePlain(s[:i]) == plainNull {
				return -1
			}
			key, s = s[:i], trimSpaces(s[i+1:])
		}
		if len(s) == 0 {
			return -1
		}
		vkind, value, n := scalarValue(s, true)
		if vkind < 0 {
			return -1
		}
		if isMap {
			p.pairs = append(p.pairs, flowPair{key: key, value: value, kind: vkind})
		}
		s = trimSpaces(s[n:])
		switch {
		case len(s) == 0:
			return -1
		case s[0] == end:
			if !commentOrEnd(s[1:]) {
				return -1
			}
			if isMap {
				return inlineFlowMap
			}
			return inlineFlowSeq
		case s[0] != ',':
			return -1
		}
		s = trimSpaces(s[1:])
	}
}

// trimSpaces cuts the spaces s starts with.
func trimSpaces(s []byte) []byte {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	return s
}

// scalarValue parses the one-line scalar s starts with, in a flow collection
// when inFlow, and returns its kind (-1 for one outside the subset), its
// value when a string, and the number of bytes it takes. Outside a flow
// collection a plain scalar takes the rest of the line but its comment.
func scalarValue(s []byte, inFlow bool) (kind int, value []byte, n int) {
	switch s[0] {
	case '\'':
		escaped := false
		i := 1
		for ; i < len(s); i++ {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					escaped = true
					i++
					continue
				}
				break
			}
		}
		if i >= len(s) {
			return -1, nil, 0
		}
		if escaped {
			return inlineString, bytes.ReplaceAll(s[1:i], []byte("''"), []byte("'")), i + 1
		}
		return inlineString, s[1:i], i + 1
	case '"':
		i := bytes.IndexByte(s[1:], '"') + 1
		if i == 0 || bytes.IndexByte(s[1:i], '\\') >= 0 {
			return -1, nil, 0
		}
		return inlineString, s[1:i], i + 1
	}
	if !plainStart(s) {
		return -1, nil, 0
	}
	v := s
	if inFlow {
		// A plain scalar in a flow collection ends at a comma or a closing
		// bracket; one with a colon, a question mark, a hash or an opening
		// bracket is left to prow.
		i := 0
		for ; i < len(v); i++ {
			c := v[i]
			if c == ',' || c == ']' || c == '}' {
				break
			}
			if c == ':' || c == '?' || c == '#' || c == '[' || c == '{' {
				return -1, nil, 0
			}
		}
		v, n = v[:i], i
	} else {
		if i := bytes.Index(v, []byte(" #")); i >= 0 {
			v = v[:i]
		}
		n = len(v)
	}
	v = bytes.TrimRight(v, " ")
	if !inFlow && (v[len(v)-1] == ':' || bytes.Contains(v, []byte(": "))) {
		// A mapping where YAML allows none.
		return -1, nil, 0
	}
	if inFlow && !plainStart(v) {
		// "-" alone.
		return -1, nil, 0
	}
	switch resolvePlain(v) {
	case plainString:
		return inlineString, v, n
	case plainNull:
		return inlineNull, nil, n
	case plainOther:
		return inlineOther, nil, n
	}
	// NaN and infinities, which prow cannot convert to JSON.
	return -1, nil, 0
}

// commentOrEnd tells whether what follows a quoted scalar or flow collection
// on its line is nothing or a comment.
func commentOrEnd(s []byte) bool {
	if len(s) == 0 {
		return true
	}
	t := bytes.TrimLeft(s, " ")
	return len(t) > 0 && len(t) < len(s) && t[0] == '#'
}

// plainStart tells whether s may start a plain scalar of the subset: not an
// indicator, and "-" only before a non-space.
func plainStart(s []byte) bool {
	c := s[0]
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '-':
		return len(s) > 1 && s[1] != ' '
	}
	return bytes.IndexByte([]byte("^/.($_~+=\\;)<"), c) >= 0 && !bytes.HasPrefix(s, []byte("<<"))
}

// How go-yaml v2 resolves a plain scalar.
const (
	plainString = iota
	plainNull
	plainOther // bool, int, float, merge key
	plainBad   // NaN or an infinity: encoding/json refuses them
)

// yamlStyleFloat is go-yaml v2's float syntax.
var yamlStyleFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// resolvePlain resolves the plain scalar s as go-yaml v2's resolve does
// (YAML 1.1: yes, no, on and off are booleans), where a timestamp stays a
// string as v2 leaves it when decoding into interface{}.
func resolvePlain(s []byte) int {
	if len(s) == 0 {
		return plainNull
	}
	switch c := s[0]; {
	case c == 'y' || c == 'Y' || c == 'n' || c == 'N' || c == 't' || c == 'T' || c == 'f' || c == 'F' || c == 'o' || c == 'O' || c == '~':
		switch string(s) {
		case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
			"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
			return plainOther
		case "~", "null", "Null", "NULL":
			return plainNull
		}
		return plainString
	case c == '.':
		switch string(s) {
		case ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF":
			return plainBad
		}
		if _, err := strconv.ParseFloat(string(s), 64); err == nil {
			return plainOther
		}
		return plainString
	case c == '<':
		if string(s) == "<<" {
			return plainOther
		}
		return plainString
	case c == '+' || c == '-' || '0' <= c && c <= '9':
		switch string(s) {
		case "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
			return plainBad
		}
		if !maybeNumber(s) || isTimestamp(s) {
			return plainString
		}
		plain := string(bytes.ReplaceAll(s, []byte("_"), nil))
		if _, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return plainOther
		}
		if _, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return plainOther
		}
		if yamlStyleFloat.MatchString(plain) {
			if _, err := strconv.ParseFloat(plain, 64); err == nil {
				return plainOther
			}
		}
		if len(plain) > 2 && plain[:2] == "0b" {
			if _, err := strconv.ParseInt(plain[2:], 2, 64); err == nil {
				return plainOther
			}
			if _, err := strconv.ParseUint(plain[2:], 2, 64); err == nil {
				return plainOther
			}
		} else if len(plain) > 3 && plain[:3] == "-0b" {
			if _, err := strconv.ParseInt("-"+plain[3:], 2, 64); err == nil {
				return plainOther
			}
		}
	}
	return plainString
}

// maybeNumber tells whether s has only bytes that a number or a timestamp can
// have, so that anything else is quickly known to be a string.
func maybeNumber(s []byte) bool {
	for _, c := range s {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		case c == 'x' || c == 'X' || c == 'o' || c == 'O' || c == 't' || c == 'T' || c == 'z' || c == 'Z':
		case c == '_' || c == '.' || c == '+' || c == '-' || c == ':' || c == ' ':
		default:
			return false
		}
	}
	return true
}

// isTimestamp tells whether go-yaml v2 takes s for a timestamp.
func isTimestamp(s []byte) bool {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i != 4 || i == len(s) || s[i] != '-' {
		return false
	}
	for _, format := range []string{"2006-1-2T15:4:5.999999999Z07:00", "2006-1-2t15:4:5.999999999Z07:00", "2006-1-2 15:4:5.999999999", "2006-1-2"} {
		if _, err := time.Parse(format, string(s)); err == nil {
			return true
		}
	}
	return false
}

// skipValue checks, without keeping it, the value of a key at column col
// whose line went on with rest.
func (p *Parser) skipValue(col int, rest []byte) {
	if len(rest) > 0 {
		p.inline(col, rest)
		return
	}
	p.advance()
	switch {
	case p.ind > col && isDash(p.text):
		p.skipSequence(p.ind)
	case p.ind > col:
		p.skipMapping(p.ind, p.text)
	case p.ind == col && isDash(p.text):
		// A sequence may sit at its key's column.
		p.skipSequence(col)
	}
}

// skipMapping checks a block mapping at column col.
func (p *Parser) skipMapping(col int, first []byte) {
	p.mapping(col, first, func(_, rest []byte) { p.skipValue(col, rest) })
}

// skipSequence checks a block sequence at column col.
func (p *Parser) skipSequence(col int) {
	for p.ind == col && isDash(p.text) {
		if ccol, first := p.entry(col); first != nil {
			p.skipMapping(ccol, first)
		}
	}
}

// entry parses the start of the sequence entry on the current line, whose
// dash is at column col. A scalar entry it consumes; for a mapping entry it
// returns the column of the mapping and its first line from the key on.
func (p *Parser) entry(col int) (ccol int, first []byte) {
	rest := p.text[1:]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	if len(rest) == 0 || rest[0] == '#' || isDash(rest) {
		// An entry on the next lines, or a sequence in a sequence.
		p.fail()
	}
	if key, _ := keyLine(rest); key != nil {
		return col + len(p.text) - len(rest), rest
	}
	p.inline(col, rest)
	return 0, nil
}

// blockMapping starts the value of a key at column col that must be a
// block mapping, or null or {}: it returns the mapping's column, or -1 when
// the value is empty or inline (marking the file for prow's decoder when
// it is anything else).
func (p *Parser) blockMapping(col int, rest []byte) int {
	if len(rest) > 0 {
		if kind, _ := p.inline(col, rest); kind != inlineNull && kind != inlineEmptyMap {
			p.fail()
		}
		return -1
	}
	p.advance()
	if p.ind < col || p.ind == col && !isDash(p.text) {
		return -1
	}
	if p.ind == col || isDash(p.text) {
		p.fail()
	}
	return p.ind
}

// repos parses the value of presubmits or postsubmits, at column col: a
// mapping of repo to jobs of section s.
func (p *Parser) repos(col int, rest []byte, s Section) {
	mcol := p.blockMapping(col, rest)
	if mcol < 0 {
		return
	}
	var seen [][]byte
	p.mapping(mcol, p.text, func(repo, rest []byte) {
		if resolvePlain(repo) != plainString {
			p.fail()
		}
		for _, s := range seen {
			if bytes.Equal(s, repo) {
				p.fail()
			}
		}
		seen = append(seen, repo)
		p.jobList(mcol, rest, s)
	})
}

// jobList parses a list of jobs of section s, the value of a key at column col.
func (p *Parser) jobList(col int, rest []byte, s Section) {
	if len(rest) > 0 {
		if kind, _ := p.inline(col, rest); kind != inlineNull && kind != inlineEmptySeq {
			p.fail()
		}
		return
	}
	p.advance()
	if p.ind < col || p.ind == col && !isDash(p.text) {
		return
	}
	if !isDash(p.text) {
		p.fail()
	}
	scol := p.ind
	for p.ind == scol && isDash(p.text) {
		ccol, first := p.entry(scol)
		if first == nil {
			p.fail()
		}
		p.job(ccol, first, s)
	}
}

// job parses the mapping of one job at column col.
func (p *Parser) job(col int, first []byte, s Section) {
	j := Job{Section: s}
	var seen [4]bool
	once := func(i int) {
		if seen[i] {
			p.fail()
		}
		seen[i] = true
	}
	start := len(p.labels)
	p.mapping(col, first, func(key, rest []byte) {
		switch string(key) {
		case "name":
			once(0)
			j.Name = p.scalar(col, rest)
		case "agent":
			once(1)
			j.Agent = p.scalar(col, rest)
		case "cluster":
			once(2)
			j.Cluster = p.scalar(col, rest)
		case "labels":
			once(3)
			p.jobLabels(col, rest, start)
		default:
			if foldsTo(key, jobFields) {
				p.fail()
			}
			p.skipValue(col, rest)
		}
	})
	if len(p.labels) > start {
		j.Labels = p.labels[start:len(p.labels):len(p.labels)]
	}
	p.jobs = append(p.jobs, j)
}

// scalar parses the value of a string field, a key at column col: a string,
// or null, which leaves the field empty.
func (p *Parser) scalar(col int, rest []byte) []byte {
	if len(rest) > 0 {
		kind, v := p.inline(col, rest)
		if kind != inlineString && kind != inlineNull {
			p.fail()
		}
		return v
	}
	p.advance()
	if p.ind > col || p.ind == col && isDash(p.text) {
		p.fail()
	}
	return nil
}

// jobLabels parses a job's labels, the value of a key at column col: a block
// or flow mapping, or null. The job's labels start at p.labels[start].
func (p *Parser) jobLabels(col int, rest []byte, start int) {
	if len(rest) > 0 {
		switch kind, _ := p.inline(col, rest); kind {
		case inlineNull, inlineEmptyMap:
		case inlineFlowMap:
			for _, kv := range p.pairs {
				if kv.kind != inlineString && kv.kind != inlineNull {
					p.fail()
				}
				p.label(start, kv.key, kv.value)
			}
		default:
			p.fail()
		}
		return
	}
	lcol := p.blockMapping(col, rest)
	if lcol < 0 {
		return
	}
	p.mapping(lcol, p.text, func(key, rest []byte) {
		p.label(start, key, p.scalar(lcol, rest))
	})
}

// label adds a label of the current job, whose labels start at
// p.labels[start].
func (p *Parser) label(start int, key, value []byte) {
	if resolvePlain(key) != plainString {
		p.fail()
	}
	for _, kv := range p.labels[start:] {
		if bytes.Equal(kv[0], key) {
			p.fail()
		}
	}
	p.labels = append(p.labels, [2][]byte{key, value})
}
