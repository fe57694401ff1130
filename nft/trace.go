package nft

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/edgefw/edgefw/policy"
)

// CtState is a packet's connection tracking state, as `ct state` sees it.
type CtState string

// Conntrack states a traced packet may have.
const (
	CtNew         CtState = "new"
	CtEstablished CtState = "established"
	CtRelated     CtState = "related"
	CtInvalid     CtState = "invalid"
)

// CtStates lists the states a traced packet may have.
var CtStates = []CtState{CtNew, CtEstablished, CtRelated, CtInvalid}

// Packet is one packet at one hook of table inet edgefw, as Trace
// evaluates it. Its fields are the ones the rules edgefw emits look at.
type Packet struct {
	// Direction is the hook, and so the base chain, the packet traverses.
	Direction policy.Direction `json:"direction"`
	Protocol  policy.Protocol  `json:"protocol"`
	Src       netip.Addr       `json:"src"`
	Dst       netip.Addr       `json:"dst"`
	// DstPort is the destination port of tcp, udp and sctp.
	DstPort uint16 `json:"dstPort,omitempty"`
	// ICMPType is the message type of icmp and icmpv6 (8 and 128 are the
	// echo requests).
	ICMPType uint8 `json:"icmpType"`
	// Iif and Oif are the input and output interface names; "" is unknown
	// (no interface match matches it), except that a packet from or to a
	// loopback address is taken to use lo, as only lo carries those.
	Iif string `json:"iif,omitempty"`
	Oif string `json:"oif,omitempty"`
	// State is the conntrack state; "" is new. A new TCP packet is taken
	// to be a SYN.
	State CtState `json:"state"`
}

// V6 reports whether the packet is IPv6.
func (p Packet) V6() bool { return p.Src.Is6() }

// traceIfnameMax is the longest interface name Linux takes (IFNAMSIZ - 1).
const traceIfnameMax = 15

// Validate says what makes the packet one that cannot exist, naming the
// field and what would be valid.
func (p Packet) Validate() error {
	var errs []error
	if !slices.Contains(policy.Directions, p.Direction) {
		errs = append(errs, fmt.Errorf("direction %q: use input, output or forward", p.Direction))
	}
	knownProto := true
	switch p.Protocol {
	case policy.TCP, policy.UDP, policy.SCTP, policy.ICMP, policy.ICMPv6:
	default:
		knownProto = false
		errs = append(errs, fmt.Errorf("protocol %q: use tcp, udp, sctp, icmp or icmpv6", p.Protocol))
	}
	errs = append(errs, traceValidateAddr("source", p.Src), traceValidateAddr("destination", p.Dst))
	if p.Src.IsValid() && p.Dst.IsValid() && p.Src.Is4() != p.Dst.Is4() {
		errs = append(errs, fmt.Errorf("source %s and destination %s: both must be IPv4 or both IPv6", p.Src, p.Dst))
	}
	if p.Src.IsValid() {
		switch {
		case p.Protocol == policy.ICMP && p.V6():
			errs = append(errs, errors.New("protocol icmp is IPv4's: use icmpv6 with IPv6 addresses"))
		case p.Protocol == policy.ICMPv6 && !p.V6():
			errs = append(errs, errors.New("protocol icmpv6 is IPv6's: use icmp with IPv4 addresses"))
		}
	}
	switch {
	case !knownProto:
	case p.Protocol.HasPorts() && p.DstPort == 0:
		errs = append(errs, fmt.Errorf("protocol %s needs a destination port from 1 to 65535 (DST:PORT)", p.Protocol))
	case !p.Protocol.HasPorts() && p.DstPort != 0:
		errs = append(errs, fmt.Errorf("protocol %s has no ports: give the destination without :PORT", p.Protocol))
	}
	switch {
	case p.Direction == policy.Output && p.Iif != "":
		errs = append(errs, fmt.Errorf("input interface %q: output packets, sent by the host, have none; use the output interface", p.Iif))
	case p.Direction == policy.Input && p.Oif != "":
		errs = append(errs, fmt.Errorf("output interface %q: input packets, for the host, have none; use the input interface", p.Oif))
	}
	for _, ifc := range []struct{ what, name string }{{"input interface", p.Iif}, {"output interface", p.Oif}} {
		if len(ifc.name) > traceIfnameMax || strings.ContainsAny(ifc.name, "/ \t\n*") {
			errs = append(errs, fmt.Errorf("%s %q: an interface name has at most %d characters, without spaces, / or *", ifc.what, ifc.name, traceIfnameMax))
		}
	}
	if p.State != "" && !slices.Contains(CtStates, p.State) {
		errs = append(errs, fmt.Errorf("state %q: use new, established, related or invalid", p.State))
	}
	return errors.Join(errs...)
}

