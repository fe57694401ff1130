package main

import (
	"fmt"
	"strings"
)

// diffOp is what happens to one line between the old and the new text.
type diffOp byte

const (
	opKeep   diffOp = ' '
	opDelete diffOp = '-'
	opAdd    diffOp = '+'
)

// diffLine is one line of an edit script.
type diffLine struct {
	op   diffOp
	text string
}

// maxLCSCells bounds the LCS table (int32 cells). Rulesets have a few
// thousand lines at most, and the common head and tail are trimmed first,
// so only a rewrite of a huge ruleset reaches it.
const maxLCSCells = 32 << 20

// splitLines splits text into lines without their newlines.
func splitLines(text string) []string {
	if text == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}

// diffLines returns an edit script turning a into b that keeps a longest
// common subsequence of lines, deletions before additions in each change.
func diffLines(a, b []string) []diffLine {
	var script []diffLine
	head := 0
	for head < len(a) && head < len(b) && a[head] == b[head] {
		script = append(script, diffLine{opKeep, a[head]})
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	script = append(script, diffMiddle(a[head:len(a)-tail], b[head:len(b)-tail])...)
	for _, line := range a[len(a)-tail:] {
		script = append(script, diffLine{opKeep, line})
	}
	return script
}

// diffMiddle is the LCS edit script of a and b by dynamic programming.
func diffMiddle(a, b []string) []diffLine {
	n, m := len(a), len(b)
	var script []diffLine
	if (n+1)*(m+1) > maxLCSCells {
		// Too big to be worth minimising: replace everything.
		for _, line := range a {
			script = append(script, diffLine{opDelete, line})
		}
		for _, line := range b {
			script = append(script, diffLine{opAdd, line})
		}
		return script
	}
	// lcs[i*(m+1)+j] is the LCS length of a[i:] and b[j:].
	lcs := make([]int32, (n+1)*(m+1))
	at := func(i, j int) int32 { return lcs[i*(m+1)+j] }
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i*(m+1)+j] = at(i+1, j+1) + 1
			} else {
				lcs[i*(m+1)+j] = max(at(i+1, j), at(i, j+1))
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			script = append(script, diffLine{opKeep, a[i]})
			i, j = i+1, j+1
		case j == m || (i < n && at(i+1, j) >= at(i, j+1)):
			script = append(script, diffLine{opDelete, a[i]})
			i++
		default:
			script = append(script, diffLine{opAdd, b[j]})
			j++
		}
	}
	return script
}

// unifiedDiff renders the difference of a and b in unified format with
// the given lines of context, or "" when they are equal.
func unifiedDiff(aName, bName string, a, b []string, context int) string {
	script := diffLines(a, b)
	var out strings.Builder
	// oldLine and newLine count the lines of a and b before script[k].
	oldLine, newLine := make([]int, len(script)+1), make([]int, len(script)+1)
	for k, l := range script {
		oldLine[k+1], newLine[k+1] = oldLine[k], newLine[k]
		if l.op != opAdd {
			oldLine[k+1]++
		}
		if l.op != opDelete {
			newLine[k+1]++
		}
	}
	for k := 0; k < len(script); {
		if script[k].op == opKeep {
			k++
			continue
		}
		// A hunk runs from context lines before this change to context
		// lines after the last change that is within 2*context of the next.
		start := max(k-context, 0)
		end := k
		for end < len(script) {
			if script[end].op != opKeep {
				end++
				continue
			}
			run := end
			for run < len(script) && script[run].op == opKeep {
				run++
			}
			if run == len(script) || run-end > 2*context {
				end = min(end+context, len(script))
				break
			}
			end = run
		}
		if out.Len() == 0 {
			fmt.Fprintf(&out, "--- %s\n+++ %s\n", aName, bName)
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n",
			hunkRange(oldLine[start], oldLine[end]-oldLine[start]),
			hunkRange(newLine[start], newLine[end]-newLine[start]))
		for _, l := range script[start:end] {
			out.WriteByte(byte(l.op))
			out.WriteString(l.text)
			out.WriteByte('\n')
		}
		k = end
	}
	return out.String()
}

// hunkRange renders a hunk's side as diff(1) does: "START,LEN" with a
// 1-based START, or the line before the hunk when it is empty.
func hunkRange(before, length int) string {
	if length == 0 {
		return fmt.Sprintf("%d,0", before)
	}
	if length == 1 {
		return fmt.Sprintf("%d", before+1)
	}
	return fmt.Sprintf("%d,%d", before+1, length)
}
