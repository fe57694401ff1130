package nft

import "testing"

// BenchmarkPrepareManyRules compiles 10,000 port rules (dispatched, as
// the bench's bulk apply of N port rules has them), plans them onto an
// empty table and encodes the transaction: what edgefwd --once does in
// process before the kernel's share, without root.
func BenchmarkPrepareManyRules(b *testing.B) {
	p := manyRulesPolicy(10_000, -1)
	b.ReportAllocs()
	for b.Loop() {
		rs, err := Compile(p)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := (&Applier{}).prepare(&TableState{}, rs, false); err != nil {
			b.Fatal(err)
		}
		Fingerprint(rs)
	}
}