func traceValidateAddr(what string, a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("%s address missing", what)
	case a.Zone() != "":
		return fmt.Errorf("%s address %s: no zone (%%%s) please, the rules do not match on it", what, a, a.Zone())
	case a.Is4In6():
		return fmt.Errorf("%s address %s is an IPv4-mapped IPv6 address: write %s for IPv4", what, a, a.Unmap())
	}
	return nil
}

// String renders the packet for people: "tcp 198.51.100.7 → 192.0.2.1:22
// (input, new)".
func (p Packet) String() string {
	dst := p.Dst.String()
	switch {
	case p.Protocol.HasPorts():
		dst = net.JoinHostPort(dst, fmt.Sprint(p.DstPort))
	case p.Protocol == policy.ICMP || p.Protocol == policy.ICMPv6:
		dst += " " + ICMPTypeName(p.Protocol == policy.ICMPv6, p.ICMPType)
	}
	ctx := []string{string(p.Direction)}
	if p.Iif != "" {
		ctx = append(ctx, "in "+p.Iif)
	}
	if p.Oif != "" {
		ctx = append(ctx, "out "+p.Oif)
	}
	ctx = append(ctx, string(p.state()))
	return fmt.Sprintf("%s %s → %s (%s)", p.Protocol, p.Src, dst, strings.Join(ctx, ", "))
}

func (p Packet) state() CtState {
	if p.State == "" {
		return CtNew
	}
	return p.State
}

// Verdict is what table inet edgefw does with a packet and why.
type Verdict struct {
	Packet Packet        `json:"packet"`
	Action policy.Action `json:"action"`
	// RejectWith is a reject's answer: "tcp reset", "icmp
	// port-unreachable" or "icmpv6 port-unreachable".
	RejectWith string `json:"rejectWith,omitempty"`
	// Counter is the named counter the packet counts in, as `nft list
	// counters` names it; "" only when a base chain's policy decides
	// because no counted rule matched, which a compiled ruleset never lets
	// happen.
	Counter string `json:"counter"`
	// Kind is KindUser, KindImplicit or KindDefault.
	Kind string `json:"kind"`
	// Rule is the policy rule the deciding kernel rule came from; "" for
	// implicit rules and default policies.
	Rule string `json:"rule,omitempty"`
	// Description says what an implicit rule or default policy is for.
	Description string `json:"description"`
	// Chain and Position (from 1) locate the deciding kernel rule; Nft is
	// its text. Position is 0 when the chain's policy decides.
	Chain    string `json:"chain"`
	Position int    `json:"position"`
	Nft      string `json:"nft,omitempty"`
	// Matched says what of the packet the deciding rule matched.
	Matched []string `json:"matched"`
	// Logged is true when the deciding rule logs to the daemon (nflog),
	// which it does up to its log rate; beyond it an unlogged copy of the
	// rule decides the same, in the same counter.
	Logged bool `json:"logged"`
	// Limits are the rate and connection limits the packet went through
	// on the way, which Trace does not simulate: it takes the packet to
	// be within them.
	Limits []TraceLimit `json:"limits,omitempty"`
	// Audited are the rules in audit mode that matched the packet before
	// the deciding rule: each counted (and logged) what it would have
	// done, and let the packet go on.
	Audited []TraceAudit `json:"audited,omitempty"`
	// Passed are the kernel rules before the deciding one that did not
	// decide, with why.
	Passed []TraceStep `json:"passed"`
	// Notes are what Trace assumed and what the packet's unknowns hide.
	Notes []string `json:"notes,omitempty"`
	// Explanation is the verdict in one sentence.
	Explanation string `json:"explanation"`
}

// TraceStep is one kernel rule a packet went past.
type TraceStep struct {
	Chain    string `json:"chain"`
	Position int    `json:"position"`
	// Owner is the counter the rule belongs to (its policy rule or
	// implicit rule).
	Owner string `json:"owner"`
	Nft   string `json:"nft"`
	// Result is "no match", "jump" (to a limit or audit chain, and
	// back), "statement" (matched, acted, went on) or "return" (matched,
	// counted, back to the rule after the jump: an audit-mode rule).
	Result string `json:"result"`
	Reason string `json:"reason"`
}

// Results of a TraceStep.
const (
	TraceNoMatch   = "no match"
	TraceJump      = "jump"
	TraceStatement = "statement"
	TraceReturn    = "return"
)

// TraceLimit is a limit a packet is subject to.
type TraceLimit struct {
	// Rule is the policy rule whose limit it is.
	Rule string `json:"rule"`
	// Counter counts the packets the limit drops.
	Counter string `json:"counter"`
	// Limit is the limit as nft writes it.
	Limit string `json:"limit"`
	// Audit is true for the limit of a rule in audit mode, which counts
	// what is beyond it and lets it go on.
	Audit bool `json:"audit,omitempty"`
}

