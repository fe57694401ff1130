package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/edgefw/edgefw/policy"
)

// traceMatch is one match evaluated on a packet.
type traceMatch struct {
	ok bool
	// why says what matched, or why not.
	why string
	// unknownIface is the interface name the match needs when the packet
	// does not name its interface.
	unknownIface string
	// limit, when set, is a limit the match enforces; Trace takes the
	// packet to be within it, so the match (which matches packets beyond
	// it) does not match.
	limit string
}

func traceOK(format string, args ...any) traceMatch {
	return traceMatch{ok: true, why: fmt.Sprintf(format, args...)}
}

func traceNo(format string, args ...any) traceMatch {
	return traceMatch{why: fmt.Sprintf(format, args...)}
}

// rule evaluates a rule's matches, then its limit, on the packet. It
// returns what matched, whether all did, and if not, the first reason why
// not. It records the limits the packet meets and the rules an unknown
// interface may hide.
func (t *tracer) rule(r *Rule) (what []string, ok bool, reason string) {
	// A match on an interface the packet does not name; lo is left out
	// of the notes: a packet that names no interface and no loopback
	// address is taken not to use lo.
	hidden, hiddenIface := "", ""
	for _, m := range r.Matches {
		res := t.match(m)
		switch {
		case res.ok:
			if res.why != "" {
				what = append(what, res.why)
			}
		case res.unknownIface != "":
			if hidden == "" {
				hidden, hiddenIface = res.why, res.unknownIface
			}
		case res.limit != "":
			if hidden == "" {
				t.limitNote(r, res.limit)
			}
			return nil, false, res.why
		default:
			return nil, false, res.why
		}
	}
	if hidden != "" {
		if r.Verdict != "" && hiddenIface != "lo" {
			t.note(fmt.Sprintf("%s would match if the packet's interface were known: %s", t.ruleRef(r), hidden))
		}
		return nil, false, "interface not given: " + hidden
	}
	if l := r.Limit; l != nil && l.Over {
		t.limitNote(r, traceRate(l, false))
		return nil, false, "within its limit (taken to be: limits are not simulated)"
	}
	return what, true, ""
}

// ruleRef names the policy or implicit rule a kernel rule belongs to.
func (t *tracer) ruleRef(r *Rule) string {
	if info, ok := t.rs.Rule(r.Owner); ok && info.Kind == KindUser {
		return "rule " + r.Owner
	}
	return "implicit rule " + r.Owner
}

func (t *tracer) note(n string) {
	if !slices.Contains(t.v.Notes, n) {
		t.v.Notes = append(t.v.Notes, n)
	}
}

func (t *tracer) limitNote(r *Rule, limit string) {
	n := TraceLimit{Rule: r.Owner, Counter: r.Counter, Limit: limit}
	if info, ok := t.rs.Rule(r.Counter); ok && info.Kind == KindLimited {
		n.Rule, n.Audit = info.Rule, info.Mode == policy.Audit
	}
	if !slices.Contains(t.v.Limits, n) {
		t.v.Limits = append(t.v.Limits, n)
	}
}

// match evaluates one match. Every Match type the compiler emits has a
// case here; TestTraceKnowsEveryMatch checks that none is missing.
func (t *tracer) match(m Match) traceMatch {
	p := t.p
	switch m := m.(type) {
	case NFProtoMatch:
		if m.V6 != p.V6() {
			return traceNo("an %s packet; the rule is for %s", traceFamily(p.V6()), traceFamily(m.V6))
		}
		return traceOK("%s", traceFamily(m.V6))
	case L4Match:
		return t.l4(m)
	case IfaceMatch:
		return t.iface(m)
	case AddrMatch:
		return t.addr(m)
	case ICMPTypeMatch:
		return t.icmpType(m)
	case CtStateMatch:
		if !slices.Contains(m.States, string(p.State)) {
			return traceNo("ct state %s, not %s", p.State, strings.Join(m.States, ","))
		}
		return traceOK("ct state %s", p.State)
	case TCPSynMatch:
		if p.Protocol != policy.TCP || p.State != CtNew {
			return traceNo("not a TCP SYN")
		}
		return traceOK("a TCP SYN")
	case MeterMatch:
		if m.V6 != p.V6() {
			return traceNo("an %s packet; the limit is on %s sources", traceFamily(p.V6()), traceFamily(m.V6))
		}
		if m.Limit != nil {
			return traceMatch{limit: traceRate(m.Limit, true), why: "within its limit (taken to be: limits are not simulated)"}
		}
		return traceMatch{limit: fmt.Sprintf("at most %d connections per source address", m.ConnMax), why: "within its connection limit (taken to be)"}
	case ConnCountMatch:
		return traceMatch{limit: fmt.Sprintf("at most %d connections", m.Max), why: "within its connection limit (taken to be)"}
	}
	t.note(fmt.Sprintf("trace cannot evaluate %q and takes it not to match", m.String()))
	return traceNo("%q: not evaluated", m.String())
}

