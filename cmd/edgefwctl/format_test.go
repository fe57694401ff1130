package main

import (
	"strings"
	"testing"
	"time"
)

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want string
	}{
		{name: "equal", a: "x\ny\n", b: "x\ny\n", want: ""},
		{name: "both empty", want: ""},
		{
			name: "from nothing",
			b:    "table inet edgefw {\n}\n",
			want: "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+table inet edgefw {\n+}\n",
		},
		{
			name: "one change in the middle",
			a:    "1\n2\n3\n4\n5\n6\n7\n8\n9\n",
			b:    "1\n2\n3\n4\nfive\n6\n7\n8\n9\n",
			want: "--- a\n+++ b\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n",
		},
		{
			name: "two distant changes make two hunks",
			a:    "a\n1\n2\n3\n4\n5\n6\n7\n8\nb\n",
			b:    "A\n1\n2\n3\n4\n5\n6\n7\n8\nB\n",
			want: "--- a\n+++ b\n@@ -1,4 +1,4 @@\n-a\n+A\n 1\n 2\n 3\n@@ -7,4 +7,4 @@\n 6\n 7\n 8\n-b\n+B\n",
		},
		{
			name: "close changes share a hunk",
			a:    "a\n1\n2\n3\n4\n5\n6\nb\n",
			b:    "A\n1\n2\n3\n4\n5\n6\nB\n",
			want: "--- a\n+++ b\n@@ -1,8 +1,8 @@\n-a\n+A\n 1\n 2\n 3\n 4\n 5\n 6\n-b\n+B\n",
		},
		{
			name: "deletion",
			a:    "1\n2\n3\n",
			b:    "1\n3\n",
			want: "--- a\n+++ b\n@@ -1,3 +1,2 @@\n 1\n-2\n 3\n",
		},
		{
			name: "insertion keeps the common lines",
			a:    "x\nz\n",
			b:    "w\nx\ny\nz\n",
			want: "--- a\n+++ b\n@@ -1,2 +1,4 @@\n+w\n x\n+y\n z\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unifiedDiff("a", "b", splitLines(tt.a), splitLines(tt.b), 3)
			if got != tt.want {
				t.Errorf("unifiedDiff =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestDiffLinesHuge(t *testing.T) {
	// Past the LCS bound the diff is still correct, only not minimal.
	var a, b []string
	for i := range 7000 {
		a = append(a, "a"+strings.Repeat("x", i%7))
		b = append(b, "b"+strings.Repeat("x", i%5))
	}
	var gotA, gotB []string
	for _, l := range diffLines(a, b) {
		if l.op != opAdd {
			gotA = append(gotA, l.text)
		}
		if l.op != opDelete {
			gotB = append(gotB, l.text)
		}
	}
	if strings.Join(gotA, "\n") != strings.Join(a, "\n") || strings.Join(gotB, "\n") != strings.Join(b, "\n") {
		t.Error("the edit script does not turn a into b")
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1258291, "1.2 MiB"},
		{5 << 30, "5.0 GiB"}, {1 << 62, "4.0 EiB"}, {^uint64(0), "16.0 EiB"},
	}
	for _, tt := range tests {
		if got := humanBytes(tt.n); got != tt.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"}, {0, "0s"}, {42 * time.Second, "42s"}, {3*time.Minute + 59*time.Second, "3m"},
		{3*time.Hour + 12*time.Minute + 30*time.Second, "3h12m"}, {5 * time.Hour, "5h"},
		{26 * time.Hour, "1d2h"}, {48 * time.Hour, "2d"},
	}
	for _, tt := range tests {
		if got := shortDuration(tt.d); got != tt.want {
			t.Errorf("shortDuration(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
	if got := ago(testNow, time.Time{}); got != "never" {
		t.Errorf("ago(zero) = %q, want never", got)
	}
}
