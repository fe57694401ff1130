package policy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"iter"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Reading a policy of 10,000 WireGuard peers took about 80 ms, nearly all
// of it parsing and decoding their YAML, so a reload that added one peer
// cost as much as one that wrote them all. A Reader keeps the policy it
// read last, its files' bytes, and where each tunnel's peers are written.
// When the files read the same but for one, which differs from its last
// bytes only in whole entries of one tunnel's peer list, it decodes those
// entries alone, holds them to the checks a full read makes across the
// tunnel's peers (names, public keys and allowed IPs unique), and splices
// them into the last policy. Any other change, and any problem found,
// reads the whole policy: errors are always those of a full read.

// peersDepth is the nesting depth of a tunnel's peer list in a policy file
// (root mapping, tunnels, tunnel, peers), which checkStructure counts.
const peersDepth = 4

// maxSplicedPeers bounds the peer entries a Reader decodes on their own:
// the checks against the other peers cost a scan of them per entry.
const maxSplicedPeers = 64

// Reader reads a policy as ReadBundle does, and again cheaply after a
// change to a few of a tunnel's peers. It is safe for concurrent use.
// The policies it returns share memory with each other: they must not be
// modified. It keeps the bytes of the files that hold peer lists, and of
// the others (a large set file) only their SHA-256.
type Reader struct {
	// Sets, unless nil, parses set files from their last parse when a
	// read must decode the policy in full (ReadBundleCached).
	Sets *SetFileCache

	mu   sync.Mutex
	last *readState
	// spliced counts the reads that decoded only changed peers (tests).
	spliced int
}

// readState is what a Reader keeps of its last read.
type readState struct {
	path   string
	policy *Policy
	// texts holds the bytes of the files read that hold a peer list, sums
	// the SHA-256 of the others.
	sums  map[string][sha256.Size]byte
	texts map[string][]byte
	// yamlAbs are the main file and its drop-ins, in merge order.
	yamlAbs []string
	lists   []peerList
}

// peerList is where one tunnel's peers are written: a block list whose
// entries each start with a dash on the line of their first field.
type peerList struct {
	tunnel int    // index in Policy.Tunnels
	file   string // as positions name it
	abs    string
	col    int   // column of the dashes
	starts []int // line of each entry's dash
	// end is the first line after the list: that of the next node, or one
	// past the file's last line.
	end int
}

// ReadBundle reads the policy at path as the package's ReadBundle does.
func (r *Reader) ReadBundle(path string) (*Policy, Bundle, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.last; s != nil && s.path == path {
		if next, bundle, spliced, ok := s.reread(osRoot()); ok {
			r.last = next
			if spliced {
				r.spliced++
			}
			return next.policy, bundle, nil
		}
	}
	l := newLoader(osRoot())
	l.bundle, l.peerLists = Bundle{}, &peerLists{}
	if r.Sets != nil {
		l.setCache = r.Sets
		r.Sets.begin()
		defer r.Sets.end()
	}
	p, err := l.load(path)
	if err != nil {
		r.last = nil
		return nil, nil, err
	}
	r.last = newReadState(path, p, l.bundle, l.yamlAbs, l.peerLists.lists)
	return p, l.bundle, nil
}

// newReadState is what a Reader keeps of a read of the files of bundle.
func newReadState(path string, p *Policy, bundle Bundle, yamlAbs []string, lists []peerList) *readState {
	s := &readState{path: path, policy: p, sums: make(map[string][sha256.Size]byte, len(bundle)),
		texts: map[string][]byte{}, yamlAbs: yamlAbs, lists: lists}
	for _, pl := range lists {
		s.texts[pl.abs] = bundle[pl.abs]
	}
	for name, data := range bundle {
		if s.texts[name] == nil {
			s.sums[name] = sha256.Sum256(data)
		}
	}
	return s
}

