package nft

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.nft with the compiler's output")

// goldenPolicies returns the policies of testdata/golden by name.
func goldenPolicies(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob("testdata/golden/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden policies: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = f
	}
	return out
}

// compileFile loads a policy file through the real parser and compiles it.
func compileFile(t testing.TB, path string) *Ruleset {
	t.Helper()
	p, err := policy.Load(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	rs, err := Compile(p)
	if err != nil {
		t.Fatalf("compile %s: %v", path, err)
	}
	return rs
}

// compileYAML parses and compiles a policy written in a test.
func compileYAML(t testing.TB, doc string) *Ruleset {
	t.Helper()
	p, err := policy.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("parse policy: %v\n%s", err, doc)
	}
	rs, err := Compile(p)
	if err != nil {
		t.Fatalf("compile policy: %v", err)
	}
	return rs
}

// TestGolden pins the compiler's output: each testdata/golden/NAME.yaml
// compiles to exactly testdata/golden/NAME.nft. Run with -update to
// rewrite the .nft files, then review the diff.
func TestGolden(t *testing.T) {
	for name, path := range goldenPolicies(t) {
		t.Run(name, func(t *testing.T) {
			got := compileFile(t, path).String()
			golden := strings.TrimSuffix(path, ".yaml") + ".nft"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s compiles differently from %s (-golden +compiled):\n%s", path, golden, diff)
			}
		})
	}
}

// TestGoldenKernel proves that the rendered text is the exact ruleset:
// for every golden file, nft accepts it, and the table that Apply builds
// lists, in nft's own words, exactly as the golden file reads — and
// exactly as the table `nft -f` builds from the golden file.
func TestGoldenKernel(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	for name, path := range goldenPolicies(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rs := compileFile(t, path)
			golden, err := os.ReadFile(strings.TrimSuffix(path, ".yaml") + ".nft")
			if err != nil {
				t.Fatal(err)
			}
			abs, err := filepath.Abs(strings.TrimSuffix(path, ".yaml") + ".nft")
			if err != nil {
				t.Fatal(err)
			}

			byNft := netnstest.New(t, "golden-nft")
			byNft.MustRun(t, "nft", "-c", "-f", abs)
			byNft.MustRun(t, "nft", "-f", abs)
			nftListing := listTable(t, byNft)

			byUs := netnstest.New(t, "golden-apply")
			if _, err := NewApplier(WithNetNS(byUs.FD)).Apply(rs); err != nil {
				t.Fatalf("apply: %v", err)
			}
			ourListing := listTable(t, byUs)

			if diff := cmp.Diff(lines(string(golden)), lines(ourListing)); diff != "" {
				t.Errorf("nft lists the applied table differently from the golden text (-golden +listed):\n%s", diff)
			}
			if diff := cmp.Diff(lines(nftListing), lines(ourListing)); diff != "" {
				t.Errorf("the table Apply built differs from the one nft -f built (-nft +apply):\n%s", diff)
			}
		})
	}
}

var counterValues = regexp.MustCompile(`(?m)^\s*packets \d+ bytes \d+\n`)

// listTable lists table inet edgefw without counter values, which is how
// the compiler renders it.
func listTable(t testing.TB, ns *netnstest.NS) string {
	t.Helper()
	return counterValues.ReplaceAllString(ns.MustRun(t, "nft", "list", "table", "inet", TableName), "")
}

func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }
