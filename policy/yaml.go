package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// maxDepth bounds how deeply mappings and lists may nest. A valid policy
// nests six levels (rules, rule, from, peer, except, entry); the bound keeps
// the walk over unknown content cheap and its error paths short.
const maxDepth = 64

// syntaxErrorLine matches the position that go.yaml.in/yaml/v3 puts into the
// text of its syntax errors; it exposes no structured position.
var syntaxErrorLine = regexp.MustCompile(`^yaml: line (\d+): `)

// decoder checks the YAML of one file against the policy schema. It reports
// every problem it finds and carries on, so that one run shows all of them.
type decoder struct {
	file string // the file as named in positions
	dir  string // directory that relative paths in the file are resolved against
	l    *loader
	// lineOffset and depth place a part of a file decoded on its own (a
	// Reader's changed peers) where it is in the file: lines before it,
	// and the nesting depth of its root.
	lineOffset, depth int
}

func (d *decoder) pos(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: n.Line + d.lineOffset, Col: n.Column}
}

// errorf reports a problem with node n at field path.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	if d.l.full() {
		d.l.add(&Error{Pos: d.pos(n)}) // counted, not formatted
		return
	}
	d.l.add(&Error{Pos: d.pos(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// check reports err, if it is not nil, at node n and field path, and
// says whether it was nil.
func (d *decoder) check(n *yaml.Node, path string, err error) bool {
	if err == nil {
		return true
	}
	d.l.report(d.site(n, path), err)
	return false
}

// site is where node n, at field path, is.
func (d *decoder) site(n *yaml.Node, path string) site {
	return site{pos: d.pos(n), path: path}
}

// fields returns a report for a check of the mapping at node n and field
// path: a problem with a field is reported at the node nodes gives for it,
// else at n.
func (d *decoder) fields(n *yaml.Node, path string, nodes map[string]*yaml.Node) report {
	return func(field string, err error) {
		at := n
		if f := nodes[field]; f != nil {
			at = f
		}
		d.check(at, joinPath(path, field), err)
	}
}

// parseDocument parses data as exactly one YAML document and returns its root
// node, or nil if the file holds no document or cannot be used at all.
// It refuses anchors and aliases, which no policy needs and which would let
// a small file expand into a huge tree, and nesting beyond maxDepth.
func (d *decoder) parseDocument(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntaxError(data, err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(data, err)
	default:
		d.errorf(&extra, "", "a second YAML document; a policy file holds exactly one document, so remove this --- and merge what follows into the first")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil
	}
	root := doc.Content[0]
	if !d.checkStructure(root, nil, 1+d.depth) {
		return nil
	}
	if isNull(root) {
		return nil
	}
	return root
}

// syntaxError reports a YAML syntax error. The YAML library gives at most a
// line, so the column is 1, except for encoding problems, which it reports
// without a position and which are easy to find in data.
func (d *decoder) syntaxError(data []byte, err error) {
	msg := err.Error()
	pos := Pos{File: d.file, Line: 1, Col: 1}
	if m := syntaxErrorLine.FindStringSubmatch(msg); m != nil {
		msg = msg[len(m[0]):]
		if line, err := strconv.Atoi(m[1]); err == nil && line > 0 {
			pos.Line = line + d.lineOffset
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
		pos.Line, pos.Col = badBytePos(data)
	}
	d.l.add(&Error{Pos: pos, Msg: "invalid YAML: " + msg})
}

// badBytePos returns the 1-based line and column of the first byte that is
// not valid UTF-8 or is a control character YAML forbids, or 1, 1.
func badBytePos(data []byte) (line, col int) {
	line, col = 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, col
		case r == '\n':
			line, col = line+1, 0
		case r < 0x20 && r != '\t' && r != '\r', r == 0x7f:
			return line, col
		}
		col++
		data = data[size:]
	}
	return 1, 1
}

// pathSegment is one step of a field path, linked to its parent so that the
// structure walk builds path strings only for the nodes it reports.
type pathSegment struct {
	parent *pathSegment
	key    string // a mapping key, or
	index  int    // a list index when key is empty
}

// String renders it for error messages.
func (s *pathSegment) String() string {
	if s == nil {
		return ""
	}
	parent := s.parent.String()
	if s.key == "" {
		return fmt.Sprintf("%s[%d]", parent, s.index)
	}
	return joinPath(parent, s.key)
}

// checkStructure reports the first anchor, alias or over-deep nesting in the
// tree under n and returns false if it found one. One report per file is
// enough: the rest of such a file is not checked.
func (d *decoder) checkStructure(n *yaml.Node, path *pathSegment, depth int) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.errorf(n, path.String(), "anchors and aliases are not supported; write the value out in full")
		return false
	}
	if depth > maxDepth {
		d.errorf(n, path.String(), "nested more than %d levels deep; a policy needs far fewer", maxDepth)
		return false
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !d.checkStructure(k, path, depth+1) {
				return false
			}
			if !d.checkStructure(v, &pathSegment{parent: path, key: k.Value}, depth+1) {
				return false
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if !d.checkStructure(c, &pathSegment{parent: path, index: i}, depth+1) {
				return false
			}
		}
	}
	return true
}

