package nft

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/google/nftables"
)

// AddrRange is an inclusive range of addresses of one family.
type AddrRange struct {
	From, To netip.Addr
}

func prefixRange(p netip.Prefix) AddrRange {
	p = p.Masked()
	from := p.Addr()
	to := from
	bits := from.BitLen() - p.Bits()
	if bits > 0 {
		b := to.AsSlice()
		for i := len(b) - 1; i >= 0 && bits > 0; i-- {
			n := min(bits, 8)
			b[i] |= byte(1<<n - 1)
			bits -= n
		}
		to, _ = netip.AddrFromSlice(b)
	}
	return AddrRange{From: from, To: to}
}

// mergeRanges sorts ranges and coalesces overlapping and adjacent ones, so
// the result is the canonical form of the same address space: equal spaces
// give equal slices, which makes set contents comparable.
func mergeRanges(rs []AddrRange) []AddrRange {
	if len(rs) == 0 {
		return nil
	}
	return mergeOwnRanges(slices.Clone(rs))
}

// mergeOwnRanges is mergeRanges in place, for ranges the caller made
// for it: a set of a million CIDRs is not copied again.
func mergeOwnRanges(s []AddrRange) []AddrRange {
	if len(s) == 0 {
		return nil
	}
	if len(s) > 64 && allIPv4(s) {
		return mergeIPv4(s)
	}
	return mergeAny(s)
}

