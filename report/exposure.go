package report

import (
	"fmt"
	"net/netip"
	"strings"
)

// Exposure is what the running ruleset lets in, out and through, per
// direction, as the daemon reads it from the compiled ruleset; Build
// writes each rule's sentence.
type Exposure struct {
	Directions []DirectionExposure `json:"directions"`
}

// DirectionExposure is one direction (input, forward, output): its rules
// in the order the kernel evaluates them (first match wins), then the
// default for packets no rule decided.
type DirectionExposure struct {
	Direction      string        `json:"direction"`
	Rules          []ExposedRule `json:"rules"`
	Default        string        `json:"default"`
	DefaultCounter string        `json:"defaultCounter"`
	DefaultLogged  bool          `json:"defaultLogged"`
	// DefaultText says it in a sentence.
	DefaultText string `json:"defaultText"`
}

// ExposedRule is one counted rule: the packets it matches (Services from
// From to To, each list OR-ed, an empty one matching everything) and what
// it does with them.
type ExposedRule struct {
	// Rule is the counter: the policy rule's name, or the reserved name
	// of an implicit rule.
	Rule string `json:"rule"`
	// Kind is user or implicit; Implicit says which implicit rule
	// (established, invalid, loopback, icmpv6-nd, icmp-errors, failsafe,
	// tunnel) and Tunnel names a tunnel's.
	Kind     string `json:"kind"`
	Implicit string `json:"implicit,omitempty"`
	Tunnel   string `json:"tunnel,omitempty"`
	Action   string `json:"action"`
	// Mode is audit for a rule that is watched, not enforced.
	Mode   string `json:"mode"`
	Logged bool   `json:"logged"`
	// Family is ipv4 or ipv6 when the rule matches only that family.
	Family   string     `json:"family,omitempty"`
	Services []Service  `json:"services"`
	From     []Endpoint `json:"from"`
	To       []Endpoint `json:"to"`
	States   []string   `json:"states,omitempty"`
	// Limit and ConnLimit: what is over them is dropped (audit mode:
	// would be) and counted in LimitedCounter.
	Limit          *Limit     `json:"limit,omitempty"`
	ConnLimit      *ConnLimit `json:"connLimit,omitempty"`
	LimitedCounter string     `json:"limitedCounter,omitempty"`
	// Never is a rule that matches no packet.
	Never bool `json:"never,omitempty"`
	// Text says it in a sentence for people.
	Text string `json:"text"`
}

// Service is a protocol (tcp, udp, sctp, icmp, icmpv6) and its
// destination ports (none: every port) or ICMP types.
type Service struct {
	Protocol  string      `json:"protocol"`
	Ports     []PortRange `json:"ports,omitempty"`
	ICMPTypes []string    `json:"icmpTypes,omitempty"`
}

// PortRange is an inclusive range of ports; From == To for one.
type PortRange struct {
	From uint16 `json:"from"`
	To   uint16 `json:"to"`
}

// Endpoint is one of: a CIDR (less Except; 0.0.0.0/0 and ::/0 are any
// address of the family), a named Set with its Size, an Interface name
// (a trailing * matches names beginning so).
type Endpoint struct {
	CIDR      string   `json:"cidr,omitempty"`
	Except    []string `json:"except,omitempty"`
	Set       string   `json:"set,omitempty"`
	Size      *SetSize `json:"size,omitempty"`
	Interface string   `json:"interface,omitempty"`
}

// SetSize is what a named set holds in the kernel: merged ranges per
// family, the IPv4 addresses they cover, whether each is one address.
type SetSize struct {
	IPv4Ranges    int    `json:"ipv4Ranges"`
	IPv6Ranges    int    `json:"ipv6Ranges"`
	IPv4Addresses uint64 `json:"ipv4Addresses"`
	Singles       bool   `json:"singles"`
}

// Limit is a packet rate limit: Rate packets per Per (second, minute,
// hour, day), with a Burst, over all packets or per source address.
type Limit struct {
	Rate      uint64 `json:"rate"`
	Per       string `json:"per"`
	Burst     uint32 `json:"burst"`
	PerSource bool   `json:"perSource"`
}

// ConnLimit caps concurrent connections, over all or per source.
type ConnLimit struct {
	Max       uint32 `json:"max"`
	PerSource bool   `json:"perSource"`
}