// reread reads the files of s again and returns the state they give and
// their bytes, if they are the same files and read as s's but for peers
// it can splice.
func (s *readState) reread(fsys fs.FS) (next *readState, bundle Bundle, spliced, ok bool) {
	if !s.sameDropIns(fsys) {
		return nil, nil, false, false
	}
	bundle = make(Bundle, len(s.sums)+len(s.texts))
	var changed []string
	for name := range s.files() {
		limit := int64(maxSetFileSize)
		if slices.Contains(s.yamlAbs, name) {
			limit = maxPolicyFileSize
		}
		data, err := readBounded(fsys, strings.TrimPrefix(name, "/"), limit)
		if err != nil {
			return nil, nil, false, false
		}
		bundle[name] = data
		if old, ok := s.texts[name]; ok && !bytes.Equal(data, old) || !ok && sha256.Sum256(data) != s.sums[name] {
			changed = append(changed, name)
		}
	}
	switch {
	case len(changed) == 0:
		return s, bundle, false, true
	case len(changed) == 1 && s.texts[changed[0]] != nil:
		if n := s.splice(fsys, changed[0], bundle); n != nil {
			return n, bundle, true, true
		}
	}
	return nil, nil, false, false
}

// files returns the names of the files read.
func (s *readState) files() iter.Seq[string] {
	return func(yield func(string) bool) {
		for name := range s.texts {
			if !yield(name) {
				return
			}
		}
		for name := range s.sums {
			if !yield(name) {
				return
			}
		}
	}
}