// mergeAny is mergeOwnRanges for ranges of any family.
func mergeAny(s []AddrRange) []AddrRange {
	slices.SortFunc(s, func(a, b AddrRange) int {
		if c := a.From.Compare(b.From); c != 0 {
			return c
		}
		return a.To.Compare(b.To)
	})
	out := s[:1]
	for _, r := range s[1:] {
		last := &out[len(out)-1]
		if next := last.To.Next(); r.From.Compare(last.To) <= 0 || (next.IsValid() && r.From == next) {
			if r.To.Compare(last.To) > 0 {
				last.To = r.To
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// allPrefixesIPv4 reports whether every prefix is an IPv4 one.
func allPrefixesIPv4(ps []netip.Prefix) bool {
	for _, p := range ps {
		if !p.Addr().Is4() {
			return false
		}
	}
	return true
}

// allIPv4 reports whether every range is of IPv4 addresses.
func allIPv4(s []AddrRange) bool {
	for _, r := range s {
		if !r.From.Is4() || !r.To.Is4() {
			return false
		}
	}
	return true
}

// mergeIPv4 is mergeOwnRanges for IPv4 ranges: each range is one integer
// (its first address above its last), sorted as integers. Sorting the
// netip.Addr pairs was most of compiling a large set (30 ms of 100,000
// CIDRs); this takes a fraction of it.
func mergeIPv4(s []AddrRange) []AddrRange {
	keys := make([]uint64, len(s))
	for i, r := range s {
		keys[i] = uint64(ipv4(r.From))<<32 | uint64(ipv4(r.To))
	}
	return mergeIPv4Keys(keys, s[:0])
}

// mergeIPv4Keys sorts ranges given as integers (first address above
// last) and appends them, merged, to out.
func mergeIPv4Keys(keys []uint64, out []AddrRange) []AddrRange {
	slices.Sort(keys)
	return mergeSortedIPv4Keys(keys, out)
}

// mergeSortedIPv4Keys is mergeIPv4Keys of keys already sorted.
func mergeSortedIPv4Keys(keys []uint64, out []AddrRange) []AddrRange {
	if len(keys) == 0 {
		return out
	}
	from, to := keys[0]>>32, keys[0]&0xffffffff
	for _, k := range keys[1:] {
		f, t := k>>32, k&0xffffffff
		if f <= to+1 { // overlapping or adjacent (to+1 does not wrap in 64 bits)
			to = max(to, t)
			continue
		}
		out = append(out, AddrRange{From: addr4(uint32(from)), To: addr4(uint32(to))})
		from, to = f, t
	}
	return append(out, AddrRange{From: addr4(uint32(from)), To: addr4(uint32(to))})
}

func ipv4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// subtractRanges returns the parts of rs not covered by cut. Both must be
// merged (sorted, disjoint).
func subtractRanges(rs, cut []AddrRange) []AddrRange {
	var out []AddrRange
	for _, r := range rs {
		cur := r
		alive := true
		for _, c := range cut {
			if !alive {
				break
			}
			if c.To.Compare(cur.From) < 0 || c.From.Compare(cur.To) > 0 {
				continue
			}
			if c.From.Compare(cur.From) > 0 {
				out = append(out, AddrRange{From: cur.From, To: c.From.Prev()})
			}
			if c.To.Compare(cur.To) >= 0 {
				alive = false
				break
			}
			cur.From = c.To.Next()
		}
		if alive {
			out = append(out, cur)
		}
	}
	return out
}

// rangePrefixes splits a range into the fewest prefixes covering exactly it.
func rangePrefixes(r AddrRange) []netip.Prefix {
	var out []netip.Prefix
	from := r.From
	for {
		bits := from.BitLen()
		// Grow the prefix while it stays aligned and inside the range.
		for bits > 0 {
			p := netip.PrefixFrom(from, bits-1)
			if p.Masked().Addr() != from || prefixRange(p).To.Compare(r.To) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(from, bits)
		out = append(out, p)
		end := prefixRange(p).To
		if end.Compare(r.To) >= 0 {
			return out
		}
		from = end.Next()
	}
}

// prefixesToRanges converts prefixes of one family into merged ranges.
func prefixesToRanges(ps []netip.Prefix) []AddrRange {
	if len(ps) > 64 && allPrefixesIPv4(ps) {
		keys := ipv4PrefixKeys(ps)
		return mergeIPv4Keys(keys, make([]AddrRange, 0, len(keys)))
	}
	rs := make([]AddrRange, 0, len(ps))
	for _, p := range ps {
		rs = append(rs, prefixRange(p))
	}
	return mergeOwnRanges(rs)
}

// ipv4PrefixKeys returns the keys of IPv4 prefixes as mergeIPv4Keys
// takes them, in the prefixes' order.
func ipv4PrefixKeys(ps []netip.Prefix) []uint64 {
	keys := make([]uint64, len(ps))
	for i, p := range ps {
		keys[i] = ipv4PrefixKey(p)
	}
	return keys
}

// ipv4PrefixKey is the key of one IPv4 prefix: its first address above
// its last.
func ipv4PrefixKey(p netip.Prefix) uint64 {
	from := ipv4(p.Masked().Addr())
	return uint64(from)<<32 | uint64(from|uint32(1<<(32-p.Bits())-1))
}

// wholeFamily is the range of every IPv4 or every IPv6 address.
func wholeFamily(v6 bool) AddrRange {
	if v6 {
		return AddrRange{From: netip.IPv6Unspecified(), To: netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}
	}
	return AddrRange{From: netip.IPv4Unspecified(), To: netip.AddrFrom4([4]byte{255, 255, 255, 255})}
}

// splitFamilies partitions prefixes into IPv4 and IPv6. Prefixes all of
// one family, as a large set file's mostly are, are returned as they are,
// not copied.
func splitFamilies(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	n4 := 0
	for _, p := range ps {
		if p.Addr().Is4() {
			n4++
		}
	}
	switch n4 {
	case len(ps):
		return ps, nil
	case 0:
		return nil, ps
	}
	v4, v6 = make([]netip.Prefix, 0, n4), make([]netip.Prefix, 0, len(ps)-n4)
	for _, p := range ps {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6
}

// PortSpan is an inclusive port range; From == To for one port.
type PortSpan struct {
	From, To uint16
}

func mergePorts(ps []PortSpan) []PortSpan {
	if len(ps) == 0 {
		return nil
	}
	s := slices.Clone(ps)
	slices.SortFunc(s, func(a, b PortSpan) int { return cmp.Compare(a.From, b.From) })
	out := s[:1]
	for _, p := range s[1:] {
		last := &out[len(out)-1]
		if uint32(p.From) <= uint32(last.To)+1 {
			last.To = max(last.To, p.To)
			continue
		}
		out = append(out, p)
	}
	return out
}

// elementRanges decodes the elements of a kernel interval set: a start
// element opens a range, the next end element (flagged IntervalEnd, one
// past the range) closes it, and a start with no end runs to the family's
// last address. Ranges come out in order, as the set holds them: two
// adjacent ranges stay two (nft lists them so), because the kernel deletes
// an element only as it holds it, so a plan must delete them one by one.
// At one address, the end of a range comes before the start of the next:
// sorted the other way round, the start would close nothing and the end
// would close a range that ends before it starts.
//
// Keys are decoded by the set's family, never by their value: in an IPv6
// set, ::ffff:0:0/96 holds IPv6 addresses like any other (an end element
// of ::fffe:0:0/96 is ::ffff:0:0), and must not be read as IPv4. A key of
// the wrong length is not an address of the set's family and is skipped.
func elementRanges(elems []nftables.SetElement, v6 bool) []AddrRange {
	type point struct {
		addr netip.Addr
		end  bool
	}
	pts := make([]point, 0, len(elems))
	for _, e := range elems {
		a, ok := keyAddr(e.Key, v6)
		if !ok {
			continue
		}
		pts = append(pts, point{a, e.IntervalEnd})
	}
	slices.SortFunc(pts, func(a, b point) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		switch {
		case a.end == b.end:
			return 0
		case a.end:
			return -1
		}
		return 1
	})
	last := wholeFamily(v6).To
	var out []AddrRange
	var open *netip.Addr
	for _, p := range pts {
		switch {
		case !p.end:
			if open != nil {
				// Two starts in a row: the first range ended just before.
				out = append(out, AddrRange{From: *open, To: p.addr.Prev()})
			}
			a := p.addr
			open = &a
		case open != nil:
			out = append(out, AddrRange{From: *open, To: p.addr.Prev()})
			open = nil
		}
	}
	if open != nil {
		out = append(out, AddrRange{From: *open, To: last})
	}
	return out
}

// diffRanges returns the ranges of have that are not in want and those of
// want that are not in have. Both are sorted and disjoint (want merged,
// have as a set holds it); ranges are compared whole.
func diffRanges(have, want []AddrRange) (del, add []AddrRange) {
	if strictlySorted(have) && strictlySorted(want) {
		return diffSortedRanges(have, want)
	}
	in := func(rs []AddrRange, r AddrRange) bool {
		_, found := slices.BinarySearchFunc(rs, r, compareRanges)
		return found
	}
	for _, r := range have {
		if !in(want, r) {
			del = append(del, r)
		}
	}
	for _, r := range want {
		if !in(have, r) {
			add = append(add, r)
		}
	}
	return del, add
}

// diffSortedRanges is diffRanges of two sorted lists, in one walk of
// both: for one changed element of a set of 100,000 it takes about a
// millisecond, where searching one list for each range of the other
// took 25 ms.
func diffSortedRanges(have, want []AddrRange) (del, add []AddrRange) {
	i, j := 0, 0
	for i < len(have) && j < len(want) {
		switch c := compareRanges(have[i], want[j]); {
		case c == 0:
			i++
			j++
		case c < 0:
			del = append(del, have[i])
			i++
		default:
			add = append(add, want[j])
			j++
		}
	}
	del = append(del, have[i:]...)
	add = append(add, want[j:]...)
	return del, add
}

// strictlySorted reports whether rs is sorted by compareRanges without
// repeats.
func strictlySorted(rs []AddrRange) bool {
	for i := 1; i < len(rs); i++ {
		if compareRanges(rs[i-1], rs[i]) >= 0 {
			return false
		}
	}
	return true
}

// compareRanges orders ranges by their first address, then their last.
func compareRanges(a, b AddrRange) int {
	if c := a.From.Compare(b.From); c != 0 {
		return c
	}
	return a.To.Compare(b.To)
}

// keyAddr decodes a set key of an IPv4 (4 bytes) or IPv6 (16 bytes) set.
func keyAddr(key []byte, v6 bool) (netip.Addr, bool) {
	switch {
	case v6 && len(key) == 16:
		return netip.AddrFrom16([16]byte(key)), true
	case !v6 && len(key) == 4:
		return netip.AddrFrom4([4]byte(key)), true
	}
	return netip.Addr{}, false
}
