package policy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size limits, checked before a file is read so that a huge or endless file
// (a mistaken path to a log, /dev/zero) costs nothing.
const (
	maxPolicyFileSize = 16 << 20
	maxSetFileSize    = 64 << 20
)

// maxErrors bounds the errors reported for one policy. A policy with more is
// not a policy with typos but the wrong file, and a file of millions of bad
// entries must not cost memory in proportion.
const maxErrors = 1000

// dropInDir is the directory, beside the main policy file, whose *.yaml
// files are merged into the policy in name order.
const dropInDir = "policy.d"

// Load reads the policy file at path, the drop-ins policy.d/*.yaml beside it
// (in name order; a missing policy.d is fine; names starting with a dot are
// skipped, as editors and configuration management use them for temporary
// files), and the set files these name. It returns the validated policy, or
// an ErrorList holding every problem found in any of the files.
//
// Positions in errors name files as path names them (relative if path is);
// the paths stored in the Policy are absolute.
func Load(path string) (*Policy, error) {
	return LoadFS(osRoot(), path)
}

// LoadFS is Load over the file system fsys instead of the operating
// system's. fsys is rooted at "/", as os.DirFS("/"), which Load uses: the
// file /etc/edgefw/policy.yaml is etc/edgefw/policy.yaml in fsys. Paths are
// resolved as Load resolves them (a relative path against the working
// directory, a set file against the directory of the file naming it), and
// positions in errors name files as path names them.
func LoadFS(fsys fs.FS, path string) (*Policy, error) {
	return newLoader(fsys).load(path)
}

// osRoot is the operating system's file system, as LoadFS reads it.
func osRoot() fs.FS { return os.DirFS("/") }

// load reads the main file at path, its drop-ins and their set files.
func (l *loader) load(path string) (*Policy, error) {
	l.readFiles(path)
	return l.finish()
}

// readFiles decodes the main file at path, its drop-ins and their set
// files, leaving the checks that need every file to finish.
func (l *loader) readFiles(path string) {
	data, err := l.read(path, maxPolicyFileSize)
	if err != nil {
		l.fileError(path, "cannot read policy", err)
		return
	}
	l.decodeFile(path, data, true)

	dir := filepath.Join(filepath.Dir(path), dropInDir)
	entries, err := l.readDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.fileError(dir, "cannot read drop-in directory", err)
	}
	// ReadDir sorts by name, which is the documented merge order.
	for _, e := range entries {
		name := e.Name()
		if !isDropIn(name) {
			continue
		}
		file := filepath.Join(dir, name)
		data, err := l.read(file, maxPolicyFileSize)
		if err != nil {
			l.fileError(file, "cannot read drop-in", err)
			continue
		}
		l.decodeFile(file, data, false)
	}
}

// isDropIn reports whether a file of policy.d/ is a drop-in by its name.
func isDropIn(name string) bool {
	return !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".yaml")
}

// Parse parses and validates one policy document, as Load does for a main
// file without drop-ins. file names the document in errors; set files it
// names are resolved against filepath.Dir(file) and read.
func Parse(file string, data []byte) (*Policy, error) {
	l := newLoader(osRoot())
	if len(data) > maxPolicyFileSize {
		l.add(&Error{Pos: Pos{File: file, Line: 1, Col: 1}, Msg: tooLarge(maxPolicyFileSize).Error()})
		return l.finish()
	}
	l.decodeFile(file, data, true)
	return l.finish()
}

// loader merges the files of one policy and collects the problems found in
// all of them. It lives for one Load, Parse or Validate.
type loader struct {
	// fsys is where files are read, rooted at "/" (see LoadFS).
	fsys fs.FS
	// bundle, unless nil, receives every file read (ReadBundle).
	bundle Bundle
	// peerLists, unless nil, receives where each tunnel's peers are
	// written (Reader).
	peerLists *peerLists
	// setCache, unless nil, parses set files from their last parse.
	setCache *SetFileCache

	errs ErrorList
	// firstDropped is the first error beyond maxErrors, which are not kept.
	firstDropped *Error
	policy       Policy

	// yamlFiles and setFiles name the files read, as positions name them,
	// in merge order; yamlAbs and setAbs hold their absolute paths, once each.
	yamlFiles, setFiles []string
	yamlAbs, setAbs     []string
	seenAbs             map[string]bool

	// scope holds the names defined in any file so far, for reporting
	// duplicates across files, and the {set: NAME} peers, checked once
	// every file is read because a rule may use a set that a later
	// drop-in defines.
	scope
}

func newLoader(fsys fs.FS) *loader {
	return &loader{
		fsys:    fsys,
		policy:  Policy{Version: 1},
		seenAbs: map[string]bool{},
		scope:   newScope(),
	}
}

// add records an error, or counts it once maxErrors are recorded.
func (l *loader) add(e *Error) {
	if l.full() {
		if l.firstDropped == nil {
			l.firstDropped = e
		}
		return
	}
	l.errs = append(l.errs, e)
}