// describeExposure writes the sentences of every rule and default, and
// gives every list its JSON form, [] rather than null.
func describeExposure(e *Exposure) {
	e.Directions = orEmpty(e.Directions)
	for i := range e.Directions {
		d := &e.Directions[i]
		d.Rules = orEmpty(d.Rules)
		for j := range d.Rules {
			r := &d.Rules[j]
			r.Services, r.From, r.To = orEmpty(r.Services), orEmpty(r.From), orEmpty(r.To)
			r.Text = ruleText(d.Direction, *r)
		}
		d.DefaultText = defaultText(*d)
	}
}

func defaultText(d DirectionExposure) string {
	s := fmt.Sprintf("Everything else is %s and counted (%s)", pastAction(d.Default), d.DefaultCounter)
	if d.DefaultLogged {
		s += "; a sample is logged"
	}
	return s + "."
}

// implicitTexts say what each implicit rule is for.
var implicitTexts = map[string]string{
	"established": "Replies and related traffic of connections already allowed are accepted",
	"invalid":     "Packets that belong to no valid connection (conntrack state invalid) are dropped and counted",
	"icmpv6-nd":   "The ICMPv6 neighbour discovery and multicast listener messages that IPv6 needs are accepted",
	"icmp-errors": "ICMP error messages (destination unreachable, time exceeded, parameter problem, and for IPv6 packet too big) are accepted",
}

// ruleText says what a rule does, for a reader who does not read nft.
func ruleText(dir string, r ExposedRule) string {
	var s string
	switch {
	case implicitTexts[r.Implicit] != "":
		s = implicitTexts[r.Implicit]
	case r.Implicit == "loopback":
		s = "Traffic on the loopback interface lo, between programs of the host itself, is accepted"
	case r.Implicit == "failsafe":
		s = "Failsafe, before every rule so that operators cannot lock themselves out: " + lowerFirst(userText(dir, r))
	case r.Implicit == "tunnel":
		s = fmt.Sprintf("Anyone may send to %s, the WireGuard listen port of tunnel %s (WireGuard answers only its peers' keys)", servicesText(r.Services), r.Tunnel)
	case r.Never:
		s = "Matches no packet: its addresses and protocols exclude each other"
	default:
		s = userText(dir, r)
	}
	s += fmt.Sprintf(" (%s)", r.Rule)
	if l := limitText(r); l != "" {
		s += "; " + l
	}
	return s + "."
}

// userText is a policy rule's sentence, without its counter.
func userText(dir string, r ExposedRule) string {
	traffic := trafficText(dir, r)
	if r.Mode == "audit" {
		return fmt.Sprintf("Watched, not enforced: %s would be %s; it is counted, logged and let through", lowerFirst(traffic), pastAction(r.Action))
	}
	if dir == "input" && r.Action == "accept" && len(r.From) == 0 {
		what := "on every protocol and port"
		if len(r.Services) > 0 {
			what = "to " + servicesText(r.Services)
		}
		s := "Anyone may connect " + what
		if len(r.To) > 0 {
			s += " at " + endpointsText(r.To, "or")
		}
		return s + familyText(r)
	}
	verb := "is " + pastAction(r.Action)
	switch {
	case r.Action != "accept" && r.Logged:
		verb += ", counted and logged"
	case r.Action != "accept":
		verb += " and counted"
	}
	if r.Action == "reject" {
		verb += "; the sender is told so"
	}
	return traffic + " " + verb
}

// trafficText names the packets a rule matches: "TCP 22 from the set
// mgmt-nets (2 ranges)", "Outgoing TCP 3000 to 10.20.0.0/16".
func trafficText(dir string, r ExposedRule) string {
	var b strings.Builder
	prefix := map[string]string{"output": "outgoing ", "forward": "forwarded "}[dir]
	if len(r.Services) == 0 {
		b.WriteString("all " + prefix + "traffic")
	} else {
		b.WriteString(prefix + servicesText(r.Services))
	}
	if len(r.From) > 0 {
		b.WriteString(" from " + endpointsText(r.From, "or"))
	}
	if len(r.To) > 0 {
		b.WriteString(" to " + endpointsText(r.To, "or"))
	}
	b.WriteString(familyText(r))
	return upperFirst(b.String())
}

