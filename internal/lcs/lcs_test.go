package lcs

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// TestKeepRandom checks Keep on random sequences: what it keeps is a
// common subsequence, as long as the exact one while the exact table is
// affordable, and the patience fallback keeps a common subsequence too.
func TestKeepRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	seq := func(n, alphabet int) []string {
		out := make([]string, n)
		for i := range out {
			if v := rng.IntN(alphabet + 1); v < alphabet {
				out[i] = fmt.Sprint(v)
			} // else "": an element without an identity
		}
		return out
	}
	for i := range 500 {
		a, b := seq(rng.IntN(30), 1+rng.IntN(20)), seq(rng.IntN(30), 1+rng.IntN(20))
		if i%3 == 0 {
			b = append(append(append([]string{}, a[:len(a)/3]...), b...), a[len(a)/2:]...)
		}
		keepA, keepB := Keep(a, b)
		n := checkCommon(t, a, b, keepA, keepB)
		if want := longest(a, b); n != want {
			t.Fatalf("Keep(%q, %q) keeps %d, the longest is %d", a, b, n, want)
		}
		pa, pb := patience(a, b)
		checkCommon(t, a, b, pa, pb)
	}
}

func TestKeepCases(t *testing.T) {
	for _, tc := range []struct {
		name         string
		a, b         []string
		keepA, keepB []bool
	}{
		{name: "both empty", keepA: []bool{}, keepB: []bool{}},
		{name: "from nothing", b: []string{"x", "y"}, keepA: []bool{}, keepB: []bool{false, false}},
		{name: "to nothing", a: []string{"x", "y"}, keepA: []bool{false, false}, keepB: []bool{}},
		{
			name: "equal", a: []string{"x", "y"}, b: []string{"x", "y"},
			keepA: []bool{true, true}, keepB: []bool{true, true},
		},
		{
			name: "zero values never match", a: []string{"x", "", "y"}, b: []string{"x", "", "y"},
			keepA: []bool{true, false, true}, keepB: []bool{true, false, true},
		},
		{
			name: "only zero values", a: []string{"", ""}, b: []string{""},
			keepA: []bool{false, false}, keepB: []bool{false},
		},
		{
			name: "a change keeps deletions before insertions", a: []string{"x", "a", "y"}, b: []string{"x", "b", "y"},
			keepA: []bool{true, false, true}, keepB: []bool{true, false, true},
		},
		{
			name: "a move keeps the longer run", a: []string{"a", "b", "c", "d"}, b: []string{"b", "c", "d", "a"},
			keepA: []bool{false, true, true, true}, keepB: []bool{true, true, true, false},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keepA, keepB := Keep(tc.a, tc.b)
			if !slices.Equal(keepA, tc.keepA) || !slices.Equal(keepB, tc.keepB) {
				t.Errorf("Keep(%q, %q) = %v, %v; want %v, %v", tc.a, tc.b, keepA, keepB, tc.keepA, tc.keepB)
			}
		})
	}
}

// TestKeepInts: Keep is generic; 0 is the int that matches nothing.
func TestKeepInts(t *testing.T) {
	keepA, keepB := Keep([]int{1, 0, 2, 3}, []int{1, 0, 3})
	if !slices.Equal(keepA, []bool{true, false, false, true}) || !slices.Equal(keepB, []bool{true, false, true}) {
		t.Errorf("Keep = %v, %v", keepA, keepB)
	}
}

// TestKeepLarge: chains of thousands of rules with a few changes keep
// everything else, on the exact path and on the patience path.
func TestKeepLarge(t *testing.T) {
	big := numbered(5000)
	other := slices.Clone(big)
	other[2500] = "changed"
	keepA, keepB := Keep(big, other)
	if n := checkCommon(t, big, other, keepA, keepB); n != len(big)-1 {
		t.Errorf("one change in 5000: kept %d", n)
	}
	other = slices.Clone(big)
	other[10], other[4990] = "x", "y"
	other[100], other[200] = other[200], other[100]
	keepA, keepB = Keep(big, other)
	if n := checkCommon(t, big, other, keepA, keepB); n != len(big)-4 {
		t.Errorf("two changes and a swap in 5000: kept %d, want %d", n, len(big)-4)
	}
}

