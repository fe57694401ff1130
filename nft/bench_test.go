package nft

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// BenchmarkApply compares edgefw's apply of a ruleset into a fresh
// namespace with the reference tool loading the same rendered text there:
// `nft -f FILE`, started directly inside the namespace. Each iteration gets
// its own namespace, made outside the timer. The ratio of the two ns/op is
// the speed-up (or cost) of applying through netlink.
func BenchmarkApply(b *testing.B) {
	netnstest.RequireTool(b, "nft")
	netnstest.RequireRoot(b)
	large, err := Compile(largeSetPolicy(randomPrefixes(2, 10_000)))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		rs   *Ruleset
	}{
		{"edge-default", compileFile(b, "testdata/golden/edge-default.yaml")},
		{"10k-cidrs", large},
	} {
		file := filepath.Join(b.TempDir(), bc.name+".nft")
		if err := os.WriteFile(file, []byte(bc.rs.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name+"/edgefw", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				ns := netnstest.New(b, "bench")
				fw := NewApplier(WithNetNS(ns.FD))
				b.StartTimer()
				if _, err := fw.Apply(bc.rs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/nft-f", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				ns := netnstest.New(b, "bench")
				b.StartTimer()
				// A process started from a thread inside the namespace runs
				// in it, without ip netns exec's own start-up in the way.
				if err := ns.Do(func() error {
					out, err := exec.Command("nft", "-f", file).CombinedOutput()
					if err != nil {
						b.Logf("%s", out)
					}
					return err
				}); err != nil {
					b.Fatalf("nft -f: %v", err)
				}
			}
		})
	}
}

// BenchmarkCompileLargeSet compiles a policy whose set holds 100,000
// random CIDRs, as every apply and every --once does: no kernel.
func BenchmarkCompileLargeSet(b *testing.B) {
	p := largeSetPolicy(randomPrefixes(2, 100_000))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFingerprintLargeSet fingerprints that ruleset, as every
// --once and every daemon apply does to check or leave its Mark.
func BenchmarkFingerprintLargeSet(b *testing.B) {
	rs, err := Compile(largeSetPolicy(randomPrefixes(2, 100_000)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Fingerprint(rs)
	}
}

// BenchmarkPlanShardedChange plans one changed element of a sharded
// 1,000,000-range set over the table the ruleset before it left, as the
// running daemon does for one changed line: sharding and planning only,
// no kernel.
func BenchmarkPlanShardedChange(b *testing.B) {
	prefixes := randomPrefixes(2, 1_000_000)
	before, err := Compile(largeSetPolicy(prefixes))
	if err != nil {
		b.Fatal(err)
	}
	prefixes[500_000] = netip.MustParsePrefix("192.0.2.77/32")
	after, err := Compile(largeSetPolicy(prefixes))
	if err != nil {
		b.Fatal(err)
	}
	ks := stateOf(shard(before, &TableState{}, DefaultShardThreshold))
	ks.Chains, ks.Counters = map[string]*ChainState{}, map[string]Counter{}
	fw := &Applier{shardAbove: DefaultShardThreshold}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := fw.prepare(ks, after, false); err != nil {
			b.Fatal(err)
		}
	}
}