// String renders the note for people.
func (l TraceLimit) String() string {
	if l.Audit {
		return fmt.Sprintf("rule %s is limited (%s) in audit mode: beyond it the packet would be dropped; it is counted in %s and goes on; trace takes it to be within", l.Rule, l.Limit, l.Counter)
	}
	return fmt.Sprintf("rule %s is limited (%s): beyond it the packet is dropped and counted in %s; trace takes it to be within", l.Rule, l.Limit, l.Counter)
}

// traceMaxJumps bounds nested jumps as the kernel does (NFT_JUMP_STACK_SIZE).
const traceMaxJumps = 16

// Trace evaluates a packet against the ruleset as the kernel evaluates the
// rules edgefw emits: the base chain of the packet's direction, rule by
// rule, into the chains rules jump to and back, to the first verdict or
// the chain's policy. It is pure. Rate and connection limits are not
// simulated: the packet is taken to be within them, and Verdict.Limits
// lists them. p should pass Validate.
func Trace(rs *Ruleset, p Packet) Verdict {
	p.State = p.state()
	t := &tracer{rs: rs, p: p, v: Verdict{Packet: p, Passed: []TraceStep{}}}
	t.inferLoopback()
	var base *Chain
	for _, ch := range rs.Chains {
		if !ch.Regular() && ch.Hook == p.Direction {
			base = ch
			break
		}
	}
	switch {
	case base == nil:
		t.v.Action, t.v.Kind = policy.Accept, KindDefault
		t.v.Description = "table inet edgefw has no " + string(p.Direction) + " chain"
		t.v.Notes = append(t.v.Notes, "the table does not filter this hook: it lets every packet through")
	case !t.walk(base, 0):
		t.v.Action, t.v.Kind, t.v.Chain = base.Policy, KindDefault, base.Name
		t.v.Description = fmt.Sprintf("the %s chain's policy", base.Name)
		t.v.Notes = append(t.v.Notes, "no counted rule matched: the chain's policy decides, uncounted")
	}
	t.v.Explanation = t.explain()
	return t.v
}

type tracer struct {
	rs *Ruleset
	p  Packet
	v  Verdict
}

// inferLoopback fills in lo for a packet from or to a loopback address:
// the kernel drops such packets on any other interface (martians).
func (t *tracer) inferLoopback() {
	loop := t.p.Src.IsLoopback() || t.p.Dst.IsLoopback()
	if !loop {
		return
	}
	if t.p.Iif == "" && t.p.Direction == policy.Input {
		t.p.Iif = "lo"
		t.v.Notes = append(t.v.Notes, "a packet from or to a loopback address comes in on lo")
	}
	if t.p.Oif == "" && t.p.Direction == policy.Output {
		t.p.Oif = "lo"
		t.v.Notes = append(t.v.Notes, "a packet from or to a loopback address goes out on lo")
	}
}

// walk evaluates a chain's rules and reports whether one decided.
func (t *tracer) walk(ch *Chain, depth int) bool {
	for i, r := range ch.Rules {
		step := TraceStep{Chain: ch.Name, Position: i + 1, Owner: r.Owner, Nft: r.String()}
		if r.Dispatch != nil {
			if t.dispatch(ch, i, r, step, depth) {
				return true
			}
			continue
		}
		matched, ok, reason := t.rule(r)
		if !ok {
			step.Result, step.Reason = TraceNoMatch, reason
			t.v.Passed = append(t.v.Passed, step)
			continue
		}
		switch {
		case r.Jump != "":
			step.Result = TraceJump
			target := t.chainNamed(r.Jump)
			if target == nil || depth+1 >= traceMaxJumps {
				step.Reason = "jump to " + r.Jump + ", which does not exist or nests too deep; the kernel refuses such a ruleset"
				t.v.Passed = append(t.v.Passed, step)
				continue
			}
			if r.Goto {
				step.Reason = "goto " + r.Jump + "; back to the chain this one was jumped to from when no rule there decides"
			} else {
				step.Reason = "to " + r.Jump + "; back when no rule there decides"
			}
			t.v.Passed = append(t.v.Passed, step)
			if t.walk(target, depth+1) {
				return true
			}
			if r.Goto {
				return false
			}
		case r.Verdict == VerdictReturn:
			step.Result, step.Reason = TraceReturn, t.returned(ch, i, r, matched)
			t.v.Passed = append(t.v.Passed, step)
			return false
		case r.Verdict == "":
			step.Result, step.Reason = TraceStatement, strings.Join(matched, "; ")
			if r.Stmt != nil {
				step.Reason += ": " + r.Stmt.String()
			}
			t.v.Passed = append(t.v.Passed, step)
		default:
			t.decide(ch, i, r, matched)
			return true
		}
	}
	return false
}

