package nft

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestLCS checks the rule diff on random chains: what it keeps is a
// common subsequence, as long as the exact one while the exact table is
// affordable, and the patience fallback keeps a common subsequence too.
func TestLCS(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	chain := func(n, alphabet int) []string {
		out := make([]string, n)
		for i := range out {
			if v := rng.IntN(alphabet + 1); v < alphabet {
				out[i] = fmt.Sprint(v)
			} // else "": a rule without a hash
		}
		return out
	}
	for i := range 500 {
		a, b := chain(rng.IntN(30), 1+rng.IntN(20)), chain(rng.IntN(30), 1+rng.IntN(20))
		if i%3 == 0 {
			b = append(append(append([]string{}, a[:len(a)/3]...), b...), a[len(a)/2:]...)
		}
		keepA, keepB := lcs(a, b)
		n := checkCommon(t, a, b, keepA, keepB)
		exA, _ := exactLCS(a, b)
		if want := countTrue(exA); n != want {
			t.Fatalf("lcs(%q, %q) keeps %d, the longest is %d", a, b, n, want)
		}
		pa, pb := patienceLCS(a, b)
		checkCommon(t, a, b, pa, pb)
	}

	// Large chains: one rule changed in the middle, and one at each end
	// with a large different middle.
	big := make([]string, 5000)
	for i := range big {
		big[i] = fmt.Sprint("rule", i)
	}
	other := append([]string{}, big...)
	other[2500] = "changed"
	keepA, keepB := lcs(big, other)
	if n := checkCommon(t, big, other, keepA, keepB); n != len(big)-1 {
		t.Errorf("one change in 5000: kept %d", n)
	}
	other = append([]string{}, big...)
	other[10], other[4990] = "x", "y"
	other[100], other[200] = other[200], other[100]
	keepA, keepB = lcs(big, other)
	if n := checkCommon(t, big, other, keepA, keepB); n != len(big)-4 {
		t.Errorf("two changes and a swap in 5000: kept %d, want %d", n, len(big)-4)
	}
}

// checkCommon fails unless the kept elements of a and b are equal, in
// order, and not empty strings; it returns how many are kept.
func checkCommon(t *testing.T, a, b []string, keepA, keepB []bool) int {
	t.Helper()
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
	if fmt.Sprint(ka) != fmt.Sprint(kb) {
		t.Fatalf("kept %q of a but %q of b", ka, kb)
	}
	for _, s := range ka {
		if s == "" {
			t.Fatalf("kept a rule without a hash")
		}
	}
	return len(ka)
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
