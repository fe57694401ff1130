package nft

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edgefw/edgefw/policy"
)

// randomPolicy makes a valid policy of n rules over a small space of
// ports, addresses and interfaces, so that ports and ranges overlap,
// runs of port rules are cut by rules without ports, and packets drawn
// from the same space hit every kind of rule.
func randomPolicy(r *rand.Rand, n int) *policy.Policy {
	p := &policy.Policy{Version: 1,
		Defaults: policy.Defaults{Input: policy.Drop, Forward: policy.Accept, Output: policy.Accept},
		Failsafe: []policy.PortRange{{Protocol: policy.TCP, Port: 22, EndPort: 22}},
		Sets: []policy.Set{
			{Name: "mgmt", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/48")}},
			{Name: "bad", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("192.0.2.0/24")}},
		},
	}
	for i := 0; i < n; {
		p.Rules = append(p.Rules, randomRule(r, fmt.Sprintf("r%d", i)))
		if policy.Validate(p) != nil {
			// e.g. icmp from IPv6 addresses, or an input interface in
			// an output rule: draw again.
			p.Rules = p.Rules[:i]
			continue
		}
		i++
	}
	return p
}

func randomRule(r *rand.Rand, name string) policy.Rule {
	pick := func(n int) int { return r.IntN(n) }
	{
		rule := policy.Rule{Name: name, Direction: policy.Input}
		if pick(8) == 0 {
			rule.Direction = policy.Output
		}
		switch pick(16) {
		case 0: // no ports: ends a run
		case 1:
			rule.Ports = []policy.PortRange{{Protocol: policy.ICMP}}
		case 2:
			rule.Ports = []policy.PortRange{{Protocol: policy.UDP}}
		default:
			for range 1 + pick(3) {
				proto := []policy.Protocol{policy.TCP, policy.TCP, policy.UDP, policy.SCTP}[pick(4)]
				from := uint16(1 + pick(60))
				to := from
				if pick(3) == 0 {
					to = from + uint16(pick(15))
				}
				rule.Ports = append(rule.Ports, policy.PortRange{Protocol: proto, Port: from, EndPort: to})
			}
		}
		switch pick(6) {
		case 0:
			rule.From = []policy.Peer{{Set: "mgmt"}}
		case 1:
			rule.From = []policy.Peer{{CIDR: netip.MustParsePrefix("10.0.0.0/8"), Except: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}}
		case 2:
			rule.From = []policy.Peer{{Interface: "wg0"}, {Set: "bad"}}
		case 3:
			rule.From = []policy.Peer{{CIDR: netip.MustParsePrefix("fd00::/16")}}
		}
		rule.Action = []policy.Action{policy.Accept, policy.Accept, policy.Drop, policy.Reject}[pick(4)]
		rule.Log = pick(4) == 0
		if rule.Action != policy.Accept && pick(4) == 0 {
			rule.Mode = policy.Audit
		}
		switch pick(8) {
		case 0:
			rule.Limit = &policy.Limit{Rate: 10, Per: "second", PerSource: pick(2) == 0}
		case 1:
			rule.ConnLimit = &policy.ConnLimit{Max: 5, PerSource: pick(2) == 0}
		}
		return rule
	}
}

// randomPacket draws a packet from the space randomPolicy uses.
func randomPacket(r *rand.Rand) Packet {
	srcs := []string{"10.1.2.3", "10.9.1.1", "10.200.0.1", "192.0.2.7", "198.51.100.1", "fd00:1::5", "fd00:2::1", "2001:db8::1"}
	src := netip.MustParseAddr(srcs[r.IntN(len(srcs))])
	dst := netip.MustParseAddr("10.250.0.1")
	if src.Is6() {
		dst = netip.MustParseAddr("fd00:ff::1")
	}
	p := Packet{Direction: policy.Input, Src: src, Dst: dst}
	if r.IntN(8) == 0 {
		p.Direction = policy.Output
	}
	switch r.IntN(10) {
	case 0:
		p.Protocol, p.ICMPType = policy.ICMP, ICMPEchoRequest
		if src.Is6() {
			p.Protocol, p.ICMPType = policy.ICMPv6, ICMPv6EchoRequest
		}
	case 1, 2:
		p.Protocol = policy.UDP
	case 3:
		p.Protocol = policy.SCTP
	default:
		p.Protocol = policy.TCP
	}
	if p.Protocol.HasPorts() {
		p.DstPort = uint16(1 + r.IntN(80))
	}
	if p.Direction == policy.Input {
		p.Iif = []string{"", "wg0", "eth0"}[r.IntN(3)]
	} else {
		p.Oif = []string{"", "eth0"}[r.IntN(2)]
	}
	return p
}

// decision is what a trace decides, apart from where in the chains.
type decision struct {
	Action     policy.Action
	RejectWith string
	Counter    string
	Kind, Rule string
	Logged     bool
	Limits     []TraceLimit
	Audited    []string
	Notes      []string
}

func decisionOf(v Verdict) decision {
	o := decision{Action: v.Action, RejectWith: v.RejectWith, Counter: v.Counter, Kind: v.Kind, Rule: v.Rule,
		Logged: v.Logged, Limits: v.Limits, Notes: v.Notes}
	for _, a := range v.Audited {
		o.Audited = append(o.Audited, a.Counter+" "+string(a.Action))
	}
	return o
}

