// Package lcs finds what two sequences have in common: the elements of a
// longest common subsequence, or nearly one when the sequences are too
// large to afford the exact answer. It is edgefw's one diff algorithm: the
// nftables planner keeps the rules of a chain that can stay where they are,
// and edgefwctl diff renders the lines between them.
//
// Memory stays bounded whatever the input: a naive LCS table for two
// 10,000-rule chains takes more than a gigabyte, so the exact table is built
// only up to maxCells cells, and larger inputs are matched by patience diff
// in linear memory.
package lcs

import "slices"

// maxCells bounds the table of the exact LCS (4 bytes a cell, so 16 MiB).
const maxCells = 1 << 22

// Keep marks the elements of a and b that belong to a longest common
// subsequence, or nearly: the elements that can stay where they are while
// the others are deleted from a and inserted from b.
//
// The zero value of T stands for an element without an identity (in nft, a
// rule that must be rewritten) and matches nothing, not even another zero.
//
// A common prefix and suffix are kept as they are; that is every change a
// reload usually makes. What lies between is matched exactly while the
// table of its lengths has at most maxCells cells, and otherwise by the
// longest increasing subsequence of the elements that occur once on each
// side (patience diff), which keeps a common subsequence, not always a
// longest one.
func Keep[T comparable](a, b []T) (keepA, keepB []bool) {
	var zero T
	keepA, keepB = make([]bool, len(a)), make([]bool, len(b))
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] && a[pre] != zero {
		keepA[pre], keepB[pre] = true, true
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] && a[len(a)-1-suf] != zero {
		keepA[len(a)-1-suf], keepB[len(b)-1-suf] = true, true
		suf++
	}
	midA, midB := a[pre:len(a)-suf], b[pre:len(b)-suf]
	var ka, kb []bool
	if len(midA)*len(midB) <= maxCells {
		ka, kb = exact(midA, midB)
	} else {
		ka, kb = patience(midA, midB)
	}
	copy(keepA[pre:], ka)
	copy(keepB[pre:], kb)
	return keepA, keepB
}

// exact is the LCS by dynamic programming over a table of len(a)+1 by
// len(b)+1 lengths. Where two choices keep as much, it skips an element of
// a first, so that a change reads as deletions before insertions.
func exact[T comparable](a, b []T) (keepA, keepB []bool) {
	var zero T
	n, m := len(a), len(b)
	w := m + 1
	dp := make([]int32, (n+1)*w)
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] && a[i] != zero {
				dp[i*w+j] = dp[(i+1)*w+j+1] + 1
			} else {
				dp[i*w+j] = max(dp[(i+1)*w+j], dp[i*w+j+1])
			}
		}
	}
	keepA, keepB = make([]bool, n), make([]bool, m)
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case a[i] == b[j] && a[i] != zero:
			keepA[i], keepB[j] = true, true
			i++
			j++
		case dp[(i+1)*w+j] >= dp[i*w+j+1]:
			i++
		default:
			j++
		}
	}
	return keepA, keepB
}

// patience keeps the longest increasing run of the elements that occur
// exactly once in a and once in b, in linear memory.
func patience[T comparable](a, b []T) (keepA, keepB []bool) {
	var zero T
	keepA, keepB = make([]bool, len(a)), make([]bool, len(b))
	type seen struct{ inA, inB, posA int }
	count := map[T]*seen{}
	for i, s := range a {
		if s == zero {
			continue
		}
		if count[s] == nil {
			count[s] = &seen{}
		}
		count[s].inA++
		count[s].posA = i
	}
	for _, s := range b {
		if c := count[s]; c != nil {
			c.inB++
		}
	}
	// Positions in a of b's unique common elements, in b's order; their
	// longest increasing run is what can stay.
	var posA, posB []int
	for j, s := range b {
		if c := count[s]; c != nil && c.inA == 1 && c.inB == 1 {
			posA = append(posA, c.posA)
			posB = append(posB, j)
		}
	}
	for _, k := range longestIncreasing(posA) {
		keepA[posA[k]], keepB[posB[k]] = true, true
	}
	return keepA, keepB
}

// longestIncreasing returns the indices of a longest strictly increasing
// subsequence of xs, in O(n log n).
func longestIncreasing(xs []int) []int {
	var tails []int // tails[l]: index of the smallest end of a run of length l+1
	prev := make([]int, len(xs))
	for i, x := range xs {
		l, _ := slices.BinarySearchFunc(tails, x, func(t, x int) int { return xs[t] - x })
		if l > 0 {
			prev[i] = tails[l-1]
		} else {
			prev[i] = -1
		}
		if l == len(tails) {
			tails = append(tails, i)
		} else {
			tails[l] = i
		}
	}
	out := make([]int, len(tails))
	for k, i := len(tails)-1, -1; k >= 0; k-- {
		if k == len(tails)-1 {
			i = tails[k]
		}
		out[k] = i
		i = prev[i]
	}
	return out
}
