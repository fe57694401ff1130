package policy

import (
	"fmt"
	"net/netip"
)

// famSet is a set of IP versions a part of a rule can match.
type famSet uint8

const (
	famV4 famSet = 1 << iota
	famV6
	famBoth = famV4 | famV6
)

// String renders it for error messages.
func (s famSet) String() string {
	switch s {
	case famV4:
		return "IPv4"
	case famV6:
		return "IPv6"
	default:
		return "IPv4 and IPv6"
	}
}

func familyFam(f Family) famSet {
	switch f {
	case IPv4:
		return famV4
	case IPv6:
		return famV6
	default:
		return famBoth
	}
}

func prefixFam(p netip.Prefix) famSet {
	if p.Addr().Is4() {
		return famV4
	}
	return famV6
}

// protocolFam is the IP versions a ports entry of protocol p can match:
// icmp is IPv4's, icmpv6 IPv6's, the others both.
func protocolFam(p Protocol) famSet {
	switch p {
	case ICMP:
		return famV4
	case ICMPv6:
		return famV6
	}
	return famBoth
}

// famEntry is one entry of a rule's from, to or ports list and the IP
// versions it can match: a cidr one, icmp IPv4, icmpv6 IPv6, anything else
// (a set, an interface, a tcp port) both.
type famEntry struct {
	fam  famSet
	at   site
	what string // how messages name the entry; set when fam is one version
}

// famGroup is a rule's from, to or ports list. Its entries are OR-ed, so
// the list matches the union of their versions; an absent list matches all.
type famGroup struct {
	name    string
	at      site
	entries []famEntry
}

func (g famGroup) union() famSet {
	if len(g.entries) == 0 {
		return famBoth
	}
	var u famSet
	for _, e := range g.entries {
		u |= e.fam
	}
	return u
}

// ruleFamily checks that a rule's family (explicit, given at explicitAt, or
// Any), addresses and protocols agree, reporting each contradiction to bad,
// and returns the rule's family: the explicit one, else the one the from,
// to and ports lists together restrict it to. The lists are AND-ed, so
// their versions intersect; an entry outside the intersection could never
// match and is reported, as is an empty intersection. Sets are not
// considered: they may hold both versions.
func ruleFamily(explicit Family, explicitAt site, groups [3]famGroup, bad func(at site, err error)) Family {
	if explicit != Any {
		// Within one rule, a line is enough to find the family by.
		where := explicitAt.path
		if explicitAt.pos.Line > 0 {
			where = fmt.Sprintf("line %d", explicitAt.pos.Line)
		}
		want := familyFam(explicit)
		for _, g := range groups {
			for _, e := range g.entries {
				if e.fam&want == 0 {
					bad(e.at, fmt.Errorf("%s matches only %s packets, which contradicts family: %s at %s; remove one of them", e.what, e.fam, explicit, where))
				}
			}
		}
		return explicit
	}
	allowed := famBoth
	// narrowedBy names, for each version, the list that excluded it.
	var narrowedBy [famBoth + 1]string
	for _, g := range groups {
		u := g.union()
		if u&allowed == 0 {
			bad(g.at, fmt.Errorf("%s matches only %s packets, which contradicts %s, which matches only %s packets; no packet can match both",
				g.name, u, narrowedBy[u], allowed))
			return Any
		}
		for _, f := range []famSet{famV4, famV6} {
			if allowed&f != 0 && u&f == 0 {
				narrowedBy[f] = g.name
			}
		}
		allowed &= u
	}
	for _, g := range groups {
		for _, e := range g.entries {
			if e.fam&allowed == 0 {
				bad(e.at, fmt.Errorf("%s matches only %s packets, which contradicts %s, which matches only %s packets; this entry can never match, so remove it",
					e.what, e.fam, narrowedBy[e.fam], allowed))
			}
		}
	}
	switch allowed {
	case famV4:
		return IPv4
	case famV6:
		return IPv6
	}
	return Any
}
