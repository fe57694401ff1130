package nft

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/edgefw/edgefw/policy"
	"github.com/google/go-cmp/cmp"
)

// testSeed returns EDGEFW_SEED, or 1.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(1)
	if s := os.Getenv("EDGEFW_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (EDGEFW_SEED replays it)", seed)
	return seed
}

// memoPrefix returns a prefix from a small space, so that prefixes
// overlap, touch, cover each other and repeat: mostly IPv4 /22 to /32 in
// 10.0.0.0/20, sometimes a wide one (/8, /0), sometimes IPv6.
func memoPrefix(rng *rand.Rand) netip.Prefix {
	switch rng.IntN(40) {
	case 0:
		return netip.MustParsePrefix("10.0.0.0/8")
	case 1:
		return netip.MustParsePrefix("0.0.0.0/0")
	case 2, 3, 4:
		var b [16]byte
		copy(b[:], netip.MustParseAddr("2001:db8::").AsSlice())
		b[14], b[15] = byte(rng.IntN(16)), byte(rng.IntN(256))
		return netip.PrefixFrom(netip.AddrFrom16(b), 116+rng.IntN(13)).Masked()
	}
	a := addr4(10<<24 | rng.Uint32N(1<<12))
	return netip.PrefixFrom(a, 22+rng.IntN(11)).Masked()
}

// editPrefixes returns ps with a run replaced, in a new slice, as
// policy.SetFileCache hands an edited file's prefixes back.
func editPrefixes(rng *rand.Rand, ps []netip.Prefix) []netip.Prefix {
	lo := rng.IntN(len(ps) + 1)
	hi := min(len(ps), lo+rng.IntN(4))
	added := make([]netip.Prefix, rng.IntN(4))
	for i := range added {
		added[i] = memoPrefix(rng)
	}
	return slices.Concat(ps[:lo], added, ps[hi:])
}

// TestCompilerMatchesCompile compiles a sequence of policies whose sets
// change at random, as reloads see them (the same slice again, a run
// of prefixes replaced, the same prefixes in a new slice, all new ones,
// a set gone and back, from a file to inline), through one Compiler, and
// checks each ruleset against Compile's. EDGEFW_SEED replays a failure.
func TestCompilerMatchesCompile(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 13))
	fresh := func(n int) []netip.Prefix {
		ps := make([]netip.Prefix, n)
		for i := range ps {
			ps[i] = memoPrefix(rng)
		}
		return ps
	}
	sets := map[string][]netip.Prefix{"block": fresh(300), "small": fresh(5), "wide": fresh(2000)}
	var c Compiler
	for step := range 600 {
		for name, ps := range sets {
			switch op := rng.IntN(20); {
			case op < 8: // unchanged: the same slice
			case op < 16:
				for range 1 + rng.IntN(2)*rng.IntN(6) {
					ps = editPrefixes(rng, ps)
				}
			case op == 16:
				ps = slices.Clone(ps)
			case op == 17:
				ps = fresh(rng.IntN(400))
			case op == 18:
				ps = nil
			default: // another order, as an edit that moves lines gives
				ps = slices.Clone(ps)
				rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
			}
			sets[name] = ps
		}
		p := manyRulesPolicy(2, -1)
		for _, name := range []string{"block", "small", "wide"} {
			if rng.IntN(10) > 0 { // sometimes a set is left out
				p.Sets = append(p.Sets, policy.Set{Name: name, Prefixes: sets[name]})
			}
		}
		if rng.IntN(2) == 0 {
			// Two sets of one file share its prefixes.
			p.Sets = append(p.Sets, policy.Set{Name: "alias", Prefixes: sets["block"]})
		}
		if rng.IntN(10) == 0 {
			// No validated policy names a set twice; one in code may.
			p.Sets = append(p.Sets, policy.Set{Name: "wide", Prefixes: sets["small"]})
		}
		got, err := c.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
			t.Fatalf("step %d: (-Compile +Compiler):\n%s", step, diff)
		}
	}
	if c.memo.patched < 200 {
		t.Errorf("only %d sets were patched: the test does not exercise patching", c.memo.patched)
	}
	t.Logf("%d sets patched, %d reused, %d merged anew", c.memo.patched, c.memo.reused, c.memo.merged)
}

