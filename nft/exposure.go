package nft

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/edgefw/edgefw/policy"
)

// Exposure is what a ruleset lets in, out and through, read back from its
// chains in the policy's terms: per direction, every counted rule in the
// order the kernel evaluates them, with the traffic it matches and its
// verdict, then the default. It is derived from the compiled ruleset alone
// (Ruleset.Exposure), so it says what the kernel is given, not what a
// policy file meant: sets are the sets loaded, with their sizes, a CIDR
// with except is what remains of it, implicit rules are there.
type Exposure struct {
	Directions []DirectionExposure
}

// DirectionExposure is what one base chain does.
type DirectionExposure struct {
	Direction policy.Direction
	// Rules are the counted rules, first match wins.
	Rules []ExposedRule
	// Default is the verdict for packets no rule decided, counted in
	// DefaultCounter; DefaultLogged says whether a sample of them is
	// logged (a default that drops is).
	Default        policy.Action
	DefaultCounter string
	DefaultLogged  bool
}

// Implicit names what an implicit rule is for.
type Implicit string

// The implicit rules, as their counters name them (edgefw-WHAT-DIRECTION,
// edgefw-failsafe, edgefw-tunnel-NAME).
const (
	ImplicitEstablished Implicit = "established"
	ImplicitInvalid     Implicit = "invalid"
	ImplicitLoopback    Implicit = "loopback"
	ImplicitICMPv6ND    Implicit = "icmpv6-nd"
	ImplicitICMPErrors  Implicit = "icmp-errors"
	ImplicitFailsafe    Implicit = "failsafe"
	ImplicitTunnel      Implicit = "tunnel"
)

// ExposedRule is one counted rule: the packets it matches (Services from
// From to To, each list OR-ed, an empty one matching everything) and what
// it does with them.
type ExposedRule struct {
	// Counter is the rule's counter: the policy rule's name or the
	// reserved name of an implicit rule.
	Counter string
	// Kind is KindUser or KindImplicit; Implicit says which implicit rule,
	// and Tunnel names the tunnel of an ImplicitTunnel.
	Kind     string
	Implicit Implicit
	Tunnel   string
	Action   policy.Action
	// Mode is policy.Audit for a rule that counts and logs what it would
	// deny and lets it go on.
	Mode policy.Mode
	// Logged says whether a sample of the packets is logged.
	Logged bool
	// Family is IPv4 or IPv6 when every packet the rule matches is of
	// that family, else Any.
	Family   policy.Family
	Services []Service
	From     []Endpoint
	To       []Endpoint
	// States are the conntrack states matched, for established and
	// invalid.
	States []string
	// Limit and ConnLimit are the rule's limits: what is over them is
	// dropped (in audit mode: would be) and counted in LimitedCounter.
	Limit          *policy.Limit
	ConnLimit      *policy.ConnLimit
	LimitedCounter string
	// Never is a rule with no kernel rule: it matches no packet (say, only
	// icmp in a rule limited to IPv6), but has its counter.
	Never bool
}

// Service is a protocol and the destination ports (every port when none)
// or ICMP types (by nft's names) matched.
type Service struct {
	Protocol  policy.Protocol
	Ports     []PortSpan
	ICMPTypes []string
}

// Endpoint is a source or destination: a Prefix (less its Except), a
// named Set (with its size), or an Interface name (a trailing * is a
// prefix wildcard). A whole family's prefix (0.0.0.0/0, ::/0) is any
// address of it.
type Endpoint struct {
	Prefix    netip.Prefix
	Except    []netip.Prefix
	Set       string
	SetSize   *SetSize
	Interface string
}

// SetSize is how much a named set holds in the kernel: its merged ranges
// per family, the IPv4 addresses they cover, and whether every range is a
// single address.
type SetSize struct {
	IPv4Ranges, IPv6Ranges int
	IPv4Addresses          uint64
	Singles                bool
}

// Exposure reads the ruleset's exposure (see Exposure). It is pure.
func (rs *Ruleset) Exposure() Exposure {
	x := &exposer{rs: rs, alts: map[string][][]Match{}, seen: map[string]bool{}, logged: map[string]bool{}}
	var e Exposure
	for _, ch := range rs.Chains {
		if !ch.Regular() {
			x.walk(ch)
		}
	}
	for _, ch := range rs.Chains {
		if ch.Regular() {
			continue
		}
		d := DirectionExposure{Direction: ch.Hook, Default: ch.Policy, DefaultCounter: DefaultCounter(ch.Hook)}
		d.DefaultLogged = x.logged[d.DefaultCounter]
		for _, info := range rs.Rules {
			if info.Direction == ch.Hook && (info.Kind == KindUser || info.Kind == KindImplicit) {
				d.Rules = append(d.Rules, x.rule(info))
			}
		}
		e.Directions = append(e.Directions, d)
	}
	return e
}