// joinPath is the path of field within the value at path; "" is the
// value itself.
func joinPath(path, field string) string {
	switch {
	case field == "":
		return path
	case path == "":
		return field
	}
	return path + "." + field
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of value n holds, for type errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch tag := n.ShortTag(); tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!bool":
		return "a boolean"
	case "!!float":
		return "a number with a fraction"
	case "!!null":
		return "empty"
	case "!!timestamp":
		return "a timestamp"
	default:
		return "a value tagged " + tag
	}
}

// mapping is a checked YAML mapping: every key is a known field, once.
// Its fields are few, so they are found by walking them: two maps for
// every rule and ports entry took a tenth of parsing 10,000 rules.
type mapping struct {
	node   *yaml.Node
	path   string
	fields []mappingField
}

// mappingField is a field of a mapping: its key and value nodes.
type mappingField struct {
	name       string
	key, value *yaml.Node
}

// lookup returns the key and value nodes of field name, or nils.
func (m *mapping) lookup(name string) (key, value *yaml.Node) {
	for _, f := range m.fields {
		if f.name == name {
			return f.key, f.value
		}
	}
	return nil, nil
}

// mapping checks that n is a mapping whose keys are among fields, each
// written once, and returns it, or nil after reporting why it is not.
// misplaced gives a reason for keys that are fields elsewhere but not here.
func (d *decoder) mapping(n *yaml.Node, path string, fields []string, misplaced map[string]string) *mapping {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping with fields %s, not %s", strings.Join(fields, ", "), describe(n))
		return nil
	}
	m := &mapping{node: n, path: path, fields: make([]mappingField, 0, len(n.Content)/2)}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "a key must be a field name, not %s; valid fields are %s", describe(k), strings.Join(fields, ", "))
			continue
		}
		name := k.Value
		if first, _ := m.lookup(name); first != nil {
			d.errorf(k, joinPath(path, name), "duplicate key %q; it is first set at line %d, so keep only one", name, first.Line+d.lineOffset)
			continue
		}
		if why, ok := misplaced[name]; ok {
			d.errorf(k, joinPath(path, name), "%s", why)
			continue
		}
		if !slices.Contains(fields, name) {
			d.errorf(k, joinPath(path, name), "unknown field %q; valid fields are %s", name, strings.Join(fields, ", "))
			continue
		}
		m.fields = append(m.fields, mappingField{name: name, key: k, value: v})
	}
	return m
}

// get returns the value of field name, or nil if it is absent or null.
func (m *mapping) get(name string) *yaml.Node {
	_, v := m.lookup(name)
	if v == nil || isNull(v) {
		return nil
	}
	return v
}

// require returns the value of field name, or reports that it is missing
// (at the key if it is written with no value, else at the mapping).
func (d *decoder) require(m *mapping, name, hint string) *yaml.Node {
	if v := m.get(name); v != nil {
		return v
	}
	at := m.node
	if k, _ := m.lookup(name); k != nil {
		at = k
	}
	d.errorf(at, joinPath(m.path, name), "required field is missing; %s", hint)
	return nil
}

// str returns the string n holds, or reports that it holds something else.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, path, "must be a string, not %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// integer returns the integer n holds if it is within r.
func (d *decoder) integer(n *yaml.Node, path string, r intRange) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		hint := ""
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
			hint = "; write the number without quotes"
		}
		d.errorf(n, path, "must be an integer from %d to %d, not %s%s", r.lo, r.hi, describe(n), hint)
		return 0, false
	}
	v, ok := plainDecimal(n.Value)
	if !ok {
		if err := n.Decode(&v); err != nil {
			d.check(n, path, r.outOfRange(n.Value))
			return 0, false
		}
	}
	return v, d.check(n, path, r.check(v))
}

// plainDecimal reads the common form of a YAML integer, such as 22, in
// which the decimal digits mean what yaml.v3 reads them as; anything else
// (0x16, 0o26, 1_000, +22, 022, or too many digits) is left to yaml.v3.
// Decoding every port of 10,000 rules through yaml.v3 took a twentieth of
// parsing them.
func plainDecimal(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// boolean returns the boolean n holds.
func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	var v bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		d.errorf(n, path, "must be true or false, not %s", describe(n))
		return false, false
	}
	return v, true
}

// enum returns the string n holds if it is one of valid, else "".
func (d *decoder) enum(n *yaml.Node, path, what string, valid []string) (string, bool) {
	s, ok := d.str(n, path)
	if !ok || !d.check(n, path, checkOneOf(s, what, valid)) {
		return "", false
	}
	return s, true
}

// list returns the entries of the list n.
func (d *decoder) list(n *yaml.Node, path, of string) ([]*yaml.Node, bool) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "must be a list of %s, not %s", of, describe(n))
		return nil, false
	}
	return n.Content, true
}

// Bounds of the integer types a value is stored in.
const (
	maxUint16 = math.MaxUint16
	maxUint32 = math.MaxUint32
)
