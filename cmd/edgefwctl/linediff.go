package main

import (
	"fmt"
	"strings"

	"github.com/edgefw/edgefw/internal/lcs"
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

// splitLines splits text into lines without their newlines.
func splitLines(text string) []string {
	if text == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}

// diffLines returns an edit script turning a into b that keeps the lines
// lcs.Keep keeps (a longest common subsequence, in bounded memory),
// deletions before additions in each change.
func diffLines(a, b []string) []diffLine {
	// Lines are numbered by their text from 1, since lcs.Keep never
	// matches the zero value and an empty line must match another.
	ids := make(map[string]int, len(a))
	number := func(lines []string) []int {
		out := make([]int, len(lines))
		for i, l := range lines {
			if ids[l] == 0 {
				ids[l] = len(ids) + 1
			}
			out[i] = ids[l]
		}
		return out
	}
	keepA, keepB := lcs.Keep(number(a), number(b))
	script := make([]diffLine, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for ; i < len(a) && !keepA[i]; i++ {
			script = append(script, diffLine{opDelete, a[i]})
		}
		for ; j < len(b) && !keepB[j]; j++ {
			script = append(script, diffLine{opAdd, b[j]})
		}
		if i < len(a) && j < len(b) {
			script = append(script, diffLine{opKeep, a[i]})
			i, j = i+1, j+1
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
