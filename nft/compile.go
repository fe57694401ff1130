package nft

import (
	"errors"
	"fmt"
	"slices"

	"github.com/edgefw/edgefw/policy"
)

// Reserved counter names of implicit rules. Each direction has its own so a
// counter belongs to exactly one chain (and one metric direction label).
const (
	prefixReserved = "edgefw-"
	nameFailsafe   = "edgefw-failsafe"
)

func implicitName(what string, dir policy.Direction) string {
	return fmt.Sprintf("edgefw-%s-%s", what, dir)
}

// DefaultCounter is the counter name of a direction's default policy.
func DefaultCounter(dir policy.Direction) string { return implicitName("default", dir) }

// TunnelCounter is the counter name of a tunnel's listen-port rule.
func TunnelCounter(tunnel string) string { return "edgefw-tunnel-" + tunnel }

// LimitedCounter is the counter of packets a rule's limit or connLimit dropped.
func LimitedCounter(rule string) string { return "edgefw-limited-" + rule }

// SetName is the kernel name of one family's half of a policy set.
func SetName(set string, v6 bool) string {
	if v6 {
		return set + "-v6"
	}
	return set + "-v4"
}

// logRate bounds log messages per rule so a flood of denied packets cannot
// swamp the daemon's audit log; packets over it are still counted and get
// their verdict from the unlogged copy of the rule that follows.
var logRate = RateLimit{Rate: 20, Per: "second", Burst: 50}

// ICMP types accepted by implicit rules. ND and MLD are what IPv6 needs to
// work at all (RFC 4890 §4.4.1); the error types carry path MTU discovery
// and unreachability (RFC 4890 §4.3.1, RFC 1191).
var (
	icmpv6NDTypes     = []uint8{130, 131, 132, 133, 134, 135, 136, 143}
	icmpErrorTypes    = []uint8{3, 11, 12}
	icmpv6ErrorTypes  = []uint8{1, 2, 3, 4}
	establishedStates = []string{"established", "related"}
)

type compiler struct {
	p  *policy.Policy
	rs *Ruleset
	// regular are the regular chains of rules in audit mode and of
	// rules' limits, which follow the base chains.
	regular []*Chain
	// dispatched are the chains of verdict maps' keys, which come
	// before the regular chains their rules jump to.
	dispatched []*Chain
	// counted are the counters of rs, to find one without walking them
	// all: a policy of 10,000 rules took 0.2 s to compile that way.
	counted map[string]bool
	opts    compileOptions
}

// Compile turns a validated policy into the ruleset of table inet edgefw.
// It is pure: the same policy always gives the same ruleset.
func Compile(p *policy.Policy) (*Ruleset, error) { return compile(p, compileOptions{}) }

func compile(p *policy.Policy, opts compileOptions) (*Ruleset, error) {
	return compileWith(p, opts, nil)
}

