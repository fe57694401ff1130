// Package nft compiles an edgefw policy into a ruleset value for the one
// table edgefw owns (table inet edgefw), renders it as nft text, applies it
// to the kernel in a single netlink transaction and reads its counters.
//
// Compiling is pure: a Ruleset is a plain value that renders identically
// every time, which is what the golden files in testdata pin. Applying is
// the only part that talks to the kernel.
package nft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/edgefw/edgefw/policy"
)

// TableName is the name of the one inet table edgefw owns.
const TableName = "edgefw"

// LogGroup is the nflog group denied packets are logged to. It is far from
// the groups other tools default to (ulogd uses 0 and 1, Suricata 0/2).
const LogGroup uint16 = 4242

// Rule kinds, for status and metrics.
const (
	KindUser     = "user"
	KindImplicit = "implicit"
	KindDefault  = "default"
	KindLimited  = "limited"
)

// Ruleset is the complete desired content of table inet edgefw.
type Ruleset struct {
	// Counters are the named counter objects, in first-use order.
	Counters []string
	// Sets are the named address sets.
	Sets []*AddrSet
	// Meters are the dynamic sets of per-source limits, in first-use order.
	Meters []*Meter
	// Chains are the base chains in rendering order.
	Chains []*Chain
	// Rules describes every counter for status and metrics: which policy
	// rule (or implicit rule) it belongs to, its direction and verdict.
	Rules []RuleInfo
}

// RuleInfo describes one counted rule of the ruleset.
type RuleInfo struct {
	Name      string // counter name: the policy rule's name or a reserved edgefw- name
	Direction policy.Direction
	Action    policy.Action
	Kind      string // KindUser, KindImplicit, KindDefault or KindLimited
	// Rule is the policy rule a KindLimited counter belongs to.
	Rule string
	// Mode is policy.Enforce, or policy.Audit for the counters of a rule
	// in audit mode (its own and its limit's): they count the packets the
	// rule would drop or reject (Action), which go on to the next rule.
	Mode policy.Mode
}

// AddrSet is a named interval set of addresses of one family.
type AddrSet struct {
	Name   string
	V6     bool
	Ranges []AddrRange // merged
}

// Meter is a dynamic set of one family's source addresses that holds, per
// source, the state of one rule's perSource limit (a token bucket) or
// connLimit (a connection count). The kernel adds sources as packets come.
type Meter struct {
	Name string
	V6   bool
	// Size is the most sources the meter holds.
	Size uint32
	// Timeout is how long a source stays after its last update; 0: until
	// the kernel collects it (connection counts, once zero).
	Timeout time.Duration
}

// String renders the meter's set declaration as nft lists it.
func (m *Meter) String() string { return m.text().String() }

func (m *Meter) text() setText {
	s := setText{name: m.Name, typ: addrType(m.V6), size: m.Size, flags: []string{"dynamic"}}
	if m.Timeout > 0 {
		s.flags, s.timeout = append(s.flags, "timeout"), m.Timeout
	}
	return s
}

// nftDuration writes a duration as nft does: 1d2h3m4s.
func nftDuration(d time.Duration) string {
	var b strings.Builder
	for _, u := range []struct {
		unit   time.Duration
		suffix string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.suffix)
			d -= n * u.unit
		}
	}
	return b.String()
}

func addrType(v6 bool) string {
	if v6 {
		return "ipv6_addr"
	}
	return "ipv4_addr"
}

// Chain is a chain of the table: a base chain at a hook, or a regular
// chain that rules jump to.
type Chain struct {
	Name string
	// Hook is the direction of a base chain; empty for a regular chain.
	Hook policy.Direction
	// Policy is a base chain's default verdict, accept or drop; empty for
	// a regular chain, which returns to the rule after the jump.
	Policy policy.Action
	Rules  []*Rule
}

// Regular reports whether the chain is reached only by jumps.
func (c *Chain) Regular() bool { return c.Hook == "" }