// sameDropIns reports whether the drop-ins beside the main file are the
// ones read last.
func (s *readState) sameDropIns(fsys fs.FS) bool {
	dir := filepath.Join(filepath.Dir(s.path), dropInDir)
	name, err := fsName(dir)
	if err != nil {
		return false
	}
	entries, err := fs.ReadDir(fsys, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	var dropIns []string
	for _, e := range entries {
		if isDropIn(e.Name()) {
			abs, err := filepath.Abs(filepath.Join(dir, e.Name()))
			if err != nil {
				return false
			}
			dropIns = append(dropIns, abs)
		}
	}
	return len(s.yamlAbs) > 0 && slices.Equal(dropIns, s.yamlAbs[1:])
}

// splice returns the state after a change of the YAML file abs, whose
// new bytes bundle holds, if the change is to whole entries of one peer
// list and they pass every check; nil otherwise.
func (s *readState) splice(fsys fs.FS, abs string, bundle Bundle) *readState {
	old, data := s.texts[abs], bundle[abs]
	first, endOld, endNew := changedLines(old, data)
	delta := endNew - endOld
	li := slices.IndexFunc(s.lists, func(pl peerList) bool {
		return pl.abs == abs && pl.starts[0] <= first && endOld <= pl.end
	})
	if li < 0 {
		return nil
	}
	pl := s.lists[li]
	// The entries the change touches, from k0 up to k1. A change that
	// begins where an entry begins may add to the one before it (a line
	// of it, or entries after it), so that one is decoded again too.
	k0 := sort.SearchInts(pl.starts, first+1) - 1
	if pl.starts[k0] == first && k0 > 0 {
		k0--
	}
	k1 := sort.SearchInts(pl.starts, endOld)
	from, to := pl.starts[k0], pl.end
	if k1 < len(pl.starts) {
		to = pl.starts[k1]
	}
	lines := lineStarts(data)
	text := data[lineOffset(lines, len(data), from):lineOffset(lines, len(data), to+delta)]
	added, starts, ok := pl.decode(fsys, text, from, lines, data)
	if !ok {
		return nil
	}
	t := s.policy.Tunnels[pl.tunnel]
	if len(t.Peers) != len(pl.starts) || conflicts(t.Peers[:k0], added) || conflicts(t.Peers[k1:], added) {
		return nil
	}
	peers := slices.Concat(t.Peers[:k0], added, t.Peers[k1:])
	if len(peers) == 0 {
		return nil // an empty list is no list: read in full
	}
	for i := k0 + len(added); i < len(peers); i++ {
		shiftPos(&peers[i].Pos, pl.file, 0, delta)
		shiftPos(&peers[i].PresharedKeyFilePos, pl.file, 0, delta)
	}
	p := *s.policy
	p.Tunnels = slices.Clone(p.Tunnels)
	p.Tunnels[pl.tunnel].Peers = peers
	shiftPolicy(&p, pl.tunnel, pl.file, to, delta)
	n := *s
	n.policy = &p
	n.texts = maps.Clone(s.texts)
	n.texts[abs] = data

	lists := slices.Clone(s.lists)
	for i := range lists {
		switch {
		case i == li:
			lists[i].starts = slices.Concat(pl.starts[:k0], starts, shifted(pl.starts[k1:], delta))
			lists[i].end += delta
		case lists[i].abs == abs && lists[i].starts[0] >= to:
			lists[i].starts = shifted(lists[i].starts, delta)
			lists[i].end += delta
		}
	}
	n.lists = lists
	return &n
}

// decode decodes text, the lines of data from line from on that replace
// entries of pl, as the entries of a peer list on their own. It returns the
// peers and the lines their entries start on, and false if text is not
// whole entries of the list or any check fails.
func (pl peerList) decode(fsys fs.FS, text []byte, from int, lines []int, data []byte) ([]TunnelPeer, []int, bool) {
	if len(text) == 0 {
		return nil, nil, true // entries removed
	}
	if !dashAt(text, pl.col) {
		return nil, nil, false
	}
	d := &decoder{file: pl.file, dir: filepath.Dir(pl.file), l: newLoader(fsys), lineOffset: from - 1, depth: peersDepth - 1}
	root := d.parseDocument(text)
	if root == nil || len(d.l.errs) > 0 || root.Kind != yaml.SequenceNode || root.Style&yaml.FlowStyle != 0 ||
		root.Column != pl.col || len(root.Content) > maxSplicedPeers {
		return nil, nil, false
	}
	starts := make([]int, len(root.Content))
	for i, item := range root.Content {
		starts[i] = item.Line + from - 1
		if !dashAt(data[lineOffset(lines, len(data), starts[i]):], pl.col) {
			return nil, nil, false
		}
	}
	peers := d.tunnelPeers(root, joinPath(indexPath("tunnels", pl.tunnel), "peers"))
	if len(d.l.errs) > 0 || len(peers) != len(root.Content) {
		return nil, nil, false
	}
	return peers, starts, true
}

// conflicts reports whether a peer of added shares its name, public key
// or an allowed IP with a peer of kept, which the checks of a full read
// would refuse. Those within added were checked when they were decoded.
func conflicts(kept, added []TunnelPeer) bool {
	for _, k := range kept {
		for _, a := range added {
			if k.Name == a.Name || k.PublicKey == a.PublicKey {
				return true
			}
			for _, p := range a.AllowedIPs {
				if slices.Contains(k.AllowedIPs, p) {
					return true
				}
			}
		}
	}
	return false
}

// shiftPolicy moves by delta lines the positions in file from line from
// on of everything in p but the peers of tunnel skip, copying what it
// changes: p shares its slices with the policy it was copied from.
func shiftPolicy(p *Policy, skip int, file string, from, delta int) {
	if delta == 0 {
		return
	}
	after := func(pos Pos) bool { return pos.File == file && pos.Line >= from }
	if slices.ContainsFunc(p.Sets, func(s Set) bool { return after(s.Pos) }) {
		p.Sets = slices.Clone(p.Sets)
		for i := range p.Sets {
			shiftPos(&p.Sets[i].Pos, file, from, delta)
		}
	}
	if slices.ContainsFunc(p.Rules, func(r Rule) bool { return after(r.Pos) }) {
		p.Rules = slices.Clone(p.Rules)
		for i := range p.Rules {
			shiftPos(&p.Rules[i].Pos, file, from, delta)
		}
	}
	for i := range p.Tunnels {
		t := &p.Tunnels[i]
		shiftPos(&t.Pos, file, from, delta)
		shiftPos(&t.PrivateKeyFilePos, file, from, delta)
		if i == skip || !slices.ContainsFunc(t.Peers, func(tp TunnelPeer) bool { return after(tp.Pos) || after(tp.PresharedKeyFilePos) }) {
			continue
		}
		t.Peers = slices.Clone(t.Peers)
		for j := range t.Peers {
			shiftPos(&t.Peers[j].Pos, file, from, delta)
			shiftPos(&t.Peers[j].PresharedKeyFilePos, file, from, delta)
		}
	}
}

// shiftPos moves pos by delta lines if it is in file at line from or later.
func shiftPos(pos *Pos, file string, from, delta int) {
	if pos.File == file && pos.Line >= from && pos.Line > 0 {
		pos.Line += delta
	}
}

func shifted(lines []int, delta int) []int {
	out := make([]int, len(lines))
	for i, l := range lines {
		out[i] = l + delta
	}
	return out
}

// changedLines compares two versions of a file by lines: the lines from
// first up to endOld of old were replaced by those from first up to endNew
// of new, and the lines after are the same (1-based).
func changedLines(old, new []byte) (first, endOld, endNew int) {
	p := 0
	for p < len(old) && p < len(new) && old[p] == new[p] {
		p++
	}
	p = bytes.LastIndexByte(old[:p], '\n') + 1
	q := 0
	for q < min(len(old), len(new))-p && old[len(old)-1-q] == new[len(new)-1-q] {
		q++
	}
	// The unchanged end begins at a line's start.
	so := len(old) - q
	if so > p && old[so-1] != '\n' {
		if i := bytes.IndexByte(old[so:], '\n'); i >= 0 {
			so += i + 1
		} else {
			so = len(old)
		}
	}
	sn := so + len(new) - len(old)
	first = 1 + bytes.Count(old[:p], []byte{'\n'})
	return first, first + countLines(old[p:so]), first + countLines(new[p:sn])
}

// countLines is the number of lines of b, which begins at a line's start.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// lineStarts returns the offset of each line of data.
func lineStarts(data []byte) []int {
	starts := make([]int, 0, bytes.Count(data, []byte{'\n'})+1)
	for off := 0; off < len(data); {
		starts = append(starts, off)
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	return starts
}

// lineOffset is the offset of line (1-based) in a file of size bytes whose
// lines start at starts; size past its last line.
func lineOffset(starts []int, size, line int) int {
	if line-1 < len(starts) {
		return starts[line-1]
	}
	return size
}

// dashAt reports whether the line b begins with has a dash at column col
// after nothing but spaces.
func dashAt(b []byte, col int) bool {
	if col < 1 || len(b) < col {
		return false
	}
	for _, c := range b[:col-1] {
		if c != ' ' {
			return false
		}
	}
	return b[col-1] == '-'
}

// peerLists collects, during a full read, where each tunnel's peers are
// written.
type peerLists struct {
	lists []peerList
	// seqs are the list nodes of the file being decoded, by index in lists.
	seqs map[*yaml.Node]int
}

// notePeerList records where the peers of the tunnel decoded from item,
// Policy.Tunnels[tunnel], are written, if they are a block list that a
// Reader can splice.
func (l *loader) notePeerList(d *decoder, tunnel int, item *yaml.Node) {
	r := l.peerLists
	if r == nil || item.Kind != yaml.MappingNode || d.lineOffset != 0 {
		return
	}
	var seq *yaml.Node
	for i := 0; i+1 < len(item.Content); i += 2 {
		if item.Content[i].Value == "peers" {
			seq = item.Content[i+1]
		}
	}
	if seq == nil || seq.Kind != yaml.SequenceNode || seq.Style&yaml.FlowStyle != 0 || len(seq.Content) == 0 {
		return
	}
	abs, err := filepath.Abs(d.file)
	if err != nil {
		return
	}
	starts := make([]int, len(seq.Content))
	for i, e := range seq.Content {
		starts[i] = e.Line
	}
	if r.seqs == nil {
		r.seqs = map[*yaml.Node]int{}
	}
	r.seqs[seq] = len(r.lists)
	r.lists = append(r.lists, peerList{tunnel: tunnel, file: d.file, abs: abs, col: seq.Column, starts: starts})
}

// end completes the lists of file, whose bytes are data and whose root
// node is root: where each ends, and whether its entries start as a
// splice needs. Those that do not are forgotten.
func (r *peerLists) end(file string, data []byte, root *yaml.Node) {
	if r == nil || len(r.seqs) == 0 {
		return
	}
	lines := lineStarts(data)
	// The line of the node after each list in document order.
	var waiting []int
	var visit func(n *yaml.Node)
	visit = func(n *yaml.Node) {
		for _, i := range waiting {
			r.lists[i].end = n.Line
		}
		waiting = waiting[:0]
		for _, c := range n.Content {
			visit(c)
		}
		if i, ok := r.seqs[n]; ok {
			waiting = append(waiting, i)
		}
	}
	visit(root)
	for _, i := range waiting {
		r.lists[i].end = len(lines) + 1
	}
	clear(r.seqs)
	r.lists = slices.DeleteFunc(r.lists, func(pl peerList) bool {
		if pl.file != file {
			return false
		}
		last := 0
		for _, line := range pl.starts {
			if line <= last || !dashAt(data[lineOffset(lines, len(data), line):], pl.col) {
				return true
			}
			last = line
		}
		return pl.end <= last
	})
}