func (t *tracer) chainNamed(name string) *Chain {
	for _, ch := range t.rs.Chains {
		if ch.Name == name {
			return ch
		}
	}
	return nil
}

func (t *tracer) decide(ch *Chain, i int, r *Rule, matched []string) {
	v := &t.v
	v.Action, v.Counter, v.Chain, v.Position, v.Nft = r.Verdict, r.Counter, ch.Name, i+1, r.String()
	v.Matched = matched
	if v.Matched == nil {
		v.Matched = []string{}
	}
	v.Logged = r.LogPrefix != ""
	if r.Verdict == policy.Reject {
		v.RejectWith = traceRejectAnswer(r.reject(), t.p.V6())
	}
	info, ok := t.rs.Rule(r.Counter)
	switch {
	case !ok:
		v.Kind, v.Description = KindUser, "rule "+r.Owner
		v.Rule = r.Owner
	case info.Kind == KindLimited:
		v.Kind, v.Rule = KindLimited, info.Rule
		v.Description = "the limit of rule " + info.Rule
	case info.Kind == KindUser:
		v.Kind, v.Rule, v.Description = KindUser, r.Counter, "rule "+r.Counter
	default:
		v.Kind, v.Description = info.Kind, traceDescribe(r.Counter, info)
	}
}

// traceRejectAnswer is what a reject sends back to the packet's sender.
func traceRejectAnswer(k rejectKind, v6 bool) string {
	switch {
	case k == rejectTCPReset:
		return "tcp reset"
	case k == rejectICMPv6 || (k == rejectICMPX && v6):
		return "icmpv6 port-unreachable"
	}
	return "icmp port-unreachable"
}

// traceDescribe says what an implicit rule or default policy is for.
func traceDescribe(counter string, info RuleInfo) string {
	dir := string(info.Direction)
	switch {
	case counter == DefaultCounter(info.Direction):
		return "the " + dir + " default policy"
	case counter == nameFailsafe:
		return "the failsafe (anti-lockout) ports"
	case counter == implicitName("established", info.Direction):
		return "packets of established and related connections"
	case counter == implicitName("invalid", info.Direction):
		return "packets conntrack finds invalid"
	case counter == implicitName("loopback", info.Direction):
		return "loopback traffic"
	case counter == implicitName("icmpv6-nd", info.Direction):
		return "the ICMPv6 neighbour discovery and MLD that IPv6 needs"
	case counter == implicitName("icmp-errors", info.Direction):
		return "ICMP errors (unreachable, time exceeded, parameter problem, packet too big)"
	case strings.HasPrefix(counter, TunnelCounter("")):
		return "the listen port of tunnel " + strings.TrimPrefix(counter, TunnelCounter(""))
	}
	return "implicit rule " + counter
}

// explain renders the verdict in one sentence, e.g. "tcp 198.51.100.7 →
// 192.0.2.1:22 (input, new): accepted by rule ssh-from-mgmt (counter
// ssh-from-mgmt): source in set mgmt-nets; tcp port 22".
func (t *tracer) explain() string {
	v := &t.v
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", t.p, traceActionPast(v.Action))
	if v.RejectWith != "" {
		fmt.Fprintf(&b, " with %s", v.RejectWith)
	}
	switch v.Kind {
	case KindUser:
		fmt.Fprintf(&b, " by rule %s", v.Rule)
	case KindImplicit:
		fmt.Fprintf(&b, " by implicit rule %s, %s", v.Counter, v.Description)
	default:
		fmt.Fprintf(&b, " by %s", v.Description)
	}
	if v.Counter != "" {
		fmt.Fprintf(&b, " (counter %s)", v.Counter)
	}
	why := v.Matched
	switch {
	case len(why) == 0 && v.Kind == KindDefault && len(v.Audited) > 0:
		why = []string{"no enforcing rule matched"}
	case len(why) == 0 && v.Kind == KindDefault:
		why = []string{"no rule matched"}
	}
	if len(why) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(why, "; "))
	}
	for _, a := range v.Audited {
		fmt.Fprintf(&b, "; audit-mode rule %s would have %s it (counter %s)", a.Rule, traceActionPast(a.Action), a.Counter)
	}
	return b.String()
}

func traceActionPast(a policy.Action) string {
	switch a {
	case policy.Accept:
		return "accepted"
	case policy.Drop:
		return "dropped"
	case policy.Reject:
		return "rejected"
	}
	return string(a)
}