// checkSameMeaning compares a policy compiled with dispatch with its
// linear layout: the same counters, the same exposure, and the same
// verdict, counter and audits for every packet.
func checkSameMeaning(t *testing.T, name string, p *policy.Policy, packets []Packet) {
	t.Helper()
	linear, err := compile(p, compileOptions{linear: true})
	if err != nil {
		t.Fatalf("%s: compile linear: %v", name, err)
	}
	dispatched, err := compile(p, compileOptions{})
	if err != nil {
		t.Fatalf("%s: compile: %v", name, err)
	}
	if err := dispatched.validate(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if d := cmp.Diff(linear.Rules, dispatched.Rules); d != "" {
		t.Errorf("%s: counters differ (-linear +dispatched):\n%s", name, d)
	}
	if d := cmp.Diff(linear.Exposure(), dispatched.Exposure(), cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})); d != "" {
		t.Errorf("%s: exposure differs (-linear +dispatched):\n%s", name, d)
	}
	for _, pk := range packets {
		want, got := decisionOf(Trace(linear, pk)), decisionOf(Trace(dispatched, pk))
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: %s: (-linear +dispatched):\n%s", name, pk, d)
		}
	}
}

func TestDispatchRandomPoliciesMeanTheSame(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 1))
	dispatchedAny, directAny := 0, 0
	const policies = 120
	for i := range policies {
		p := randomPolicy(r, 8+r.IntN(30))
		if err := policy.Validate(p); err != nil {
			t.Fatalf("policy %d is invalid: %v", i, err)
		}
		var packets []Packet
		for range 200 {
			packets = append(packets, randomPacket(r))
		}
		checkSameMeaning(t, fmt.Sprintf("policy %d", i), p, packets)
		rs, _ := Compile(p)
		if hasDispatch(rs, false) {
			dispatchedAny++
		}
		if hasDispatch(rs, true) {
			directAny++
		}
		if t.Failed() {
			return
		}
	}
	if dispatchedAny < policies/2 {
		t.Errorf("only %d of %d random policies were dispatched: the test does not exercise dispatch", dispatchedAny, policies)
	}
	if directAny < policies/4 {
		t.Errorf("only %d of %d random policies have a direct map: the test does not exercise them", directAny, policies)
	}
}

// hasDispatch reports whether rs dispatches by port; with onlyDirect,
// whether it has a direct map.
func hasDispatch(rs *Ruleset, onlyDirect bool) bool {
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			if r.Dispatch != nil && (r.Dispatch.Direct || !onlyDirect) {
				return true
			}
		}
	}
	return false
}

// TestDispatchGoldensMeanTheSame checks every golden policy, dispatched
// or not, against its linear layout.
func TestDispatchGoldensMeanTheSame(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden policies: %v", err)
	}
	r := rand.New(rand.NewPCG(13, 2))
	var packets []Packet
	for range 2000 {
		packets = append(packets, randomPacket(r))
	}
	for _, f := range files {
		p, err := policy.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		checkSameMeaning(t, filepath.Base(f), p, packets)
	}
}

func TestDisjointIntervals(t *testing.T) {
	spans := [][]PortSpan{
		{{80, 80}, {443, 443}, {8000, 8100}},
		{{8080, 8200}},
		{{1, 65535}},
		{{8101, 8101}},
	}
	got := disjointIntervals(len(spans), func(i int) []PortSpan { return spans[i] })
	want := []interval{
		{PortSpan{1, 79}, []int{2}},
		{PortSpan{80, 80}, []int{0, 2}},
		{PortSpan{81, 442}, []int{2}},
		{PortSpan{443, 443}, []int{0, 2}},
		{PortSpan{444, 7999}, []int{2}},
		{PortSpan{8000, 8079}, []int{0, 2}},
		{PortSpan{8080, 8100}, []int{0, 1, 2}},
		{PortSpan{8101, 8101}, []int{1, 2, 3}},
		{PortSpan{8102, 8200}, []int{1, 2}},
		{PortSpan{8201, 65535}, []int{2}},
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(interval{})); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestTraceFollowsDispatch: a packet to a dispatched port is decided by
// its rule, in the chain of its port, reached through the map.
func TestTraceFollowsDispatch(t *testing.T) {
	rs := compileFile(t, "testdata/golden/dispatch.yaml")
	v := Trace(rs, tracePacket(t, "input tcp 10.10.0.5 10.0.0.1 6443"))
	if v.Rule != "api" || v.Chain != "edgefw-dispatch-ssh-mgmt-tcp-6443" || v.Position != 2 || len(v.Limits) == 0 {
		t.Fatalf("decided by %s at %s:%d, want api at edgefw-dispatch-ssh-mgmt-tcp-6443:2 after its limits\n%s", v.Rule, v.Chain, v.Position, v.Explanation)
	}
	if !slices.ContainsFunc(v.Passed, func(s TraceStep) bool {
		return s.Chain == "input" && s.Result == TraceJump && strings.Contains(s.Reason, "to edgefw-dispatch-ssh-mgmt-tcp-6443")
	}) {
		t.Errorf("no jump through the input chain's map in %+v", v.Passed)
	}
	v = Trace(rs, tracePacket(t, "input tcp 198.51.100.1 10.0.0.1 9100"))
	if v.Rule != "metrics-deny" || v.Chain != "input" {
		t.Errorf("port 9100 decided by %s in %s, want metrics-deny inline in input", v.Rule, v.Chain)
	}
	v = Trace(rs, tracePacket(t, "input tcp 198.51.100.1 10.0.0.1 2222"))
	if v.Kind != KindDefault || len(v.Audited) != 1 || v.Audited[0].Rule != "ssh-audit" {
		t.Errorf("port 2222: %s, want the default policy after ssh-audit's audit", v.Explanation)
	}
}