// report records err as the problem with the value at site at.
func (l *loader) report(at site, err error) {
	if l.full() {
		l.add(&Error{Pos: at.pos}) // counted, not formatted
		return
	}
	l.add(&Error{Pos: at.pos, Path: at.path, Msg: err.Error()})
}

// full reports whether no more errors are recorded.
func (l *loader) full() bool { return len(l.errs) >= maxErrors }

// fileError reports that a file as a whole cannot be used.
func (l *loader) fileError(file, what string, err error) {
	l.add(&Error{Pos: Pos{File: file}, Msg: what + ": " + readErrorText(err), Err: err})
}

// decodeFile decodes one policy YAML file into the policy being built.
func (l *loader) decodeFile(file string, data []byte, main bool) {
	l.yamlFiles = append(l.yamlFiles, file)
	l.yamlAbs = l.addAbs(l.yamlAbs, file)
	d := &decoder{file: file, dir: filepath.Dir(file), l: l}
	before := len(l.errs)
	root := d.parseDocument(data)
	if root == nil {
		if main && len(l.errs) == before {
			l.add(&Error{Pos: Pos{File: file, Line: 1, Col: 1}, Msg: "empty policy; version: 1 is required"})
		}
		if main {
			l.policy.Defaults = d.defaults(nil)
			l.policy.Failsafe = d.failsafe(nil)
		}
		return
	}
	d.top(root, main)
	l.peerLists.end(d.file, data, root)
}

// addAbs appends the absolute path of file to files unless it was added
// to either list before.
func (l *loader) addAbs(files []string, file string) []string {
	abs, err := filepath.Abs(file)
	if err != nil {
		l.fileError(file, "cannot make the path absolute", err)
		return files
	}
	if l.seenAbs[abs] {
		return files
	}
	l.seenAbs[abs] = true
	return append(files, abs)
}

// finish runs the checks that need every file and returns the result.
func (l *loader) finish() (*Policy, error) {
	l.undefinedSets(l.policy.Sets, l.report)
	if len(l.errs) > 0 {
		rank := map[string]int{}
		for i, f := range slices.Concat(l.yamlFiles, l.setFiles) {
			if _, ok := rank[f]; !ok {
				rank[f] = i
			}
		}
		l.errs.sort(rank)
		return nil, l.errorList()
	}
	p := l.policy
	// The YAML files come first, though set files are read while the YAML
	// files are decoded: Files is documented in merge order.
	p.Files = slices.Concat(l.yamlAbs, l.setAbs)
	return &p, nil
}

// errorList returns the errors recorded, ending with a note when more were
// found than kept.
func (l *loader) errorList() ErrorList {
	if l.firstDropped == nil {
		return l.errs
	}
	return append(l.errs, &Error{Pos: l.firstDropped.Pos, Msg: fmt.Sprintf(
		"too many errors; only the first %d are shown", maxErrors)})
}

// readSetFile reads and parses the set file named by node n (at path) of
// the file being decoded, adding its entries to set.
func (d *decoder) readSetFile(set *Set, n *yaml.Node, path string) {
	name, ok := d.str(n, path)
	if !ok {
		return
	}
	if name == "" {
		d.errorf(n, path, "must name a file of CIDRs, one a line, relative to this file")
		return
	}
	file := d.resolve(name)
	abs, ok := d.resolveAbs(n, path, name)
	if !ok {
		return
	}
	data, err := d.l.read(file, maxSetFileSize)
	if err != nil {
		d.errorf(n, path, "cannot read set file %s: %s", file, readErrorText(err))
		return
	}
	set.File = abs
	d.l.setFiles = append(d.l.setFiles, file)
	d.l.setAbs = d.l.addAbs(d.l.setAbs, file)
	cache := d.l.setCache
	if cache != nil {
		if ps, ok := cache.lookup(abs, data); ok {
			set.Prefixes = ps
			return
		}
	}
	parsed, clean := d.parseSetFile(file, strings.TrimSuffix(path, ".file"), data, cache != nil)
	set.Prefixes = parsed.prefixes
	switch {
	case cache == nil:
	case clean:
		cache.store(abs, parsed)
		set.Prefixes = clip(parsed.prefixes)
	default:
		cache.forget(abs)
	}
}

// parseSetFile parses the set file file, holding data, for the set at
// setPath, and reports whether it found no error. The lines of the
// prefixes are kept only for a SetFileCache.
func (d *decoder) parseSetFile(file, setPath string, data []byte, keepLines bool) (*parsedSetFile, bool) {
	// A set file of a million CIDRs is a million prefixes: sized at once,
	// and told apart from duplicates by a compact key (prefixSeen).
	lines := min(bytes.Count(data, []byte{'\n'})+1, maxSetFileHint)
	f := &parsedSetFile{data: data, prefixes: make([]netip.Prefix, 0, lines)}
	seen := newPrefixSeen(lines)
	if keepLines {
		f.lines = make([]int32, 0, lines)
	}
	clean := true
	for e := range setFileEntries(data) {
		if e.err != nil {
			clean = false
			if d.l.full() {
				// Stop: a file of millions of bad lines is the wrong file.
				d.l.add(&Error{Pos: Pos{File: file, Line: e.line, Col: e.col}})
				break
			}
			d.l.add(&Error{Pos: Pos{File: file, Line: e.line, Col: e.col}, Path: setPath, Msg: e.err.Error()})
			continue
		}
		if seen.add(e.prefix) {
			f.prefixes = append(f.prefixes, e.prefix)
			if keepLines {
				f.lines = append(f.lines, int32(e.line))
			}
		}
	}
	if keepLines && clean {
		f.counts = countsOf(f.prefixes, seen)
	}
	return f, clean
}