// Rule is one kernel rule: matches, then a named counter, an optional log,
// and a verdict.
type Rule struct {
	// Owner is the counter (policy rule or implicit rule) this kernel rule
	// belongs to; one policy rule may compile into several kernel rules.
	Owner   string
	Matches []Match
	Counter string
	// LogPrefix, when not empty, logs matching packets to LogGroup with this
	// prefix (the owner's name).
	LogPrefix string
	// Limit, when set, makes this rule match only packets within (or, with
	// Over, beyond) the rate.
	Limit   *RateLimit
	Verdict policy.Action
	// Jump, instead of a Verdict, names a regular chain the rule jumps to;
	// packets that chain does not decide on come back to the next rule.
	Jump string
	// Goto makes the Jump a goto: packets that chain does not decide on
	// go back to the rule after the jump that led to this rule's chain.
	Goto bool
	// Stmts are extra statements rendered before the counter (MSS clamping).
	Stmt Statement
	// Dispatch, instead of a Verdict or Jump, jumps by destination port
	// to the chain of the rules of that port (see dispatch.go); packets
	// of no key, or that chain does not decide on, go on to the next rule.
	Dispatch *PortDispatch
}

// VerdictReturn is the verdict of a rule in a regular chain that ends
// the chain for the packets it matches: they go back to the rule after
// the jump. Audit-mode rules count with it instead of dropping.
const VerdictReturn policy.Action = "return"

// RateLimit is an nft "limit rate over" match.
type RateLimit struct {
	Over  bool
	Rate  uint64
	Per   string // second, minute, hour, day
	Burst uint32
}

// Statement is a non-terminal statement other than counter and log.
type Statement interface {
	String() string
}

// Match is one condition of a kernel rule.
type Match interface {
	String() string
}

// encodingVersion is part of every rule hash. Bump it whenever exprs.go
// encodes a rule differently while its text stays the same, so that the
// next apply rewrites the rules the kernel holds in the old encoding.
//
// 3: counted rules record their counter's direction and action in their
// user data (udataCounted).
const encodingVersion = "3"

// Hash fingerprints a rule's complete content. It is stored in the kernel
// rule's user data, so comparing the kernel with a desired ruleset needs no
// decoding of expressions.
func (r *Rule) Hash() string {
	sum := sha256.Sum256([]byte(encodingVersion + "\x00" + r.body()))
	return hex.EncodeToString(sum[:8])
}

func (r *Rule) body() string {
	var parts []string
	for _, m := range r.Matches {
		parts = append(parts, m.String())
	}
	if r.Limit != nil {
		parts = append(parts, r.Limit.String())
	}
	if r.Stmt != nil {
		parts = append(parts, r.Stmt.String())
	}
	if r.Dispatch != nil {
		parts = append(parts, r.Dispatch.String())
	}
	if r.Counter != "" {
		parts = append(parts, fmt.Sprintf("counter name %q", r.Counter))
	}
	if r.LogPrefix != "" {
		parts = append(parts, fmt.Sprintf("log prefix %q group %d", r.LogPrefix+" ", LogGroup))
	}
	if v := r.verdictText(); v != "" {
		parts = append(parts, v)
	}
	return strings.Join(parts, " ")
}

// String renders the rule as an nft statement line.
func (r *Rule) String() string { return r.body() }

func (r *Rule) verdictText() string {
	if r.Jump != "" && r.Goto {
		return "goto " + r.Jump
	}
	if r.Jump != "" {
		return "jump " + r.Jump
	}
	if r.Verdict != policy.Reject {
		return string(r.Verdict)
	}
	switch r.reject() {
	case rejectTCPReset:
		return "reject with tcp reset"
	case rejectICMP:
		return "reject with icmp port-unreachable"
	case rejectICMPv6:
		return "reject with icmpv6 port-unreachable"
	}
	return "reject"
}

// rejectKind is how a reject answers.
type rejectKind int

const (
	// rejectICMPX answers with the port unreachable of the packet's family.
	rejectICMPX rejectKind = iota
	rejectTCPReset
	rejectICMP
	rejectICMPv6
)

// reject chooses the answer of a rejecting rule: a reset when it matches
// only TCP, else an ICMP error of its family. A rule of one family says so
// explicitly, as nft does: nft lists the family-independent form only for
// rules that match both families.
func (r *Rule) reject() rejectKind {
	if r.tcpOnly() {
		return rejectTCPReset
	}
	switch r.family() {
	case famV4:
		return rejectICMP
	case famV6:
		return rejectICMPv6
	}
	return rejectICMPX
}

// family is the address family the rule's matches restrict it to.
func (r *Rule) family() family {
	for _, m := range r.Matches {
		switch m := m.(type) {
		case NFProtoMatch:
			return familyOf(m.V6)
		case AddrMatch:
			return familyOf(m.V6)
		}
	}
	return famAny
}

