package policy

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// fastParse reads the plain YAML policies are written in: block mappings
// and lists by indentation, flow mappings and lists on one line, plain,
// single- and double-quoted scalars without escapes, comments. It returns
// the tree yaml.v3 would parse from data, node for node (kind, tag, style,
// value, line and column; comments aside, which the decoder does not
// read), or false for anything else, which yaml.v3 then parses: errors
// and their positions are always yaml.v3's. yaml.v3 took two thirds of
// loading a policy of 10,000 rules, and most of the memory.
//
// Tags of plain scalars are resolved by yaml.v3 itself (Node.ShortTag of
// an untagged node), so a value means what it means to yaml.v3.
func fastParse(data []byte) (*yaml.Node, bool) {
	for _, c := range data {
		// Tabs, carriage returns, control characters and anything
		// beyond ASCII (columns count characters) are left to yaml.v3.
		if c >= 0x7f || (c < 0x20 && c != '\n') {
			return nil, false
		}
	}
	// One string for the whole file: every scalar's value is a piece
	// of it, not a copy.
	p := &fastParser{lines: strings.Split(string(data), "\n")}
	p.skipBlank()
	if p.i >= len(p.lines) {
		return nil, false
	}
	line := p.lines[p.i]
	if lineIndent(line) != 0 || !isKeyStart(line, 0) {
		return nil, false
	}
	root, ok := p.blockMapping(0)
	if !ok {
		return nil, false
	}
	p.skipBlank()
	if p.i < len(p.lines) {
		return nil, false
	}
	return &yaml.Node{Kind: yaml.DocumentNode, Line: root.Line, Column: root.Column, Content: []*yaml.Node{root}}, true
}

type fastParser struct {
	lines []string
	i     int // the line being read
	// nodes are allocated from here, many at a time.
	nodes []yaml.Node
}

// node returns a new node.
func (p *fastParser) node() *yaml.Node {
	if len(p.nodes) == 0 {
		p.nodes = make([]yaml.Node, 256)
	}
	n := &p.nodes[0]
	p.nodes = p.nodes[1:]
	return n
}

// skipBlank skips lines that are empty or hold only a comment.
func (p *fastParser) skipBlank() {
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		n := lineIndent(l)
		if n < len(l) && l[n] != '#' {
			return
		}
		p.i++
	}
}

func lineIndent(l string) int {
	n := 0
	for n < len(l) && l[n] == ' ' {
		n++
	}
	return n
}

// isKeyStart reports whether l holds, from at, a simple key: letters,
// digits, - and _, then a colon ending the line or followed by a space.
func isKeyStart(l string, at int) bool {
	_, ok := keyAt(l, at)
	return ok
}

// keyAt returns the end of the simple key at l[at:].
func keyAt(l string, at int) (int, bool) {
	i := at
	for i < len(l) && (isAlnum(l[i]) || l[i] == '-' || l[i] == '_') {
		i++
	}
	if i == at || i >= len(l) || l[i] != ':' || (i+1 < len(l) && l[i+1] != ' ') {
		return 0, false
	}
	return i, true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *fastParser) scalar(value string, line, col int, style yaml.Style) *yaml.Node {
	n := p.node()
	*n = yaml.Node{Kind: yaml.ScalarNode, Value: value, Line: line, Column: col}
	if style != 0 {
		n.Tag, n.Style = "!!str", style
		return n
	}
	if _, ok := plainDecimal(value); ok {
		// As yaml.v3 resolves it (TestPlainDecimal), without its parse.
		n.Tag = "!!int"
		return n
	}
	n.Tag = n.ShortTag()
	return n
}

