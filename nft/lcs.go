package nft

import "slices"

// lcs marks the elements of a and b that belong to a longest common
// subsequence, or nearly: the rules that can stay where they are. Empty
// strings (rules without a hash) never match.
//
// A common prefix and suffix are kept as they are; that is every change a
// reload usually makes. What lies between is matched exactly while small,
// and by the longest increasing subsequence of the strings that occur once
// on each side (patience diff) when the exact table would be too large.
func lcs(a, b []string) (keepA, keepB []bool) {
	keepA, keepB = make([]bool, len(a)), make([]bool, len(b))
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] && a[pre] != "" {
		keepA[pre], keepB[pre] = true, true
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] && a[len(a)-1-suf] != "" {
		keepA[len(a)-1-suf], keepB[len(b)-1-suf] = true, true
		suf++
	}
	midA, midB := a[pre:len(a)-suf], b[pre:len(b)-suf]
	var ka, kb []bool
	if len(midA)*len(midB) <= maxLCSCells {
		ka, kb = exactLCS(midA, midB)
	} else {
		ka, kb = patienceLCS(midA, midB)
	}
	copy(keepA[pre:], ka)
	copy(keepB[pre:], kb)
	return keepA, keepB
}

// maxLCSCells bounds the table of the exact LCS (4 bytes a cell).
const maxLCSCells = 1 << 22

func exactLCS(a, b []string) (keepA, keepB []bool) {
	n, m := len(a), len(b)
	w := m + 1
	dp := make([]int32, (n+1)*w)
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] && a[i] != "" {
				dp[i*w+j] = dp[(i+1)*w+j+1] + 1
			} else {
				dp[i*w+j] = max(dp[(i+1)*w+j], dp[i*w+j+1])
			}
		}
	}
	keepA, keepB = make([]bool, n), make([]bool, m)
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case a[i] == b[j] && a[i] != "":
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

func patienceLCS(a, b []string) (keepA, keepB []bool) {
	keepA, keepB = make([]bool, len(a)), make([]bool, len(b))
	type seen struct{ inA, inB, posA int }
	count := map[string]*seen{}
	for i, s := range a {
		if s == "" {
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
	// Positions in a of b's unique common strings, in b's order; their
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