// compileWith is compile with the sets' ranges taken from memo, which
// may be nil.
func compileWith(p *policy.Policy, opts compileOptions, memo *setMemo) (*Ruleset, error) {
	// Most rules have a counter of their own, and the implicit rules a
	// few dozen: sized once, not grown rule by rule (growing them took
	// a tenth of compiling 10,000 rules).
	n := len(p.Rules) + 32
	c := &compiler{p: p, rs: &Ruleset{Counters: make([]string, 0, n), Rules: make([]RuleInfo, 0, n)},
		counted: make(map[string]bool, n), opts: opts}
	for _, s := range p.Sets {
		v4, v6 := memo.ranges(s.Name, s.Prefixes)
		c.rs.Sets = append(c.rs.Sets,
			&AddrSet{Name: SetName(s.Name, false), Ranges: v4},
			&AddrSet{Name: SetName(s.Name, true), V6: true, Ranges: v6})
	}
	// Fail closed: whatever the compiler does not know is refused, never
	// read as accept. Policies from the parser never get here with such
	// values, but a Policy built in code could.
	var errs []error
	for _, dir := range policy.Directions {
		if a := p.Defaults.For(dir); a != policy.Accept && a != policy.Drop {
			errs = append(errs, fmt.Errorf("defaults.%s: %q is not a default verdict; use accept or drop", dir, a))
		}
	}
	for i := range p.Rules {
		if err := checkRule(&p.Rules[i]); err != nil {
			errs = append(errs, fmt.Errorf("rule %q: %w", p.Rules[i].Name, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, dir := range policy.Directions {
		ch := &Chain{Name: string(dir), Hook: dir, Policy: p.Defaults.For(dir)}
		c.rs.Chains = append(c.rs.Chains, ch)
		c.implicit(ch)
		units := make([]ruleUnit, 0, len(p.Rules))
		for i := range p.Rules {
			r := &p.Rules[i]
			if r.Direction != dir {
				continue
			}
			u, err := c.unit(ch, r)
			if err != nil {
				errs = append(errs, fmt.Errorf("rule %q: %w", r.Name, err))
			}
			units = append(units, u)
		}
		c.layout(ch, units)
		c.defaultRule(ch)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.rs.Chains = slices.Concat(c.rs.Chains, c.dispatched, c.regular)
	return c.rs, nil
}

func (c *compiler) counter(name string, info RuleInfo) {
	if c.counted[name] {
		return
	}
	c.counted[name] = true
	info.Name = name
	c.rs.Counters = append(c.rs.Counters, name)
	c.rs.Rules = append(c.rs.Rules, info)
}

func (c *compiler) add(ch *Chain, counter string, kind string, action policy.Action, r *Rule) {
	r.Owner, r.Counter, r.Verdict = counter, counter, action
	c.counter(counter, RuleInfo{Direction: ch.Hook, Action: action, Kind: kind, Mode: policy.Enforce})
	ch.Rules = append(ch.Rules, r)
}

func (c *compiler) implicit(ch *Chain) {
	dir := ch.Hook
	if dir == policy.Forward {
		c.mssClamp(ch)
	}
	c.add(ch, implicitName("established", dir), KindImplicit, policy.Accept,
		&Rule{Matches: []Match{CtStateMatch{States: establishedStates}}})
	c.add(ch, implicitName("invalid", dir), KindImplicit, policy.Drop,
		&Rule{Matches: []Match{CtStateMatch{States: []string{"invalid"}}}})
	if dir != policy.Forward {
		c.add(ch, implicitName("loopback", dir), KindImplicit, policy.Accept,
			&Rule{Matches: []Match{IfaceMatch{Out: dir == policy.Output, Name: "lo"}}})
		c.add(ch, implicitName("icmpv6-nd", dir), KindImplicit, policy.Accept,
			&Rule{Matches: []Match{ICMPTypeMatch{V6: true, Types: icmpv6NDTypes}}})
	}
	errs := implicitName("icmp-errors", dir)
	c.add(ch, errs, KindImplicit, policy.Accept, &Rule{Matches: []Match{ICMPTypeMatch{Types: icmpErrorTypes}}})
	c.add(ch, errs, KindImplicit, policy.Accept, &Rule{Matches: []Match{ICMPTypeMatch{V6: true, Types: icmpv6ErrorTypes}}})
	switch dir {
	case policy.Input:
		// An empty failsafe is disabled, not "all ports": portAlternatives
		// reads no ports as a match on everything.
		if len(c.p.Failsafe) > 0 {
			for _, alt := range portAlternatives(c.p.Failsafe, false, false) {
				c.add(ch, nameFailsafe, KindImplicit, policy.Accept, &Rule{Matches: alt})
			}
		}
		for _, t := range c.p.Tunnels {
			if t.ListenPort == 0 {
				continue
			}
			c.add(ch, TunnelCounter(t.Name), KindImplicit, policy.Accept, &Rule{Matches: []Match{
				L4Match{Protos: []policy.Protocol{policy.UDP}, Ports: []PortSpan{{t.ListenPort, t.ListenPort}}},
			}})
		}
	}
}

// mssClamp clamps the MSS of forwarded TCP SYNs and SYN-ACKs that enter or
// leave a tunnel: the tunnel's MTU is smaller than the links of the hosts
// on either side, which announce an MSS from their own link, and the ICMP
// that path MTU discovery needs may be lost on the way.
//
// The rules come before the established accept: conntrack calls a SYN-ACK
// established (it is the first packet of the reply direction), so after
// that accept only SYNs were clamped, and a LAN host connecting into the
// tunnel learned the far end's unclamped MSS. `rt mtu` is the smaller MTU
// of the routes to the packet's destination and back to its source
// (net/netfilter/nft_rt.c, get_tcpmss), so a SYN-ACK leaving the tunnel
// for the LAN gets the tunnel's MTU too; and the kernel only ever lowers
// an MSS with it, never raises one.
//
// Input and output need no clamp: the host's own TCP announces the MSS of
// its route, which for a peer behind a tunnel is the tunnel's, in its SYNs
// and SYN-ACKs alike, and sends no segment larger than that route's path
// MTU allows, whatever MSS the peer announced.
func (c *compiler) mssClamp(ch *Chain) {
	for _, t := range c.p.Tunnels {
		for _, out := range []bool{false, true} {
			ch.Rules = append(ch.Rules, &Rule{
				Owner:   TunnelCounter(t.Name),
				Matches: []Match{IfaceMatch{Out: out, Name: t.Name}, TCPSynMatch{}},
				Stmt:    MSSClampStmt{},
			})
		}
	}
}

func (c *compiler) defaultRule(ch *Chain) {
	name := DefaultCounter(ch.Hook)
	if ch.Policy == policy.Drop {
		c.add(ch, name, KindDefault, policy.Drop, &Rule{Limit: &logRate, LogPrefix: name})
	}
	c.add(ch, name, KindDefault, ch.Policy, &Rule{})
}

// checkRule refuses what a rule's direction, action and limits must not
// be: the compiler would otherwise drop the rule, give it no verdict, or
// divide by a rate of zero.
func checkRule(r *policy.Rule) error {
	var errs []error
	if !slices.Contains(policy.Directions, r.Direction) {
		errs = append(errs, fmt.Errorf("direction %q is not one of input, forward, output", r.Direction))
	}
	switch r.Action {
	case policy.Accept, policy.Drop, policy.Reject:
	default:
		errs = append(errs, fmt.Errorf("action %q is not one of accept, drop, reject", r.Action))
	}
	if l := r.Limit; l != nil {
		if l.Rate == 0 {
			errs = append(errs, errors.New("limit: a rate of 0 would drop every packet; the count must be at least 1"))
		}
		if _, ok := rateUnits[l.Per]; !ok {
			errs = append(errs, fmt.Errorf("limit: %q is not a rate unit; use second, minute, hour or day", l.Per))
		}
	}
	if r.ConnLimit != nil && r.ConnLimit.Max == 0 {
		errs = append(errs, errors.New("connLimit: a max of 0 would drop every new connection; it must be at least 1"))
	}
	switch r.Mode {
	case "", policy.Enforce:
	case policy.Audit:
		if r.Action == policy.Accept {
			errs = append(errs, errors.New("mode audit on an accept rule, which denies nothing; audit drop and reject rules"))
		}
	default:
		errs = append(errs, fmt.Errorf("mode %q is not one of enforce, audit", r.Mode))
	}
	return errors.Join(errs...)
}

// ruleMode is the mode a rule's counters are in; an empty Mode enforces.
func ruleMode(r *policy.Rule) policy.Mode {
	if r.Mode == policy.Audit {
		return policy.Audit
	}
	return policy.Enforce
}

// alternatives are the match lists of a policy rule: the product of its
// from, to and ports alternatives, per address family when addresses are
// named.
func (c *compiler) alternatives(r *policy.Rule) [][]Match {
	var alts [][]Match
	for _, fam := range c.families(r) {
		froms := c.peerAlternatives(r.From, false, fam)
		tos := c.peerAlternatives(r.To, true, fam)
		ports := portAlternatives(r.Ports, fam == famV4, fam == famV6)
		for _, f := range froms {
			for _, t := range tos {
				for _, p := range ports {
					alts = append(alts, normalize(slices.Concat(f, t, p)))
				}
			}
		}
	}
	return alts
}

// rule compiles one policy rule into kernel rules, one or more for each
// of its alternatives.
func (c *compiler) rule(ch *Chain, r *policy.Rule) error {
	alts := c.alternatives(r)
	if len(alts) == 0 {
		// The rule can match no packet (e.g. only an icmp entry in an
		// IPv6-only rule); it still has its counter so metrics list it.
		c.counter(r.Name, RuleInfo{Direction: r.Direction, Action: r.Action, Kind: KindUser, Mode: ruleMode(r)})
		return nil
	}
	if ruleMode(r) == policy.Audit {
		c.auditRule(ch, r, alts)
		return nil
	}
	// A limit is the rule's, not an alternative's: it lives once, in a
	// chain of its own that every alternative jumps to before its verdict.
	// A limit statement or ct count per alternative would give each its
	// own token bucket or connection count, and the rule N times the
	// limit. Each alternative ends with a verdict, so a packet passes the
	// limit at most once, also when it matches several alternatives.
	var limits *Chain
	if r.Limit != nil || r.ConnLimit != nil {
		limits = c.limitChain(r, alts)
	}
	for _, alt := range alts {
		if limits != nil {
			ch.Rules = append(ch.Rules, &Rule{Owner: r.Name, Matches: alt, Jump: limits.Name})
		}
		if r.Log {
			c.add(ch, r.Name, KindUser, r.Action, &Rule{Matches: alt, Limit: &logRate, LogPrefix: r.Name})
		}
		c.add(ch, r.Name, KindUser, r.Action, &Rule{Matches: alt})
	}
	return nil
}

type family int

const (
	famAny family = iota
	famV4
	famV6
)

// families returns the passes a rule compiles in: one family-agnostic pass
// when it names no addresses, else one per family it may match.
func (c *compiler) families(r *policy.Rule) []family {
	addrs := false
	for _, p := range slices.Concat(r.From, r.To) {
		if p.CIDR.IsValid() || p.Set != "" {
			addrs = true
		}
	}
	switch {
	case r.Family == policy.IPv4:
		return []family{famV4}
	case r.Family == policy.IPv6:
		return []family{famV6}
	case !addrs:
		return []family{famAny}
	}
	return []family{famV4, famV6}
}

// peerAlternatives compiles a from or to list into OR-ed match lists. An
// empty list matches everything; a list with nothing usable in this family
// yields no alternative at all, so the rule has no kernel rule in it.
func (c *compiler) peerAlternatives(peers []policy.Peer, dst bool, fam family) [][]Match {
	if len(peers) == 0 {
		if fam == famAny {
			return [][]Match{nil}
		}
		return [][]Match{{NFProtoMatch{V6: fam == famV6}}}
	}
	var alts [][]Match
	var ranges []AddrRange
	for _, p := range peers {
		if !p.CIDR.IsValid() || p.CIDR.Addr().Is6() != (fam == famV6) {
			continue
		}
		rs := subtractRanges([]AddrRange{prefixRange(p.CIDR)}, prefixesToRanges(p.Except))
		ranges = append(ranges, rs...)
	}
	if len(ranges) > 0 {
		merged := mergeRanges(ranges)
		if len(merged) == 1 && merged[0] == wholeFamily(fam == famV6) {
			// 0.0.0.0/0 or ::/0: every address of the family.
			alts = append(alts, []Match{NFProtoMatch{V6: fam == famV6}})
		} else {
			alts = append(alts, []Match{AddrMatch{Dst: dst, V6: fam == famV6, Ranges: merged}})
		}
	}
	for _, p := range peers {
		switch {
		case p.Set != "" && fam != famAny:
			alts = append(alts, []Match{AddrMatch{Dst: dst, V6: fam == famV6, Set: SetName(p.Set, fam == famV6)}})
		case p.Interface != "":
			m := []Match{IfaceMatch{Out: dst, Name: p.Interface}}
			if fam != famAny {
				m = append([]Match{NFProtoMatch{V6: fam == famV6}}, m...)
			}
			alts = append(alts, m)
		}
	}
	return alts
}

// portAlternatives groups ports entries: protocols matched on every port
// (and ICMP) share one rule; each protocol with ports gets one rule with a
// port set, never one rule per port.
func portAlternatives(ports []policy.PortRange, v4Only, v6Only bool) [][]Match {
	if len(ports) == 0 {
		return [][]Match{nil}
	}
	var whole []policy.Protocol
	// The ports of each protocol, in first-use order; a rule names one
	// or two protocols, so a list beats a map (a map per rule was a
	// tenth of compiling 10,000 rules).
	type protoSpans struct {
		proto policy.Protocol
		spans []PortSpan
	}
	var order []protoSpans
	for _, p := range ports {
		if (p.Protocol == policy.ICMP && v6Only) || (p.Protocol == policy.ICMPv6 && v4Only) {
			continue
		}
		if p.AllPorts() {
			if !slices.Contains(whole, p.Protocol) {
				whole = append(whole, p.Protocol)
			}
			continue
		}
		i := slices.IndexFunc(order, func(o protoSpans) bool { return o.proto == p.Protocol })
		if i < 0 {
			i = len(order)
			order = append(order, protoSpans{proto: p.Protocol})
		}
		order[i].spans = append(order[i].spans, PortSpan{From: p.Port, To: p.EndPort})
	}
	alts := make([][]Match, 0, len(order)+1)
	if len(whole) > 0 {
		// nft lists the protocols of a set in numeric order.
		slices.SortFunc(whole, func(a, b policy.Protocol) int { return int(protoNumber(a)) - int(protoNumber(b)) })
		alts = append(alts, []Match{L4Match{Protos: whole}})
	}
	for _, o := range order {
		if slices.Contains(whole, o.proto) {
			continue
		}
		alts = append(alts, []Match{L4Match{Protos: []policy.Protocol{o.proto}, Ports: mergePorts(o.spans)}})
	}
	return alts
}

// ConnCountMatch matches when the connection count exceeds Max.
type ConnCountMatch struct{ Max uint32 }

// String renders it as nft text.
func (m ConnCountMatch) String() string { return fmt.Sprintf("ct count over %d", m.Max) }

// normalize drops redundant family matches: an address match implies its
// family, one family match is enough, and nft reads "meta l4proto icmp"
// (or ipv6-icmp) as implying its family too: it lists a family match
// before one as part of it.
func normalize(ms []Match) []Match {
	implied := false
	for _, m := range ms {
		switch m := m.(type) {
		case AddrMatch, MeterMatch:
			implied = true
		case L4Match:
			if len(m.Protos) == 1 && len(m.Ports) == 0 && (m.Protos[0] == policy.ICMP || m.Protos[0] == policy.ICMPv6) {
				implied = true
			}
		}
	}
	out := make([]Match, 0, len(ms))
	seen := false
	for _, m := range ms {
		if _, ok := m.(NFProtoMatch); ok {
			if implied || seen {
				continue
			}
			seen = true
		}
		out = append(out, m)
	}
	return out
}
