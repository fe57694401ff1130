package nft

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestElementRangesByFamily round-trips ranges through the kernel's
// interval encoding. IPv6 ranges at or next to ::ffff:0:0/96 (the
// IPv4-mapped block) must decode as IPv6: ::fffe:0:0/96 ends where the
// mapped block begins, so its end element is ::ffff:0:0.
func TestElementRangesByFamily(t *testing.T) {
	for _, tc := range []struct {
		v6       bool
		prefixes []string
	}{
		{true, []string{"::fffe:0:0/96"}},
		{true, []string{"::ffff:0:0/96"}},
		{true, []string{"::ffff:10.0.0.0/104", "2001:db8::/32"}},
		{true, []string{"::/0"}},
		{true, []string{"::fffe:ffff:ffff/128", "::ffff:0:0/128"}},
		{false, []string{"0.0.0.0/0"}},
		{false, []string{"10.0.0.0/8", "255.255.255.255/32"}},
	} {
		var ps []netip.Prefix
		for _, p := range tc.prefixes {
			ps = append(ps, netip.MustParsePrefix(p))
		}
		want := prefixesToRanges(ps)
		if got := elementRanges(addrElements(want), tc.v6); !slices.Equal(got, want) {
			t.Errorf("%v: decoded %v, want %v", tc.prefixes, got, want)
		}
	}
	// A key of the other family's length is not an element of the set.
	elems := addrElements(prefixesToRanges([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}))
	if got := elementRanges(elems, true); len(got) != 0 {
		t.Errorf("IPv4 keys in an IPv6 set decoded as %v", got)
	}
}

// TestElementRangesAdjacent decodes a set holding adjacent ranges, as
// someone's `nft add element` next to ours leaves it, with its elements in
// every order: each range comes out as the set holds it. (Sorted by
// address alone, a start and an end at the same address decoded as a lost
// range and an inverted one.)
func TestElementRangesAdjacent(t *testing.T) {
	r := func(from, to string) AddrRange { return AddrRange{netip.MustParseAddr(from), netip.MustParseAddr(to)} }
	want := []AddrRange{r("192.0.2.9", "192.0.2.9"), r("192.0.2.10", "192.0.2.10"), r("192.0.2.11", "192.0.2.127"), r("192.0.2.128", "255.255.255.255")}
	elems := addrElements(want)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		rng.Shuffle(len(elems), func(i, j int) { elems[i], elems[j] = elems[j], elems[i] })
		if got := elementRanges(elems, false); !slices.Equal(got, want) {
			t.Fatalf("decoded %v, want %v", got, want)
		}
	}
}

// mergeIPv4 merges as mergeAny does: random ranges, many overlapping or
// adjacent, some at the ends of the address space.
func TestMergeIPv4(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := 1 + r.IntN(300)
		s := make([]AddrRange, n)
		for i := range s {
			var from uint32
			switch r.IntN(10) {
			case 0:
				from = 0
			case 1:
				from = 0xffffffff - uint32(r.IntN(4))
			default:
				from = uint32(r.IntN(5000)) << uint(r.IntN(20))
			}
			to := from + uint32(r.IntN(100))
			if to < from {
				to = 0xffffffff
			}
			s[i] = AddrRange{From: addr4(from), To: addr4(to)}
		}
		want := mergeAny(slices.Clone(s))
		if got := mergeIPv4(slices.Clone(s)); !slices.Equal(got, want) {
			t.Fatalf("round %d: mergeIPv4 = %v\nwant %v", round, got, want)
		}
	}
}

// prefixesToRanges of many IPv4 prefixes (integers) gives what each
// prefix's range merged does, /0 and /32 included.
func TestPrefixesToRangesIPv4(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		ps := make([]netip.Prefix, 65+r.IntN(500))
		for i := range ps {
			bits := 8 + r.IntN(25)
			switch r.IntN(50) {
			case 0:
				bits = 0
			case 1:
				bits = 32
			}
			ps[i] = netip.PrefixFrom(addr4(uint32(r.IntN(1<<16))<<16|uint32(r.IntN(1<<16))), bits).Masked()
		}
		var want []AddrRange
		for _, p := range ps {
			want = append(want, prefixRange(p))
		}
		want = mergeAny(want)
		if got := prefixesToRanges(ps); !slices.Equal(got, want) {
			t.Fatalf("round %d: %v\nwant %v", round, got, want)
		}
	}
}
