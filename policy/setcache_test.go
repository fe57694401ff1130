package policy

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSetFileCacheMatchesFullLoad edits a set file at random, line by
// line as an operator or a generator would (insert, delete, change,
// duplicate, comment, blank, CRLF, invalid), and checks after every edit
// that a load through the cache returns exactly what a load without it
// returns: the same policy, or the same errors at the same lines and
// columns. EDGEFW_SEED replays a failure.
func TestSetFileCacheMatchesFullLoad(t *testing.T) {
	seed := uint64(1)
	if s := os.Getenv("EDGEFW_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (EDGEFW_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	dir := t.TempDir()
	main := filepath.Join(dir, "policy.yaml")
	writeFiles(t, dir, map[string]string{
		"policy.yaml": "version: 1\nsets:\n  block: {file: set.txt}\n  also: {file: set.txt}\n  other: {file: other.txt}\n" +
			"rules:\n  - {name: deny, direction: input, from: {set: block}, action: drop}\n",
		"other.txt": "192.0.2.0/24\n",
	})
	setFile := filepath.Join(dir, "set.txt")

	lines := make([]string, 1500)
	for i := range lines {
		lines[i] = randomSetLine(rng)
	}
	cache := NewSetFileCache()
	// A Reader reads the set files through a cache of its own, as the
	// daemon's reloads do.
	reader := Reader{Sets: NewSetFileCache()}
	for step := range 400 {
		if step > 0 {
			lines = editSetLines(rng, lines)
		}
		data := strings.Join(lines, "\n")
		if rng.IntN(4) > 0 {
			data += "\n"
		}
		if err := os.WriteFile(setFile, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		want, wantErr := Load(main)
		got, _, gotErr := ReadBundleCached(main, cache)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("step %d: through the cache: %v\nwant: %v\nfile:\n%s", step, gotErr, wantErr, data)
		}
		if diff := cmp.Diff(want, got, cmpPrefix); diff != "" {
			t.Fatalf("step %d: through the cache (-full +cached):\n%s\nfile:\n%s", step, diff, data)
		}
		got, _, gotErr = reader.ReadBundle(main)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("step %d: through a Reader: %v\nwant: %v", step, gotErr, wantErr)
		}
		if diff := cmp.Diff(want, got, cmpPrefix); diff != "" {
			t.Fatalf("step %d: through a Reader (-full +read):\n%s", step, diff)
		}
	}
	if reader.Sets.edits < 80 {
		t.Errorf("only %d of 400 edits were parsed from the last parse through the Reader", reader.Sets.edits)
	}
	t.Logf("%d of 400 edits parsed from the last parse", cache.edits)
	if cache.edits < 80 {
		t.Errorf("only %d of 400 edits were parsed from the last parse: the test does not exercise the cache", cache.edits)
	}
}

// randomSetLine returns a line of a set file: mostly a CIDR from a small
// space (so duplicates happen), sometimes a comment, a blank, a CIDR
// with a comment or CRLF, an address, or an invalid entry.
func randomSetLine(rng *rand.Rand) string {
	cidr := func() string {
		if rng.IntN(20) == 0 {
			return fmt.Sprintf("2001:db8:%x::/48", rng.IntN(4000))
		}
		return fmt.Sprintf("10.%d.%d.0/24", rng.IntN(60), rng.IntN(250))
	}
	switch rng.IntN(40) {
	case 0:
		return "# a comment"
	case 1:
		return ""
	case 2:
		return "   "
	case 3:
		return cidr() + "  # why"
	case 4:
		return cidr() + "\r"
	case 5:
		return "  " + cidr()
	case 6:
		return fmt.Sprintf("192.168.%d.%d", rng.IntN(3), rng.IntN(250))
	}
	return cidr()
}

// invalidSetLines are lines a set file must not hold, each with its own error.
var invalidSetLines = []string{"10.0.0.300/24", "not-a-cidr", "10.0.0.0/8 10.1.0.0/16", "  10.0.0.1/24 # host bits", "0.0.0.0/0"}

// editSetLines makes one to three edits, mostly of one line.
func editSetLines(rng *rand.Rand, lines []string) []string {
	for range 1 + rng.IntN(3)*rng.IntN(2) {
		i := rng.IntN(len(lines) + 1)
		switch op := rng.IntN(10); {
		case rng.IntN(20) == 0 && i < len(lines): // made invalid
			lines[i] = invalidSetLines[rng.IntN(len(invalidSetLines))]
		case rng.IntN(2) == 0 && slices.ContainsFunc(lines, isInvalidSetLine): // fixed
			lines[slices.IndexFunc(lines, isInvalidSetLine)] = randomSetLine(rng)
		case op < 4 && i < len(lines): // change
			lines[i] = randomSetLine(rng)
		case op < 6: // insert, sometimes a copy of another line
			l := randomSetLine(rng)
			if rng.IntN(4) == 0 && len(lines) > 0 {
				l = lines[rng.IntN(len(lines))]
			}
			lines = append(lines[:i], append([]string{l}, lines[i:]...)...)
		case op < 8 && i < len(lines) && len(lines) > 1: // delete
			lines = append(lines[:i], lines[i+1:]...)
		case op < 9 && i+5 < len(lines): // swap two lines a little apart
			lines[i], lines[i+5] = lines[i+5], lines[i]
		default: // a block replaced
			n := min(rng.IntN(8), len(lines)-min(i, len(lines)))
			block := make([]string, rng.IntN(8))
			for j := range block {
				block[j] = randomSetLine(rng)
			}
			lines = append(lines[:i], append(block, lines[i+n:]...)...)
		}
	}
	if len(lines) == 0 {
		lines = append(lines, randomSetLine(rng))
	}
	return lines
}

func isInvalidSetLine(l string) bool { return slices.Contains(invalidSetLines, l) }

// TestChangedLines checks the bounds of the changed lines of two files:
// whole lines, the same before and after them, as few as the rule gives.
func TestChangedLines(t *testing.T) {
	for _, tc := range []struct {
		a, b          string
		start, suffix int
	}{
		{"1\n2\n3\n", "1\nX\n3\n", 2, 2},
		{"1\n2\n", "1\n0\n2\n", 2, 2},
		{"1\n2\n3\n4\n", "1\n2\n4\n", 4, 2},
		{"1\n2", "1\n3", 2, 0},
		{"1\n2", "1\n2\n3\n", 2, 0},
		{"", "1\n", 0, 0},
		{"same\n", "same\n", 5, 0},
		{"a\nb\n", "c\nb\n", 0, 2},
		{strings.Repeat("x\n", 5000) + "y\n" + strings.Repeat("z\n", 5000), strings.Repeat("x\n", 5000) + "w\n" + strings.Repeat("z\n", 5000), 10000, 10000},
	} {
		start, suffix := changedSpan([]byte(tc.a), []byte(tc.b))
		if start != tc.start || suffix != tc.suffix {
			t.Errorf("changedSpan(%.20q, %.20q) = %d, %d; want %d, %d", tc.a, tc.b, start, suffix, tc.start, tc.suffix)
		}
		if !bytes.Equal([]byte(tc.a)[:start], []byte(tc.b)[:start]) ||
			!bytes.Equal([]byte(tc.a)[len(tc.a)-suffix:], []byte(tc.b)[len(tc.b)-suffix:]) {
			t.Errorf("changedSpan(%.20q, %.20q): the bounds are not common", tc.a, tc.b)
		}
	}
}