func traceFamily(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// traceRate renders a limit for people: "100/minute burst 20 packets
// per source address".
func traceRate(l *RateLimit, perSource bool) string {
	s := fmt.Sprintf("%d/%s", l.Rate, l.Per)
	if l.Burst > 0 {
		s += fmt.Sprintf(" burst %d packets", l.Burst)
	}
	if perSource {
		s += " per source address"
	}
	return s
}

func (t *tracer) l4(m L4Match) traceMatch {
	p := t.p
	if !slices.Contains(m.Protos, p.Protocol) {
		names := make([]string, len(m.Protos))
		for i, proto := range m.Protos {
			names[i] = string(proto)
		}
		return traceNo("protocol %s, not %s", p.Protocol, strings.Join(names, " or "))
	}
	if len(m.Ports) == 0 {
		return traceOK("protocol %s", p.Protocol)
	}
	for _, s := range m.Ports {
		if p.DstPort < s.From || p.DstPort > s.To {
			continue
		}
		if s.From == s.To {
			return traceOK("%s port %d", p.Protocol, p.DstPort)
		}
		return traceOK("%s port %d (in %d-%d)", p.Protocol, p.DstPort, s.From, s.To)
	}
	return traceNo("%s port %d, not %s", p.Protocol, p.DstPort, renderPorts(m.Ports))
}

func (t *tracer) iface(m IfaceMatch) traceMatch {
	p := t.p
	name, how, unknown := p.Iif, "comes in on", "come in on"
	if m.Out {
		name, how, unknown = p.Oif, "goes out on", "go out on"
	}
	switch {
	case !m.Out && p.Direction == policy.Output:
		return traceNo("an output packet has no input interface")
	case m.Out && p.Direction == policy.Input:
		return traceNo("an input packet has no output interface")
	case name == "":
		return traceMatch{unknownIface: m.Name, why: fmt.Sprintf("it matches packets that %s %s", unknown, m.Name)}
	case traceIfname(m.Name, name):
		return traceOK("%s %s", how, name)
	}
	return traceNo("%s %s, not %s", how, name, m.Name)
}

// traceIfname compares an interface name with a match's name, in which a
// trailing * matches any rest, as in nft.
func traceIfname(pattern, name string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(name, prefix)
	}
	return pattern == name
}

func (t *tracer) addr(m AddrMatch) traceMatch {
	a, side := t.p.Src, "source"
	if m.Dst {
		a, side = t.p.Dst, "destination"
	}
	if m.V6 != t.p.V6() {
		return traceNo("an %s packet; the rule's addresses are %s", traceFamily(t.p.V6()), traceFamily(m.V6))
	}
	ranges, name := m.Ranges, ""
	if m.Set != "" {
		s := t.rs.Set(m.Set)
		if s == nil {
			return traceNo("set %s is not in the ruleset", m.Set)
		}
		ranges, name = s.Ranges, "set "+traceSetName(m.Set)
	}
	if r, ok := traceRange(ranges, a); ok {
		if name != "" {
			return traceOK("%s %s in %s (%s)", side, a, name, renderRange(r))
		}
		return traceOK("%s %s in %s", side, a, renderRange(r))
	}
	if name == "" {
		name = traceRanges(ranges)
	}
	return traceNo("%s %s not in %s", side, a, name)
}

