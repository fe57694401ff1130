package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Bundle is the files of one policy by absolute path: its main file, the
// drop-ins beside it and the set files they name, as Policy.Files lists
// them. It carries a policy to where its files cannot be read: edgefwctl
// reads one with ReadBundle and sends it, and edgefwd, which may not read
// the operator's files, parses it with ParseBundle, so that it checks the
// very bytes that were validated and its errors name the operator's files,
// lines and columns.
type Bundle map[string][]byte

// ReadBundle is Load that also returns the bytes of every file it read.
func ReadBundle(path string) (*Policy, Bundle, error) { return ReadBundleCached(path, nil) }

// ReadBundleCached is ReadBundle that parses set files from their last
// parse in cache (nil: none), and keeps them there for the next.
func ReadBundleCached(path string, cache *SetFileCache) (*Policy, Bundle, error) {
	l := newLoader(osRoot())
	l.bundle = Bundle{}
	if cache != nil {
		l.setCache = cache
		cache.begin()
		defer cache.end()
	}
	p, err := l.load(path)
	if err != nil {
		return nil, nil, err
	}
	return p, l.bundle, nil
}

// ParseBundle loads the policy whose main file is path (absolute) from the
// files of b, exactly as Load would if they were on disk: drop-ins are the
// files of policy.d/ beside path that b holds, and set files resolve as
// their paths say. It refuses a bundle that lacks a file the policy names,
// and one that holds a file the policy does not use: nothing reaches the
// daemon's view of a policy that the operator's files do not say.
func ParseBundle(b Bundle, path string) (*Policy, error) {
	var errs ErrorList
	if !filepath.IsAbs(path) {
		errs = append(errs, &Error{Pos: Pos{File: path}, Msg: "the main file of a bundle must be named by its absolute path"})
	}
	names := slices.Sorted(maps.Keys(b))
	for _, name := range names {
		if !filepath.IsAbs(name) || filepath.Clean(name) != name {
			errs = append(errs, &Error{Pos: Pos{File: name}, Msg: "a bundle names its files by absolute, clean paths, as Policy.Files does"})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	p, err := LoadFS(newBundleFS(b), path)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if !slices.Contains(p.Files, name) {
			errs = append(errs, &Error{Pos: Pos{File: name}, Msg: "not a file of the policy: a bundle holds only the main file, the drop-ins beside it (" + dropInDir + "/*.yaml) and the set files they name"})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// errNotInBundle is why a file a policy names cannot be read from its
// bundle. It is fs.ErrNotExist, as for a file missing on disk.
var errNotInBundle = fmt.Errorf("missing from the files sent with the policy (%w)", fs.ErrNotExist)

// bundleFS serves a Bundle as an fs.FS rooted at "/", as LoadFS reads
// files: /etc/edgefw/policy.yaml is etc/edgefw/policy.yaml in it. Its
// directories are those of its files' paths.
type bundleFS struct {
	files map[string][]byte
	// dirs lists each directory's entries, sorted by name.
	dirs map[string][]fs.DirEntry
}

func newBundleFS(b Bundle) *bundleFS {
	fsys := &bundleFS{files: map[string][]byte{}, dirs: map[string][]fs.DirEntry{".": nil}}
	children := map[string]map[string]bool{} // directory → child → is a directory
	for name, data := range b {
		name = strings.TrimPrefix(name, "/")
		fsys.files[name] = data
		for child, isDir := name, false; child != "."; child, isDir = path.Dir(child), true {
			parent := path.Dir(child)
			if children[parent] == nil {
				children[parent] = map[string]bool{}
			}
			// A name both a file and a directory's is a directory: the
			// file cannot be read, so ParseBundle refuses it.
			children[parent][path.Base(child)] = children[parent][path.Base(child)] || isDir
		}
	}
	for dir, entries := range children {
		for _, child := range slices.Sorted(maps.Keys(entries)) {
			info := bundleInfo{name: child, dir: entries[child]}
			if !info.dir {
				info.size = int64(len(fsys.files[path.Join(dir, child)]))
			}
			fsys.dirs[dir] = append(fsys.dirs[dir], fs.FileInfoToDirEntry(info))
		}
	}
	return fsys
}

// Open opens a file or a directory of the bundle.
func (b *bundleFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if data, ok := b.files[name]; ok {
		return &bundleFile{info: bundleInfo{name: path.Base(name), size: int64(len(data))}, r: bytes.NewReader(data)}, nil
	}
	if entries, ok := b.dirs[name]; ok {
		return &bundleDir{info: bundleInfo{name: path.Base(name), dir: true}, entries: entries}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: errNotInBundle}
}

// bundleInfo describes a file or directory of a bundle.
type bundleInfo struct {
	name string
	size int64
	dir  bool
}

func (i bundleInfo) Name() string       { return i.name }
func (i bundleInfo) Size() int64        { return i.size }
func (i bundleInfo) ModTime() time.Time { return time.Time{} }
func (i bundleInfo) IsDir() bool        { return i.dir }
func (i bundleInfo) Sys() any           { return nil }
func (i bundleInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

// bundleFile is an open file of a bundle.
type bundleFile struct {
	info bundleInfo
	r    *bytes.Reader
}

func (f *bundleFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *bundleFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *bundleFile) Close() error               { return nil }

// bundleDir is an open directory of a bundle.
type bundleDir struct {
	info    bundleInfo
	entries []fs.DirEntry
	read    int // entries returned by ReadDir so far
}

func (d *bundleDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *bundleDir) Close() error               { return nil }
func (d *bundleDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

// ReadDir returns the next n entries, or all that are left if n <= 0.
func (d *bundleDir) ReadDir(n int) ([]fs.DirEntry, error) {
	left := d.entries[d.read:]
	if n > 0 {
		if len(left) == 0 {
			return nil, io.EOF
		}
		left = left[:min(n, len(left))]
	}
	d.read += len(left)
	return slices.Clone(left), nil
}