// TestKeepMemoryIsBounded diffs sequences of 20,000 elements whose
// differences span almost all of them, where an LCS table would take
// 1.6 GB, and one just within the exact table's bound. Keep must stay
// within the exact table's 16 MiB and some linear overhead.
func TestKeepMemoryIsBounded(t *testing.T) {
	const n = 20000
	const limit = 24 << 20
	scattered := numbered(n)
	for i := 1; i < n-1; i += 100 {
		scattered[i] = fmt.Sprint("changed ", i)
	}
	atBound := numbered(2048) // 2048 × 2048 cells: exactly maxCells
	for i := range atBound {
		atBound[i] += " (new)"
	}
	for _, tc := range []struct {
		name string
		a, b []string
		kept int
	}{
		{"20000 lines, 200 scattered changes (patience)", numbered(n), scattered, n - 200},
		{"2048 lines, all changed (exact table at its bound)", numbered(2048), atBound, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var keepA, keepB []bool
			allocated := allocatedBy(func() { keepA, keepB = Keep(tc.a, tc.b) })
			if got := checkCommon(t, tc.a, tc.b, keepA, keepB); got != tc.kept {
				t.Errorf("kept %d, want %d", got, tc.kept)
			}
			t.Logf("Keep allocated %d KiB", allocated>>10)
			if allocated > limit {
				t.Errorf("Keep allocated %d MiB, want at most %d MiB", allocated>>20, limit>>20)
			}
		})
	}
}

// allocatedBy returns how many bytes f allocated on the heap.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestLongestIncreasing(t *testing.T) {
	for _, tc := range []struct {
		xs   []int
		want int
	}{
		{nil, 0}, {[]int{5}, 1}, {[]int{3, 2, 1}, 1}, {[]int{1, 2, 3}, 3},
		{[]int{2, 8, 3, 9, 4, 1, 5}, 4}, {[]int{1, 1, 1}, 1},
	} {
		idx := longestIncreasing(tc.xs)
		if len(idx) != tc.want {
			t.Errorf("longestIncreasing(%v) has length %d, want %d", tc.xs, len(idx), tc.want)
		}
		for k := 1; k < len(idx); k++ {
			if idx[k] <= idx[k-1] || tc.xs[idx[k]] <= tc.xs[idx[k-1]] {
				t.Errorf("longestIncreasing(%v) = %v: not a strictly increasing subsequence", tc.xs, idx)
			}
		}
	}
}

func numbered(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint("rule ", i)
	}
	return out
}

// longest is the length of a longest common subsequence of a and b in
// which empty strings match nothing, by the textbook recurrence.
func longest(a, b []string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			if a[i] == b[j] && a[i] != "" {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(prev[j+1], cur[j])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkCommon fails unless the kept elements of a and b are equal, in
// order, and not empty strings; it returns how many are kept.
func checkCommon(t *testing.T, a, b []string, keepA, keepB []bool) int {
	t.Helper()
	if len(keepA) != len(a) || len(keepB) != len(b) {
		t.Fatalf("keep flags of lengths %d and %d for sequences of %d and %d", len(keepA), len(keepB), len(a), len(b))
	}
	var ka, kb []string
	for i, k := range keepA {
		if k {
			ka = append(ka, a[i])
		}
	}
	for j, k := range keepB {
		if k {
			kb = append(kb, b[j])
		}
	}
	if !slices.Equal(ka, kb) {
		t.Fatalf("kept %q of a but %q of b", ka, kb)
	}
	if slices.Contains(ka, "") {
		t.Fatalf("kept an element without an identity")
	}
	return len(ka)
}