// cmpAddr compares addresses by value.
var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// TestCompilerThroughReader edits a set file at random and reads the
// policy through a policy.Reader with a SetFileCache, as the daemon's
// reloads do, and sometimes switches the set from its file to an inline
// list and back; every read compiled through one Compiler must give what
// Compile gives.
func TestCompilerThroughReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 31))
	dir := t.TempDir()
	main := filepath.Join(dir, "policy.yaml")
	writePolicy := func(set string) {
		t.Helper()
		text := "version: 1\ndefaults: {input: drop, forward: drop, output: accept}\nsets:\n  block: " + set +
			"\nrules:\n  - {name: deny, direction: input, from: [{set: block}], action: drop}\n"
		if err := os.WriteFile(main, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writePolicy("{file: set.txt}")
	// A set file refuses 0.0.0.0/0.
	line := func() string {
		for {
			if p := memoPrefix(rng); p.Bits() > 0 {
				return p.String()
			}
		}
	}
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = line()
	}
	reader := policy.Reader{Sets: policy.NewSetFileCache()}
	var c Compiler
	for step := range 300 {
		switch op := rng.IntN(30); {
		case op == 0:
			writePolicy("[10.0.0.0/24, \"2001:db8::/64\", " + line() + "]")
		case op == 1:
			writePolicy("{file: set.txt}")
		default:
			i := rng.IntN(len(lines))
			switch rng.IntN(3) {
			case 0:
				lines[i] = line()
			case 1:
				lines = slices.Insert(lines, i, line())
			default:
				lines = slices.Delete(lines, i, i+1)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "set.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p, _, err := reader.ReadBundle(main)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		got, err := c.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
			t.Fatalf("step %d: (-Compile +Compiler):\n%s", step, diff)
		}
	}
	if c.memo.patched < 100 {
		t.Errorf("only %d sets were patched: the test does not exercise patching", c.memo.patched)
	}
	t.Logf("%d sets patched, %d reused, %d merged anew", c.memo.patched, c.memo.reused, c.memo.merged)
}

// BenchmarkCompileChangedSetLine compiles a policy whose set's first
// prefix changes and changes back, as the daemon's reloads see one
// changed line of a set file (a new slice, the run of the line
// replaced): with Compile, and with one Compiler.
func BenchmarkCompileChangedSetLine(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		prefixes := randomPrefixes(uint64(n), n)
		changed := slices.Clone(prefixes)
		changed[0] = netip.MustParsePrefix("10.0.0.1/32") // randomPrefixes never uses 10/8
		policies := [2]*policy.Policy{largeSetPolicy(prefixes), largeSetPolicy(changed)}
		for _, memo := range []bool{false, true} {
			name := fmt.Sprintf("%d/Compile", n)
			var c Compiler
			compile := Compile
			if memo {
				name = fmt.Sprintf("%d/Compiler", n)
				compile = c.Compile
				if _, err := compile(policies[0]); err != nil {
					b.Fatal(err)
				}
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				k := 0
				for b.Loop() {
					k++
					if _, err := compile(policies[k%2]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestPatchRefusesDisagreement checks that keys which disagree with the
// ranges they are said to have been merged into (a caller that modified
// a policy's prefixes after compiling it) make a patch fail, which the
// Compiler answers by merging the set anew, rather than patch wrongly.
func TestPatchRefusesDisagreement(t *testing.T) {
	key := func(s string) uint64 { return ipv4PrefixKey(netip.MustParsePrefix(s)) }
	missing := []uint64{key("10.0.0.9/32")}
	keys := []uint64{key("10.0.0.0/24"), key("10.0.1.0/24")}
	if _, ok := replaceKeys(slices.Clone(keys), missing, nil); ok {
		t.Error("a few keys: removed a key that was not there")
	}
	many := make([]uint64, maxInPlaceKeys+1)
	for i := range many {
		many[i] = key(fmt.Sprintf("10.1.%d.0/24", i))
	}
	if _, ok := replaceKeys(slices.Clone(keys), missing, many); ok {
		t.Error("many keys: removed a key that was not there")
	}
	// 10.0.0.4/30 is in keys, but old has no range of it.
	wide := key("10.0.0.4/30")
	if _, ok := patchIPv4Ranges(nil, []uint64{wide}, []uint64{key("10.0.0.4/32")}); ok {
		t.Error("patched ranges that disagree with the keys")
	}
}
