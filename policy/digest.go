package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// A Digest says which files a policy was loaded from and what they held:
// its main file, the drop-ins and set files read with it, and a SHA-256
// over their paths and bytes. Loading is a function of these files alone,
// so while Unchanged holds, loading the main file again gives the same
// policy, and edgefwd --once need not load and compile it to know.
type Digest struct {
	// Main is the main file's absolute path.
	Main string `json:"main"`
	// Files are the absolute paths of every file read, sorted.
	Files []string `json:"files"`
	// Sum is the hex SHA-256 of the files (see sum).
	Sum string `json:"sum"`
}

// DigestBundle returns the Digest of the policy whose main file is main
// (absolute), read by ReadBundle into b.
func DigestBundle(main string, b Bundle) Digest {
	files := slices.Sorted(maps.Keys(b))
	return Digest{Main: main, Files: files, Sum: sum(files, func(name string) ([]byte, error) { return b[name], nil })}
}

// Unchanged reports whether loading d.Main again would read the same
// files with the same bytes: policy.d/ beside it holds the same drop-ins,
// and every file reads as it did. Any doubt (a file gone or unreadable, a
// Digest that is not whole) is false.
func (d Digest) Unchanged() bool {
	if !filepath.IsAbs(d.Main) || !slices.Contains(d.Files, d.Main) || !slices.IsSorted(d.Files) || d.Sum == "" {
		return false
	}
	dir := filepath.Join(filepath.Dir(d.Main), dropInDir)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	for _, e := range entries {
		if isDropIn(e.Name()) && !slices.Contains(d.Files, filepath.Join(dir, e.Name())) {
			return false
		}
	}
	for _, f := range d.Files {
		if filepath.Dir(f) == dir && isDropIn(filepath.Base(f)) && !slices.ContainsFunc(entries, func(e fs.DirEntry) bool { return e.Name() == filepath.Base(f) }) {
			return false
		}
	}
	got := sum(d.Files, func(name string) ([]byte, error) { return os.ReadFile(name) })
	return got != "" && got == d.Sum
}

// sum hashes each file's path, length and bytes in the order given; ""
// if one cannot be read.
func sum(files []string, read func(string) ([]byte, error)) string {
	h := sha256.New()
	for _, name := range files {
		data, err := read(name)
		if err != nil {
			return ""
		}
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(data))))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}
