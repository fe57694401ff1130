package nft

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestElementsAfter derives what the netlink Kernel knows of its sets
// after a commit from the ops it sent, as the kernel applies them.
func TestElementsAfter(t *testing.T) {
	r := func(p string) AddrRange { return prefixRange(mustPrefix(p)) }
	s := &AddrSet{Name: "s"}
	before := map[string][]AddrRange{"s": {r("10.0.0.0/24"), r("10.0.2.0/24")}, "gone": {r("10.9.0.0/16")}, "flushed": {r("10.8.0.0/16")}}
	after := elementsAfter(before, []Op{
		DeleteElements{Set: s, Ranges: []AddrRange{r("10.0.2.0/24")}},
		AddElements{Set: s, Ranges: []AddrRange{r("10.0.1.0/24"), r("10.0.0.0/24")}},
		DeleteSet{Name: "gone"},
		AddSet{Set: &AddrSet{Name: "new", Ranges: []AddrRange{r("10.7.0.0/16")}}},
		ReplaceElements{Set: &AddrSet{Name: "flushed", Ranges: []AddrRange{r("10.6.0.0/16")}}},
	})
	want := map[string][]AddrRange{"s": {r("10.0.0.0/24"), r("10.0.1.0/24")}, "new": {r("10.7.0.0/16")}, "flushed": {r("10.6.0.0/16")}}
	if !maps.EqualFunc(after, want, slices.Equal) {
		t.Errorf("after = %v, want %v", after, want)
	}
	if len(before["s"]) != 2 || before["gone"] == nil {
		t.Errorf("elementsAfter changed what it started from: %v", before)
	}
	if after := elementsAfter(before, []Op{DeleteTable{}}); len(after) != 0 {
		t.Errorf("after deleting the table: %v", after)
	}
}

// TestSetDiffAndMergeMatchNaive holds the one-walk diff and merge of
// sorted ranges to what searching and sorting everything gives, on
// random sets with random changes, sorted and not.
func TestSetDiffAndMergeMatchNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomSet := func(n int) []AddrRange {
		seen := map[AddrRange]bool{}
		var out []AddrRange
		for len(out) < n {
			a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), 0})
			r := AddrRange{From: a, To: netip.AddrFrom4([4]byte{10, a.As4()[1], a.As4()[2], 255})}
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
		return out
	}
	naiveDiff := func(have, want []AddrRange) (del, add []AddrRange) {
		inHave, inWant := map[AddrRange]bool{}, map[AddrRange]bool{}
		for _, r := range have {
			inHave[r] = true
		}
		for _, r := range want {
			inWant[r] = true
		}
		for _, r := range have {
			if !inWant[r] {
				del = append(del, r)
			}
		}
		for _, r := range want {
			if !inHave[r] {
				add = append(add, r)
			}
		}
		return del, add
	}
	for i := range 500 {
		have, want := randomSet(rng.IntN(40)), randomSet(rng.IntN(40))
		if i%2 == 0 {
			// A changed element or two of the same set.
			want = slices.Clone(have)
			if len(want) > 0 {
				want = slices.Delete(want, 0, 1)
			}
			want = append(want, randomSet(2)...)
		}
		sorted := i%5 != 0
		if sorted {
			slices.SortFunc(have, compareRanges)
			want = slices.Compact(slices.SortedFunc(slices.Values(want), compareRanges))
		}
		del, add := diffRanges(have, want)
		nd, na := naiveDiff(have, want)
		if sorted && (!slices.Equal(del, nd) || !slices.Equal(add, na)) {
			t.Fatalf("diffRanges(%v, %v) = %v, %v; want %v, %v", have, want, del, add, nd, na)
		}
		kept := withoutRanges(have, del)
		naiveKept := slices.DeleteFunc(slices.Clone(have), func(r AddrRange) bool { return slices.Contains(del, r) })
		if !slices.Equal(kept, naiveKept) {
			t.Fatalf("withoutRanges(%v, %v) = %v, want %v", have, del, kept, naiveKept)
		}
		// The known elements after the patch: the ruleset's own list when
		// the patch gives it, the patched list whatever the op claims.
		claimed := want
		if i%3 == 0 && sorted {
			claimed = append(slices.Clone(want), AddrRange{From: netip.MustParseAddr("192.0.2.1"), To: netip.MustParseAddr("192.0.2.1")})
		}
		set := &AddrSet{Name: "s", Ranges: claimed}
		var ops []Op
		if len(del) > 0 {
			ops = append(ops, DeleteElements{Set: set, Ranges: del})
		}
		if len(add) > 0 {
			ops = append(ops, AddElements{Set: set, Ranges: add})
		}
		patched := elementsAfter(map[string][]AddrRange{"s": have}, ops)["s"]
		naivePatched := slices.Compact(slices.SortedFunc(slices.Values(slices.Concat(naiveKept, add)), compareRanges))
		if sorted && len(have) > 0 && len(ops) > 0 && !slices.Equal(patched, naivePatched) {
			t.Fatalf("elementsAfter(%v, %v) = %v, want %v", have, ops, patched, naivePatched)
		}
		merged := withRanges(have, add)
		naive := slices.Compact(slices.SortedFunc(slices.Values(slices.Concat(have, add)), compareRanges))
		if len(have) > 0 && !slices.Equal(merged, naive) {
			t.Fatalf("withRanges(%v, %v) = %v, want %v", have, add, merged, naive)
		}
	}
}
