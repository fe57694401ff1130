package nft

import (
	"net/netip"
	"slices"
)

// addrEndpoints reads an address match back into the policy's terms: a
// named set by its policy name, with what both its halves hold, or the
// ranges of an anonymous set as prefixes, with except where that is
// shorter.
func addrEndpoints(rs *Ruleset, m AddrMatch) []Endpoint {
	if m.Set != "" {
		name := traceSetName(m.Set)
		return []Endpoint{{Set: name, SetSize: setSize(rs, name)}}
	}
	return rangeEndpoints(m.Ranges)
}

// setSize is what the two halves of a policy set hold.
func setSize(rs *Ruleset, name string) *SetSize {
	size := &SetSize{Singles: true}
	for _, v6 := range []bool{false, true} {
		s := rs.Set(SetName(name, v6))
		if s == nil {
			continue
		}
		for _, r := range s.Ranges {
			size.Singles = size.Singles && r.From == r.To
			if v6 {
				size.IPv6Ranges++
				continue
			}
			size.IPv4Ranges++
			size.IPv4Addresses += uint64(v4Number(r.To)-v4Number(r.From)) + 1
		}
	}
	return size
}

func v4Number(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func appendEndpoint(list []Endpoint, ep Endpoint) []Endpoint {
	if slices.ContainsFunc(list, ep.equal) {
		return list
	}
	return append(list, ep)
}

func (ep Endpoint) equal(o Endpoint) bool {
	return ep.Prefix == o.Prefix && slices.Equal(ep.Except, o.Except) && ep.Set == o.Set && ep.Interface == o.Interface
}

// maxExceptRanges bounds the ranges rangeEndpoints tries to write with
// except (its search is quadratic in them); beyond, it lists prefixes.
const maxExceptRanges = 64

// rangeEndpoints writes merged ranges of one family as a reader of the
// policy would: a CIDR with except compiles into the ranges that remain
// (0.0.0.0/0 except 192.0.2.0/24 into two ranges, which are 24
// prefixes), so runs of ranges are written as the smallest prefix that
// covers them, except the gaps, when that takes fewer prefixes than
// listing theirs. Runs are grown greedily from the lowest range while
// growing does not cost more prefixes than splitting.
func rangeEndpoints(rs []AddrRange) []Endpoint {
	if len(rs) > maxExceptRanges {
		var out []Endpoint
		for _, r := range rs {
			for _, p := range rangePrefixes(r) {
				out = append(out, Endpoint{Prefix: p})
			}
		}
		return out
	}
	var out []Endpoint
	for start := 0; start < len(rs); {
		end := start + 1
		best := cheapest(rs[start:end])
		for ; end < len(rs); end++ {
			grown := cheapest(rs[start : end+1])
			if endpointCost(grown) > endpointCost(best)+endpointCost(cheapest(rs[end:end+1])) {
				break
			}
			best = grown
		}
		out = append(out, best...)
		start = end
	}
	return out
}

// cheapest writes a run of ranges in the fewer prefixes: theirs, or the
// smallest prefix covering them except the gaps between them (an
// endpoint with n excepts costs 1+n).
func cheapest(rs []AddrRange) []Endpoint {
	var listed []Endpoint
	for _, r := range rs {
		for _, p := range rangePrefixes(r) {
			listed = append(listed, Endpoint{Prefix: p})
		}
	}
	cover := coveringPrefix(rs[0].From, rs[len(rs)-1].To)
	var except []netip.Prefix
	for _, gap := range subtractRanges([]AddrRange{prefixRange(cover)}, rs) {
		except = append(except, rangePrefixes(gap)...)
	}
	if 1+len(except) < len(listed) {
		return []Endpoint{{Prefix: cover, Except: except}}
	}
	return listed
}

// coveringPrefix is the smallest prefix holding both addresses (of one
// family).
func coveringPrefix(a, b netip.Addr) netip.Prefix {
	for bits := a.BitLen(); bits > 0; bits-- {
		if p, _ := a.Prefix(bits); p.Contains(b) {
			return p
		}
	}
	p, _ := a.Prefix(0)
	return p
}

// endpointCost counts the prefixes an endpoint list is written with.
func endpointCost(eps []Endpoint) int {
	n := 0
	for _, ep := range eps {
		n += 1 + len(ep.Except)
	}
	return n
}