// blockMapping reads the mapping whose keys start at column ind of the
// current line and the lines after it at that indentation.
func (p *fastParser) blockMapping(ind int) (*yaml.Node, bool) {
	m := p.node()
	*m = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: p.i + 1, Column: ind + 1}
	for {
		l := p.lines[p.i]
		end, ok := keyAt(l, ind)
		if !ok {
			return nil, false
		}
		key := p.scalar(l[ind:end], p.i+1, ind+1, 0)
		value, ok := p.value(l, end+1, ind)
		if !ok {
			return nil, false
		}
		m.Content = append(m.Content, key, value)
		p.skipBlank()
		if p.i >= len(p.lines) {
			return m, true
		}
		switch n := lineIndent(p.lines[p.i]); {
		case n < ind:
			return m, true
		case n > ind:
			return nil, false
		}
	}
}

// value reads the value of the key of line l whose colon is at from-1,
// the key at column ind: on the line, or a block below it.
func (p *fastParser) value(l string, from, ind int) (*yaml.Node, bool) {
	at := from
	for at < len(l) && l[at] == ' ' {
		at++
	}
	if at < len(l) && l[at] != '#' {
		if at == from {
			return nil, false
		}
		n, ok := p.inline(l, at)
		p.i++
		return n, ok
	}
	// Nothing after the colon: a block below, more indented, or a list
	// at the key's indentation.
	p.i++
	p.skipBlank()
	if p.i >= len(p.lines) {
		return nil, false
	}
	next := p.lines[p.i]
	n := lineIndent(next)
	switch {
	case n >= ind && isItem(next, n):
		return p.blockSequence(n)
	case n > ind && isKeyStart(next, n):
		return p.blockMapping(n)
	}
	return nil, false
}

func isItem(l string, at int) bool {
	return at < len(l) && l[at] == '-' && (at+1 == len(l) || l[at+1] == ' ')
}

// blockSequence reads the list whose dashes are at column ind.
func (p *fastParser) blockSequence(ind int) (*yaml.Node, bool) {
	s := p.node()
	*s = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: p.i + 1, Column: ind + 1}
	for {
		l := p.lines[p.i]
		if !isItem(l, ind) {
			return nil, false
		}
		at := ind + 1
		for at < len(l) && l[at] == ' ' {
			at++
		}
		if at >= len(l) || l[at] == '#' || at == ind+1 {
			return nil, false
		}
		var item *yaml.Node
		var ok bool
		if isKeyStart(l, at) {
			item, ok = p.blockMapping(at)
		} else {
			item, ok = p.inline(l, at)
			p.i++
		}
		if !ok {
			return nil, false
		}
		s.Content = append(s.Content, item)
		p.skipBlank()
		if p.i >= len(p.lines) {
			return s, true
		}
		switch n := lineIndent(p.lines[p.i]); {
		case n < ind:
			return s, true
		case n > ind:
			return nil, false
		case !isItem(p.lines[p.i], n):
			// A key at the indentation of an indentless list ends it.
			return s, true
		}
	}
}

// inline reads the value at l[at:] that fills the rest of the line, but
// for a comment: a flow mapping or list, or a scalar.
func (p *fastParser) inline(l string, at int) (*yaml.Node, bool) {
	var n *yaml.Node
	var end int
	var ok bool
	switch l[at] {
	case '{', '[':
		n, end, ok = p.flow(l, at, p.i+1)
	case '"', '\'':
		n, end, ok = p.quoted(l, at, p.i+1)
	default:
		n, end, ok = p.plain(l, at, p.i+1)
	}
	if !ok {
		return nil, false
	}
	for end < len(l) && l[end] == ' ' {
		end++
	}
	if end < len(l) && (l[end] != '#' || l[end-1] != ' ') {
		return nil, false
	}
	return n, true
}

// plain reads a plain scalar in block context: up to a comment or the
// end of the line. It starts like a word or number; one holding ": ",
// ending in a colon, or starting like something else is yaml.v3's.
func (p *fastParser) plain(l string, at, line int) (*yaml.Node, int, bool) {
	if !isAlnum(l[at]) && l[at] != '_' && l[at] != '.' && l[at] != '/' {
		return nil, 0, false
	}
	end := len(l)
	if i := strings.Index(l[at:], " #"); i >= 0 {
		end = at + i
	}
	v := strings.TrimRight(l[at:end], " ")
	if v == "" || strings.Contains(v, ": ") || strings.HasSuffix(v, ":") || !plainChars(v, ":") {
		return nil, 0, false
	}
	return p.scalar(v, line, at+1, 0), at + len(v), true
}