// exposer gathers each counter's alternatives: the match lists of the
// kernel rules that count in it.
type exposer struct {
	rs     *Ruleset
	alts   map[string][][]Match
	seen   map[string]bool // counter and alternative, rendered
	logged map[string]bool
}

// walk gathers the alternatives of a base chain and of the audit chains
// it jumps to; the limit chains are read per rule (limits).
func (x *exposer) walk(ch *Chain) {
	for _, r := range ch.Rules {
		switch {
		case r.Dispatch != nil:
			// The chains of the map's keys hold the rules of a run of
			// port rules, each as it would be in the base chain; a
			// direct map's keys stand for such rules themselves.
			for _, e := range r.Dispatch.Elements {
				if e.Rule != nil {
					x.add(e.Rule.Counter, e.Rule.Matches, false)
				}
			}
			for _, name := range r.Dispatch.chains() {
				x.walk(x.chain(name))
			}
		case r.Jump == AuditChain(r.Owner):
			for _, ar := range x.chain(r.Jump).Rules {
				// Alternatives go to the limit chain (goto), or count
				// and return.
				x.add(cmpOr(ar.Counter, ar.Owner), ar.Matches, ar.LogPrefix != "")
			}
		case r.Jump != "", r.Counter == "":
			// A jump to the rule's limits, which the next kernel rule
			// repeats with its verdict; or a statement (MSS clamping).
		default:
			x.add(r.Counter, r.Matches, r.LogPrefix != "")
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (x *exposer) chain(name string) *Chain {
	for _, ch := range x.rs.Chains {
		if ch.Name == name {
			return ch
		}
	}
	return &Chain{Name: name}
}

// add records an alternative of a counter once: a logged rule's unlogged
// copy repeats it.
func (x *exposer) add(counter string, ms []Match, logged bool) {
	x.logged[counter] = x.logged[counter] || logged
	key := counter + "\x00" + (&Rule{Matches: ms}).String()
	if x.seen[key] {
		return
	}
	x.seen[key] = true
	x.alts[counter] = append(x.alts[counter], ms)
}

// rule describes one counter from its alternatives.
func (x *exposer) rule(info RuleInfo) ExposedRule {
	r := ExposedRule{Counter: info.Name, Kind: info.Kind, Action: info.Action, Mode: info.Mode, Logged: x.logged[info.Name]}
	if r.Mode == "" {
		r.Mode = policy.Enforce
	}
	if info.Kind == KindImplicit {
		r.Implicit, r.Tunnel = implicitOf(info.Name, info.Direction)
	}
	alts := x.alts[info.Name]
	if len(alts) == 0 {
		r.Never = true
		return r
	}
	var g altGather
	for _, ms := range alts {
		g.add(x.rs, ms)
	}
	r.Family, r.Services, r.From, r.To, r.States = g.family(), g.services(), g.endpoints(false), g.endpoints(true), g.states
	if info.Kind == KindUser {
		r.Limit, r.ConnLimit = limitsOf(x.chain(LimitChain(info.Name)), LimitedCounter(info.Name))
		if r.Limit != nil || r.ConnLimit != nil {
			r.LimitedCounter = LimitedCounter(info.Name)
		}
	}
	return r
}

// implicitOf says which implicit rule a counter of a direction counts.
func implicitOf(counter string, dir policy.Direction) (Implicit, string) {
	for _, what := range []Implicit{ImplicitEstablished, ImplicitInvalid, ImplicitLoopback, ImplicitICMPv6ND, ImplicitICMPErrors} {
		if counter == implicitName(string(what), dir) {
			return what, ""
		}
	}
	if counter == nameFailsafe {
		return ImplicitFailsafe, ""
	}
	if tunnel, ok := strings.CutPrefix(counter, TunnelCounter("")); ok {
		return ImplicitTunnel, tunnel
	}
	return "", ""
}

// limitsOf reads a rule's limit chain back into the policy's limits: a
// rate over the rule's packets or per source, a connection count over
// its new connections or per source. Each family's meter holds the same
// limit. The rules that count in the limited counter hold the limits; in
// audit mode the rule's own counting follows them, with the log's rate.
func limitsOf(lc *Chain, limited string) (*policy.Limit, *policy.ConnLimit) {
	var l *policy.Limit
	var cl *policy.ConnLimit
	for _, r := range lc.Rules {
		if r.Counter != limited {
			continue
		}
		if r.Limit != nil {
			l = &policy.Limit{Rate: r.Limit.Rate, Per: r.Limit.Per, Burst: r.Limit.Burst}
		}
		for _, m := range r.Matches {
			switch m := m.(type) {
			case MeterMatch:
				if m.Limit != nil {
					l = &policy.Limit{Rate: m.Limit.Rate, Per: m.Limit.Per, Burst: m.Limit.Burst, PerSource: true}
				} else {
					cl = &policy.ConnLimit{Max: m.ConnMax, PerSource: true}
				}
			case ConnCountMatch:
				cl = &policy.ConnLimit{Max: m.Max}
			}
		}
	}
	return l, cl
}

// altGather sums up the alternatives of one counter. Each alternative
// matches at most one source, one destination and one service (a
// policy rule compiles into the product of its from, to and ports, per
// family), so the rule is the product of the distinct ones gathered, as
// the policy wrote it; "any" is what an alternative without such a match
// stands for, in the families it may match.
type altGather struct {
	fams       [2]bool // IPv4, IPv6: some alternative matches it
	anySrc     [2]bool // some alternative of the family has no source match
	anyDst     [2]bool
	anyService bool
	src, dst   []Endpoint
	svc        []Service
	states     []string
}

func (g *altGather) add(rs *Ruleset, ms []Match) {
	fams := exposureFamilies(ms)
	var src, dst []Endpoint
	var svc []Service
	for _, m := range ms {
		switch m := m.(type) {
		case AddrMatch:
			if m.Dst {
				dst = addrEndpoints(rs, m)
			} else {
				src = addrEndpoints(rs, m)
			}
		case IfaceMatch:
			if m.Out {
				dst = []Endpoint{{Interface: m.Name}}
			} else {
				src = []Endpoint{{Interface: m.Name}}
			}
		case L4Match:
			svc = append(svc, l4Services(m)...)
		case ICMPTypeMatch:
			svc = append(svc, icmpService(m))
		case CtStateMatch:
			g.states = appendNew(g.states, m.States...)
		}
	}
	for _, v6 := range fams {
		i := famIndex(v6)
		g.fams[i] = true
		g.anySrc[i] = g.anySrc[i] || src == nil
		g.anyDst[i] = g.anyDst[i] || dst == nil
	}
	for _, ep := range src {
		g.src = appendEndpoint(g.src, ep)
	}
	for _, ep := range dst {
		g.dst = appendEndpoint(g.dst, ep)
	}
	g.anyService = g.anyService || len(svc) == 0
	for _, s := range svc {
		if !slices.ContainsFunc(g.svc, s.equal) {
			g.svc = append(g.svc, s)
		}
	}
}

func famIndex(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

// exposureFamilies are the families an alternative may match: an ICMP
// type match restricts it too.
func exposureFamilies(ms []Match) []bool {
	for _, m := range ms {
		if t, ok := m.(ICMPTypeMatch); ok {
			return []bool{t.V6}
		}
	}
	return matchFamilies(ms)
}

func (g *altGather) family() policy.Family {
	switch {
	case g.fams[0] && !g.fams[1]:
		return policy.IPv4
	case g.fams[1] && !g.fams[0]:
		return policy.IPv6
	}
	return policy.Any
}

// services are the services gathered, in protocol number order as nft
// lists protocols: the kernel keeps no order of the protocols of one
// rule once its port rules are dispatched by protocol (see dispatch.go).
func (g *altGather) services() []Service {
	if g.anyService {
		return nil
	}
	slices.SortStableFunc(g.svc, func(a, b Service) int {
		return int(protoNumber(a.Protocol)) - int(protoNumber(b.Protocol))
	})
	return g.svc
}

// endpoints are the sources (or destinations): none when every family
// the rule matches has an alternative without one (any address); else
// the whole family's prefix for each family that has, then the others.
func (g *altGather) endpoints(dst bool) []Endpoint {
	anyOf, eps := g.anySrc, g.src
	if dst {
		anyOf, eps = g.anyDst, g.dst
	}
	if (anyOf[0] || !g.fams[0]) && (anyOf[1] || !g.fams[1]) {
		return nil
	}
	var out []Endpoint
	for i, v6 := range []bool{false, true} {
		if anyOf[i] {
			whole := wholeFamily(v6)
			out = append(out, Endpoint{Prefix: netip.PrefixFrom(whole.From, 0)})
		}
	}
	for _, ep := range eps {
		out = appendEndpoint(out, ep)
	}
	return out
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		if !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

func l4Services(m L4Match) []Service {
	if len(m.Ports) > 0 {
		return []Service{{Protocol: m.Protos[0], Ports: m.Ports}}
	}
	out := make([]Service, len(m.Protos))
	for i, p := range m.Protos {
		out[i] = Service{Protocol: p}
	}
	return out
}

func icmpService(m ICMPTypeMatch) Service {
	s := Service{Protocol: policy.ICMP}
	if m.V6 {
		s.Protocol = policy.ICMPv6
	}
	for _, t := range m.Types {
		s.ICMPTypes = append(s.ICMPTypes, ICMPTypeName(m.V6, t))
	}
	return s
}

func (s Service) equal(o Service) bool {
	return s.Protocol == o.Protocol && slices.Equal(s.Ports, o.Ports) && slices.Equal(s.ICMPTypes, o.ICMPTypes)
}
