package main

import "testing"

// TestDiffLinesKeepsEmptyLines: lcs.Keep never matches its zero value, so
// diffLines numbers lines from 1; an empty line (nft prints one between
// chains) must still match an empty line.
func TestDiffLinesKeepsEmptyLines(t *testing.T) {
	a := splitLines("chain a {\n}\n\nchain b {\n}\n")
	b := splitLines("chain a {\n}\n\nchain c {\n}\n")
	want := []diffLine{
		{opKeep, "chain a {"}, {opKeep, "}"}, {opKeep, ""},
		{opDelete, "chain b {"}, {opAdd, "chain c {"}, {opKeep, "}"},
	}
	got := diffLines(a, b)
	if len(got) != len(want) {
		t.Fatalf("diffLines = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("diffLines = %q, want %q", got, want)
		}
	}
}