// traceSetName is the policy's name of one family's half of a set.
func traceSetName(kernel string) string {
	for _, v6 := range []bool{false, true} {
		if name, ok := strings.CutSuffix(kernel, SetName("", v6)); ok {
			return name
		}
	}
	return kernel
}

// traceRange finds the range of merged (sorted, disjoint) ranges that
// holds a.
func traceRange(rs []AddrRange, a netip.Addr) (AddrRange, bool) {
	// The first range starting after a; the one before it may hold a.
	i, _ := slices.BinarySearchFunc(rs, a, func(r AddrRange, a netip.Addr) int {
		if r.From.Compare(a) <= 0 {
			return -1
		}
		return 1
	})
	if i == 0 || rs[i-1].To.Compare(a) < 0 {
		return AddrRange{}, false
	}
	return rs[i-1], true
}

// traceRanges renders an anonymous set, shortened past a few ranges.
func traceRanges(rs []AddrRange) string {
	const shown = 4
	if len(rs) <= shown {
		return renderRanges(rs, true)
	}
	return fmt.Sprintf("{ %s, … %d more }", renderRanges(rs[:shown-1], false), len(rs)-shown+1)
}

func (t *tracer) icmpType(m ICMPTypeMatch) traceMatch {
	proto := policy.ICMP
	if m.V6 {
		proto = policy.ICMPv6
	}
	p := t.p
	if p.Protocol != proto {
		return traceNo("protocol %s, not %s", p.Protocol, proto)
	}
	if slices.Contains(m.Types, p.ICMPType) {
		return traceOK("%s type %s", proto, ICMPTypeName(m.V6, p.ICMPType))
	}
	names := make([]string, len(m.Types))
	for i, typ := range m.Types {
		names[i] = ICMPTypeName(m.V6, typ)
	}
	return traceNo("%s type %s, not %s", proto, ICMPTypeName(m.V6, p.ICMPType), strings.Join(names, ", "))
}

// More ICMP and ICMPv6 type names, as nft spells them, for packets to
// trace; the implicit rules' own are in icmpTypeNames and icmpv6TypeNames.
var (
	icmpTraceTypeNames = map[uint8]string{
		0: "echo-reply", 4: "source-quench", 5: "redirect", 8: "echo-request",
		9: "router-advertisement", 10: "router-solicitation", 13: "timestamp-request", 14: "timestamp-reply",
	}
	icmpv6TraceTypeNames = map[uint8]string{
		128: "echo-request", 129: "echo-reply", 137: "nd-redirect",
	}
)

// ICMP type numbers of the echo requests, what ping sends.
const (
	ICMPEchoRequest   uint8 = 8
	ICMPv6EchoRequest uint8 = 128
)

// ICMPTypeName names an ICMP (v6 false) or ICMPv6 type as nft does, or
// gives its number.
func ICMPTypeName(v6 bool, typ uint8) string {
	names, more := icmpTypeNames, icmpTraceTypeNames
	if v6 {
		names, more = icmpv6TypeNames, icmpv6TraceTypeNames
	}
	if n, ok := names[typ]; ok {
		return n
	}
	if n, ok := more[typ]; ok {
		return n
	}
	return strconv.Itoa(int(typ))
}

// ParseICMPType reads an ICMP (v6 false) or ICMPv6 type given by nft's
// name or by number.
func ParseICMPType(v6 bool, s string) (uint8, error) {
	if n, err := strconv.ParseUint(s, 10, 8); err == nil {
		return uint8(n), nil
	}
	var known []string
	for typ := range 256 {
		name := ICMPTypeName(v6, uint8(typ))
		if name == s {
			return uint8(typ), nil
		}
		if name != strconv.Itoa(typ) {
			known = append(known, name)
		}
	}
	proto := "icmp"
	if v6 {
		proto = "icmpv6"
	}
	return 0, fmt.Errorf("%s type %q: use a number from 0 to 255 or one of %s", proto, s, strings.Join(known, ", "))
}
