package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgefw/edgefw/bench"
	"github.com/edgefw/edgefw/nft"
)

// skippingFirewall applies nothing and says it wrote.
type skippingFirewall struct{ Firewall }

// Apply reports rs written.
func (skippingFirewall) Apply(*nft.Ruleset) (nft.Result, error) {
	return nft.Result{Messages: 1, Changes: []string{"skipped"}}, nil
}

// BenchmarkReloadChangedSetLine is the daemon's side of one changed line
// of a large set file (the bench's daemon-change scenario): loading the
// files, compiling, journaling, up to the answer (the last good policy is
// written after it, untimed).
// The firewall writes nothing: planning and the kernel's commit
// are nft's and the bench's to measure (the fake kernel of nft/nfttest
// took most of the time). Rewriting the file is not timed.
func BenchmarkReloadChangedSetLine(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h := newHarness(b)
			prefixes := bench.RandomPrefixes(uint64(n)+1, n)
			setFile := filepath.Join(h.dir, "blocklist.txt")
			if err := os.WriteFile(setFile, bench.SetFile(prefixes), 0o644); err != nil {
				b.Fatal(err)
			}
			h.write(b, string(bench.Policy(bench.PolicySpec{SetFile: "blocklist.txt", PortRules: 2, FirstPort: 6443})))
			d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: skippingFirewall{h.fw}, Version: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(d.lastGood.wait)
			ctx := context.Background()
			if err := d.Start(ctx); err != nil {
				b.Fatal(err)
			}
			files := [2][]byte{bench.SetFile(prefixes)}
			changed := slices.Clone(prefixes)
			changed[0] = bench.Replacement(prefixes, 0)
			files[1] = bench.SetFile(changed)
			k := 0
			for b.Loop() {
				b.StopTimer()
				k++
				if err := os.WriteFile(setFile, files[k%2], 0o644); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := d.reload(ctx, "bench"); err != nil {
					b.Fatal(err)
				}
				// The last good policy is written after the answer.
				b.StopTimer()
				d.lastGood.wait()
				b.StartTimer()
			}
		})
	}
}