// familyText says that a rule matches one family, unless its addresses
// say so already.
func familyText(r ExposedRule) string {
	if r.Family == "" {
		return ""
	}
	for _, ep := range append(r.From, r.To...) {
		if ep.CIDR != "" || ep.Set != "" {
			return ""
		}
	}
	return map[string]string{"ipv4": " (IPv4 only)", "ipv6": " (IPv6 only)"}[r.Family]
}

var protocolNames = map[string]string{"tcp": "TCP", "udp": "UDP", "sctp": "SCTP", "icmp": "ICMP", "icmpv6": "ICMPv6"}

func protocolName(p string) string {
	if n, ok := protocolNames[p]; ok {
		return n
	}
	return p
}

// servicesText lists services: "TCP 80, 443 and 8000–8090", "UDP 53 and
// TCP 53", "all UDP", "ICMPv6 packet-too-big".
func servicesText(ss []Service) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		name := protocolName(s.Protocol)
		switch {
		case len(s.Ports) > 0:
			ports := make([]string, len(s.Ports))
			for j, p := range s.Ports {
				ports[j] = portText(p)
			}
			parts[i] = name + " " + joinList(ports, "and")
		case len(s.ICMPTypes) > 0:
			parts[i] = name + " " + joinList(s.ICMPTypes, "and")
		case s.Protocol == "icmp" || s.Protocol == "icmpv6":
			parts[i] = name
		default:
			parts[i] = "all " + name
		}
	}
	return joinList(parts, "and")
}

func portText(p PortRange) string {
	if p.From == p.To {
		return fmt.Sprint(p.From)
	}
	return fmt.Sprintf("%d–%d", p.From, p.To)
}

// endpointsText lists sources or destinations joined by conj.
func endpointsText(eps []Endpoint, conj string) string {
	parts := make([]string, len(eps))
	for i, ep := range eps {
		parts[i] = endpointText(ep)
	}
	return joinList(parts, conj)
}

func endpointText(ep Endpoint) string {
	switch {
	case ep.Set != "":
		return fmt.Sprintf("the set %s (%s)", ep.Set, setSizeText(ep.Size))
	case ep.Interface != "":
		return "interface " + ep.Interface
	}
	s := cidrText(ep.CIDR)
	if len(ep.Except) > 0 {
		except := make([]string, len(ep.Except))
		for i, x := range ep.Except {
			except[i] = cidrText(x)
		}
		s += " except " + joinList(except, "and")
	}
	return s
}

// cidrText writes a prefix of one address as the address, and a whole
// family as any address of it.
func cidrText(s string) string {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return s
	case p.Bits() == 0 && p.Addr().Is4():
		return "any IPv4 address"
	case p.Bits() == 0:
		return "any IPv6 address"
	case p.IsSingleIP():
		return p.Addr().String()
	}
	return s
}

func setSizeText(s *SetSize) string {
	if s == nil {
		return "size unknown"
	}
	n := s.IPv4Ranges + s.IPv6Ranges
	switch {
	case n == 0:
		return "empty"
	case s.Singles:
		return plural(n, "address", "addresses")
	}
	return plural(n, "range", "ranges")
}

// limitText says what a rule's limits do with the packets over them.
func limitText(r ExposedRule) string {
	var parts []string
	if l := r.Limit; l != nil {
		s := fmt.Sprintf("at most %s a %s", plural(int(l.Rate), "packet", "packets"), l.Per)
		if l.Burst > 0 {
			s += fmt.Sprintf(" (bursts of %d)", l.Burst)
		}
		if l.PerSource {
			s += " per source address"
		}
		parts = append(parts, s)
	}
	if c := r.ConnLimit; c != nil {
		s := fmt.Sprintf("at most %s at a time", plural(int(c.Max), "connection", "connections"))
		if c.PerSource {
			s += " per source address"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return ""
	}
	fate := "packets beyond are dropped and counted in " + r.LimitedCounter
	if r.Mode == "audit" {
		fate = "packets beyond would be dropped; they are counted in " + r.LimitedCounter + " and let through"
	}
	return joinList(parts, "and") + ": " + fate
}

func pastAction(a string) string {
	switch a {
	case "accept":
		return "accepted"
	case "drop":
		return "dropped"
	case "reject":
		return "rejected"
	}
	return a
}