func familyOf(v6 bool) family {
	if v6 {
		return famV6
	}
	return famV4
}

// tcpOnly reports whether the rule matches only TCP, so a reject can answer
// with a reset instead of an ICMP error.
func (r *Rule) tcpOnly() bool {
	for _, m := range r.Matches {
		if p, ok := m.(L4Match); ok && len(p.Protos) == 1 && p.Protos[0] == policy.TCP {
			return true
		}
	}
	return false
}

// String renders it as nft text.
func (l *RateLimit) String() string {
	over := ""
	if l.Over {
		over = "over "
	}
	s := fmt.Sprintf("limit rate %s%d/%s", over, l.Rate, l.Per)
	if l.Burst > 0 {
		s += fmt.Sprintf(" burst %d packets", l.Burst)
	}
	return s
}

// NFProtoMatch restricts a rule to IPv4 or IPv6.
type NFProtoMatch struct{ V6 bool }

// String renders it as nft text.
func (m NFProtoMatch) String() string {
	if m.V6 {
		return "meta nfproto ipv6"
	}
	return "meta nfproto ipv4"
}

// L4Match matches the transport protocol, and ports when Ports is not empty
// (then Protos has exactly one protocol that carries ports).
type L4Match struct {
	Protos []policy.Protocol
	Ports  []PortSpan // destination ports; empty: any
}

// String renders it as nft text.
func (m L4Match) String() string {
	if len(m.Ports) > 0 {
		return fmt.Sprintf("%s dport %s", m.Protos[0], renderPorts(m.Ports))
	}
	names := make([]string, len(m.Protos))
	for i, p := range m.Protos {
		names[i] = l4Name(p)
	}
	if len(names) == 1 {
		return "meta l4proto " + names[0]
	}
	return "meta l4proto { " + strings.Join(names, ", ") + " }"
}

func l4Name(p policy.Protocol) string {
	if p == policy.ICMPv6 {
		return "ipv6-icmp"
	}
	return string(p)
}

func renderPorts(ps []PortSpan) string {
	items := make([]string, len(ps))
	for i, p := range ps {
		if p.From == p.To {
			items[i] = fmt.Sprint(p.From)
		} else {
			items[i] = fmt.Sprintf("%d-%d", p.From, p.To)
		}
	}
	if len(items) == 1 {
		return items[0]
	}
	return "{ " + strings.Join(items, ", ") + " }"
}

// IfaceMatch matches the input or output interface name; a trailing * is a
// prefix wildcard as in nft.
type IfaceMatch struct {
	Out  bool
	Name string
}

// String renders it as nft text.
func (m IfaceMatch) String() string {
	if m.Out {
		return fmt.Sprintf("oifname %q", m.Name)
	}
	return fmt.Sprintf("iifname %q", m.Name)
}

// AddrMatch matches the source or destination address against a named set
// or an anonymous interval set.
type AddrMatch struct {
	Dst    bool
	V6     bool
	Set    string      // named set, or
	Ranges []AddrRange // anonymous set contents
}

// String renders it as nft text.
func (m AddrMatch) String() string {
	field := "ip saddr"
	switch {
	case m.V6 && m.Dst:
		field = "ip6 daddr"
	case m.V6:
		field = "ip6 saddr"
	case m.Dst:
		field = "ip daddr"
	}
	if m.Set != "" {
		return field + " @" + m.Set
	}
	return field + " " + renderRanges(m.Ranges, true)
}

// renderRanges lists ranges as nft writes them. With braces, a single range
// stands alone, as nft lists it: the kernel holds it as a comparison, not a
// set (see matchExprs).
func renderRanges(rs []AddrRange, braces bool) string {
	var items []string
	for _, r := range rs {
		items = append(items, renderRange(r))
	}
	if braces && len(items) == 1 {
		return items[0]
	}
	if braces {
		return "{ " + strings.Join(items, ", ") + " }"
	}
	return strings.Join(items, ", ")
}

// renderElements lists a named set's elements the way nft does: IPv4
// addresses two to a line, IPv6 addresses one to a line (nft's
// calculate_delim in src/expression.c), so that `nft list` and the
// rendered ruleset read the same.
func renderElements(s *AddrSet) string {
	const newline = ",\n\t\t\t     "
	perLine := 2
	if s.V6 {
		perLine = 1
	}
	var b strings.Builder
	for i, r := range s.Ranges {
		if i > 0 {
			if i%perLine == 0 {
				b.WriteString(newline)
			} else {
				b.WriteString(", ")
			}
		}
		b.WriteString(renderRange(r))
	}
	return b.String()
}

