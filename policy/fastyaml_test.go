package policy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"
)

var fastYAMLMutations = flag.Int("fastyaml.mutations", 400, "mutations of each policy TestFastParseAsYAMLV3 reads")

// yamlV3Document is what parseDocument reads from yaml.v3: the first
// document, if data holds exactly one and no error.
func yamlV3Document(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, false
	}
	return &doc, true
}

// sameTree compares what the decoder reads of two trees: everything but
// comments, and the document node's own position.
func sameTree(t *testing.T, name string, want, got *yaml.Node) {
	t.Helper()
	if len(want.Content) == 1 && len(got.Content) == 1 && sameNode(want.Content[0], got.Content[0]) {
		return
	}
	opts := cmp.Options{
		cmpopts.IgnoreFields(yaml.Node{}, "HeadComment", "LineComment", "FootComment"),
		cmp.FilterPath(func(p cmp.Path) bool {
			// The document's position, at the top.
			return len(p) == 2 && (p.Last().String() == ".Line" || p.Last().String() == ".Column")
		}, cmp.Ignore()),
	}
	if d := cmp.Diff(want, got, opts); d != "" {
		t.Errorf("%s: fastParse differs from yaml.v3 (-yaml.v3 +fast):\n%s", name, d)
	}
}

// sameNode is sameTree below the document, quickly.
func sameNode(a, b *yaml.Node) bool {
	if a.Kind != b.Kind || a.Style != b.Style || a.Tag != b.Tag || a.Value != b.Value || a.Anchor != b.Anchor ||
		a.Alias != nil || b.Alias != nil || a.Line != b.Line || a.Column != b.Column || len(a.Content) != len(b.Content) {
		return false
	}
	for i := range a.Content {
		if !sameNode(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}

// checkFast checks fastParse on data against yaml.v3 and reports whether
// it took the document.
func checkFast(t *testing.T, name string, data []byte) bool {
	t.Helper()
	got, ok := fastParse(data)
	if !ok {
		return false
	}
	want, wantOK := yamlV3Document(data)
	if !wantOK {
		t.Errorf("%s: fastParse read a document yaml.v3 refuses:\n%s", name, data)
		return true
	}
	sameTree(t, name, want, got)
	return true
}

// yamlCorpus is every policy YAML of the repository, and the bench's.
func yamlCorpus(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../*/testdata/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("testdata/*.yaml")
	examples, _ := filepath.Glob("../demo/*.yaml")
	out := map[string][]byte{}
	for _, f := range append(append(files, more...), examples...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = data
	}
	var s strings.Builder
	s.WriteString("# generated\nversion: 1\ndefaults: {input: drop, forward: accept, output: accept}\nrules:\n")
	for i := range 300 {
		fmt.Fprintf(&s, "  - {name: port-%d, direction: input, ports: [{protocol: tcp, port: %d}], action: accept}\n", 1024+i, 1024+i)
	}
	out["bench"] = []byte(s.String())
	return out
}

// TestFastParseAsYAMLV3 reads every policy of the repository, and many
// mutations of them, with fastParse and yaml.v3: what fastParse takes, it
// reads exactly as yaml.v3 does.
func TestFastParseAsYAMLV3(t *testing.T) {
	corpus := yamlCorpus(t)
	fast := 0
	for name, data := range corpus {
		if checkFast(t, name, data) {
			fast++
		}
	}
	if fast < len(corpus)/2 {
		t.Errorf("fastParse took only %d of %d policies", fast, len(corpus))
	}
	r := rand.New(rand.NewPCG(4, 2))
	pieces := []string{" ", "  ", "-", "- ", ":", ": ", "#", " #", "'", "\"", "''", "{", "}", "[", "]", ",", "\n", "\n  ", "a", "1", "0x1", "~", "null", "true", "&a", "*a", "!t", "|", ">", "?", "---", "...", "\\", "%", "@", "1.5", "2001:db8::1", "10.0.0.0/8", "\t", "\r"}
	mutated, took := 0, 0
	for name, data := range corpus {
		for range *fastYAMLMutations {
			b := []byte(string(data))
			for range 1 + r.IntN(3) {
				at := r.IntN(len(b) + 1)
				switch r.IntN(3) {
				case 0: // insert
					p := pieces[r.IntN(len(pieces))]
					b = append(b[:at:at], append([]byte(p), b[at:]...)...)
				case 1: // delete a few bytes
					end := min(len(b), at+1+r.IntN(3))
					b = append(b[:at:at], b[end:]...)
				case 2: // swap a line's indentation
					lines := strings.Split(string(b), "\n")
					i := r.IntN(len(lines))
					lines[i] = strings.Repeat(" ", r.IntN(7)) + strings.TrimLeft(lines[i], " ")
					b = []byte(strings.Join(lines, "\n"))
				}
			}
			mutated++
			if checkFast(t, name+" mutated", b) {
				took++
			}
			if t.Failed() {
				return
			}
		}
	}
	t.Logf("fastParse took %d of %d policies and %d of %d mutations", fast, len(corpus), took, mutated)
}