// resolve returns a path named in the file being decoded, relative to the
// directory of that file unless it is absolute.
func (d *decoder) resolve(name string) string {
	if filepath.IsAbs(name) {
		return filepath.Clean(name)
	}
	return filepath.Join(d.dir, name)
}

// resolveAbs is resolve made absolute, for paths stored in the Policy.
func (d *decoder) resolveAbs(n *yaml.Node, path, name string) (string, bool) {
	abs, err := filepath.Abs(d.resolve(name))
	if err != nil {
		d.errorf(n, path, "cannot make %s absolute: %v", name, err)
		return "", false
	}
	return abs, true
}

// maxSetFileHint bounds the room made for a set file's CIDRs before they
// are read, whatever its number of lines (a file of blank lines is no
// list of millions of CIDRs).
const maxSetFileHint = 1 << 21

// appendUnique appends p unless seen, keeping the first occurrence's order.
func appendUnique(list []netip.Prefix, seen *prefixSeen, p netip.Prefix) []netip.Prefix {
	if !seen.add(p) {
		return list
	}
	return append(list, p)
}

// prefixSeen is the set of prefixes a set has, to drop duplicates. An
// IPv4 prefix is keyed by its address and length in a uint64 rather than
// as a netip.Prefix (32 bytes, hashed with its zone's handle): for a file
// of a million CIDRs the map took 60 MiB and most of the load's time.
type prefixSeen struct {
	v4    map[uint64]struct{}
	other map[netip.Prefix]struct{}
	// extra counts the occurrences after the first of the prefixes added
	// more than once, for SetFileCache (prefixCounts); nil until there is
	// one.
	extra map[netip.Prefix]int
}

func newPrefixSeen(hint int) *prefixSeen {
	return &prefixSeen{v4: make(map[uint64]struct{}, hint), other: map[netip.Prefix]struct{}{}}
}

// v4Key is the key of an IPv4 prefix in prefixSeen.v4.
func v4Key(p netip.Prefix) uint64 {
	a := p.Addr().As4()
	return uint64(binary.BigEndian.Uint32(a[:]))<<8 | uint64(p.Bits())
}

// add adds p and reports whether it was new.
func (s *prefixSeen) add(p netip.Prefix) bool {
	if s.has(p) {
		if s.extra == nil {
			s.extra = map[netip.Prefix]int{}
		}
		s.extra[p]++
		return false
	}
	if p.Addr().Is4() {
		s.v4[v4Key(p)] = struct{}{}
	} else {
		s.other[p] = struct{}{}
	}
	return true
}

// has reports whether p was added.
func (s *prefixSeen) has(p netip.Prefix) bool {
	if p.Addr().Is4() {
		_, ok := s.v4[v4Key(p)]
		return ok
	}
	_, ok := s.other[p]
	return ok
}

// tooLarge is the error for a file over its size limit, in bytes.
type tooLarge int64

// Error implements error.
func (t tooLarge) Error() string {
	return fmt.Sprintf("the file is larger than the limit of %d MiB", int64(t)>>20)
}

// read reads the file the policy names name, of at most limit bytes.
func (l *loader) read(name string, limit int64) ([]byte, error) {
	fsname, err := fsName(name)
	if err != nil {
		return nil, err
	}
	data, err := readBounded(l.fsys, fsname, limit)
	if err == nil && l.bundle != nil {
		l.bundle["/"+fsname] = data
	}
	return data, err
}

// readDir reads the directory the policy names name, sorted by file name.
func (l *loader) readDir(name string) ([]fs.DirEntry, error) {
	fsname, err := fsName(name)
	if err != nil {
		return nil, err
	}
	return fs.ReadDir(l.fsys, fsname)
}

// fsName is the name, in a file system rooted at "/", of the file that
// the operating system names name: its absolute path without the slash.
func fsName(name string) (string, error) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return "", err
	}
	if rel := strings.TrimPrefix(filepath.ToSlash(abs), "/"); rel != "" {
		return rel, nil
	}
	return ".", nil
}

// readBounded reads a regular file of fsys of at most limit bytes. The size
// is checked before reading, and again while reading in case the file
// grows. Special files are refused before they are opened: opening a FIFO
// blocks.
func readBounded(fsys fs.FS, name string, limit int64) ([]byte, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, tooLarge(limit)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Room for the whole file at once: io.ReadAll's doublings copied and
	// cleared about three times a large set file's size.
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	if int64(len(data)) > limit {
		return nil, tooLarge(limit)
	}
	return data, nil
}

// readErrorText describes a read error without repeating the path, which
// the error's position already names.
func readErrorText(err error) string {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