func renderRange(r AddrRange) string {
	if ps := rangePrefixes(r); len(ps) == 1 {
		if ps[0].IsSingleIP() {
			return ps[0].Addr().String()
		}
		return ps[0].String()
	}
	return r.From.String() + "-" + r.To.String()
}

// MeterMatch matches when the packet's source address is over its own
// limit, kept in a meter: a rate (Limit, with Over set) or a number of
// connections (ConnMax).
type MeterMatch struct {
	Set     string // the meter
	V6      bool
	Limit   *RateLimit
	ConnMax uint32
}

// String renders it as nft text.
func (m MeterMatch) String() string {
	field := "ip saddr"
	if m.V6 {
		field = "ip6 saddr"
	}
	if m.Limit != nil {
		return fmt.Sprintf("update @%s { %s %s }", m.Set, field, m.Limit)
	}
	return fmt.Sprintf("add @%s { %s ct count over %d }", m.Set, field, m.ConnMax)
}

// ICMPTypeMatch matches ICMP (V6 false) or ICMPv6 message types.
type ICMPTypeMatch struct {
	V6    bool
	Types []uint8
}

// Names of the ICMP types used by implicit rules, as nft spells them.
var icmpTypeNames = map[uint8]string{
	3: "destination-unreachable", 11: "time-exceeded", 12: "parameter-problem",
}

var icmpv6TypeNames = map[uint8]string{
	1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
	130: "mld-listener-query", 131: "mld-listener-report", 132: "mld-listener-done", 143: "mld2-listener-report",
	133: "nd-router-solicit", 134: "nd-router-advert", 135: "nd-neighbor-solicit", 136: "nd-neighbor-advert",
}

// String renders it as nft text.
func (m ICMPTypeMatch) String() string {
	names, kw := icmpTypeNames, "icmp type"
	if m.V6 {
		names, kw = icmpv6TypeNames, "icmpv6 type"
	}
	items := make([]string, len(m.Types))
	for i, t := range m.Types {
		items[i] = names[t]
	}
	return kw + " { " + strings.Join(items, ", ") + " }"
}

// CtStateMatch matches connection tracking states.
type CtStateMatch struct{ States []string }

// String renders it as nft text.
func (m CtStateMatch) String() string { return "ct state " + strings.Join(m.States, ",") }

// MSSClampStmt clamps the MSS option of TCP SYNs and SYN-ACKs to the route's
// MTU, so tunnels with a smaller MTU do not black-hole large segments.
type MSSClampStmt struct{}

// String renders it as nft text.
func (MSSClampStmt) String() string { return "tcp option maxseg size set rt mtu" }

// TCPSynMatch matches TCP segments with SYN set. It implies meta l4proto
// tcp, which nft neither needs written nor lists.
type TCPSynMatch struct{}

// String renders it as nft text.
func (TCPSynMatch) String() string { return "tcp flags syn" }

// String renders the ruleset as nft text that `nft -f` loads.
func (rs *Ruleset) String() string { return rs.text().String() }

func (rs *Ruleset) text() *tableText {
	t := &tableText{counters: rs.Counters}
	for _, s := range rs.Sets {
		t.sets = append(t.sets, setText{name: s.Name, typ: addrType(s.V6), flags: []string{"interval"}, elements: renderElements(s)})
	}
	for _, m := range rs.Meters {
		t.sets = append(t.sets, m.text())
	}
	for _, c := range rs.Chains {
		ct := chainText{name: c.Name}
		if !c.Regular() {
			ct.header = baseChainHeader("filter", string(c.Hook), "filter", string(c.Policy))
		}
		for _, r := range c.Rules {
			ct.rules = append(ct.rules, r.String())
		}
		t.chains = append(t.chains, ct)
	}
	return t
}

// Set returns the named set, or nil.
func (rs *Ruleset) Set(name string) *AddrSet {
	for _, s := range rs.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Rule returns the description of a counter, or false.
func (rs *Ruleset) Rule(counter string) (RuleInfo, bool) {
	for _, r := range rs.Rules {
		if r.Name == counter {
			return r, true
		}
	}
	return RuleInfo{}, false
}