// plainChars reports whether v holds only what the plain scalars of
// policies are made of (names, numbers, addresses, durations), and the
// bytes of extra; indicators and other signs are left to yaml.v3.
func plainChars(v, extra string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; !isAlnum(c) && !strings.ContainsRune(" _./-"+extra, rune(c)) {
			return false
		}
	}
	return true
}

// quoted reads a single- or double-quoted scalar that ends on its line;
// double quotes without escapes.
func (p *fastParser) quoted(l string, at, line int) (*yaml.Node, int, bool) {
	q := l[at]
	escaped := false // '' in single quotes
	for i := at + 1; i < len(l); i++ {
		switch c := l[i]; {
		case c == '\\' && q == '"':
			return nil, 0, false
		case c == q && q == '\'' && i+1 < len(l) && l[i+1] == '\'':
			escaped = true
			i++
		case c == q:
			style, v := yaml.DoubleQuotedStyle, l[at+1:i]
			if q == '\'' {
				style = yaml.SingleQuotedStyle
			}
			if escaped {
				v = strings.ReplaceAll(v, "''", "'")
			}
			return p.scalar(v, line, at+1, style), i + 1, true
		}
	}
	return nil, 0, false
}

// flow reads a flow mapping or list that ends on its line, and returns
// where it ends.
func (p *fastParser) flow(l string, at, line int) (*yaml.Node, int, bool) {
	n := p.node()
	*n = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle, Line: line, Column: at + 1}
	closing := byte(']')
	if l[at] == '{' {
		n.Kind, n.Tag, closing = yaml.MappingNode, "!!map", '}'
	}
	i := skipSpaces(l, at+1)
	if i < len(l) && l[i] == closing {
		return n, i + 1, true
	}
	for {
		if n.Kind == yaml.MappingNode {
			end, ok := keyAt(l, i)
			if !ok || end+1 >= len(l) {
				return nil, 0, false
			}
			n.Content = append(n.Content, p.scalar(l[i:end], line, i+1, 0))
			i = skipSpaces(l, end+1)
		}
		v, end, ok := p.flowValue(l, i, line)
		if !ok {
			return nil, 0, false
		}
		n.Content = append(n.Content, v)
		i = skipSpaces(l, end)
		if i >= len(l) {
			return nil, 0, false
		}
		switch l[i] {
		case closing:
			return n, i + 1, true
		case ',':
			i = skipSpaces(l, i+1)
			if i >= len(l) || l[i] == closing || l[i] == ',' {
				return nil, 0, false
			}
		default:
			return nil, 0, false
		}
	}
}

func skipSpaces(l string, i int) int {
	for i < len(l) && l[i] == ' ' {
		i++
	}
	return i
}

// flowValue reads a value inside a flow collection.
func (p *fastParser) flowValue(l string, at, line int) (*yaml.Node, int, bool) {
	if at >= len(l) {
		return nil, 0, false
	}
	switch c := l[at]; {
	case c == '{' || c == '[':
		return p.flow(l, at, line)
	case c == '"' || c == '\'':
		return p.quoted(l, at, line)
	case !isAlnum(c) && c != '_' && c != '.' && c != '/':
		return nil, 0, false
	}
	// A plain scalar ends at a flow indicator; one holding a colon or a
	// comment sign, which yaml.v3 reads in ways of its own here, is its.
	end := at
	for end < len(l) && !strings.ContainsRune(",[]{}", rune(l[end])) {
		if l[end] == ':' || l[end] == '#' {
			return nil, 0, false
		}
		end++
	}
	v := strings.TrimRight(l[at:end], " ")
	if !plainChars(v, "") {
		return nil, 0, false
	}
	return p.scalar(v, line, at+1, 0), at + len(v), true
}
