package nft

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/policy"
)

// tracePacket reads a packet written as "DIRECTION PROTO SRC DST [PORT]
// [iif=IF] [oif=IF] [state=STATE] [type=ICMPTYPE]"; icmp types default to
// the echo request.
func tracePacket(t *testing.T, s string) Packet {
	t.Helper()
	f := strings.Fields(s)
	if len(f) < 4 {
		t.Fatalf("packet %q: want DIRECTION PROTO SRC DST [PORT] [key=value…]", s)
	}
	p := Packet{Direction: policy.Direction(f[0]), Protocol: policy.Protocol(f[1]),
		Src: netip.MustParseAddr(f[2]), Dst: netip.MustParseAddr(f[3])}
	switch p.Protocol {
	case policy.ICMP:
		p.ICMPType = ICMPEchoRequest
	case policy.ICMPv6:
		p.ICMPType = ICMPv6EchoRequest
	}
	for _, kv := range f[4:] {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			port, err := strconv.ParseUint(kv, 10, 16)
			if err != nil {
				t.Fatalf("packet %q: port %q: %v", s, kv, err)
			}
			p.DstPort = uint16(port)
		case k == "iif":
			p.Iif = v
		case k == "oif":
			p.Oif = v
		case k == "state":
			p.State = CtState(v)
		case k == "type":
			typ, err := ParseICMPType(p.Protocol == policy.ICMPv6, v)
			if err != nil {
				t.Fatal(err)
			}
			p.ICMPType = typ
		default:
			t.Fatalf("packet %q: unknown %q", s, kv)
		}
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("packet %q is invalid: %v", s, err)
	}
	return p
}

// traceOutcome is what a case checks of a Verdict.
type traceOutcome struct {
	Counter, Kind, Rule string
	Action              policy.Action
	RejectWith          string
	Logged              bool
	Limits              int
}

func outcomeOf(v Verdict) traceOutcome {
	return traceOutcome{Counter: v.Counter, Kind: v.Kind, Rule: v.Rule, Action: v.Action,
		RejectWith: v.RejectWith, Logged: v.Logged, Limits: len(v.Limits)}
}

// Shorthands for expected outcomes.
func user(rule string, action policy.Action) traceOutcome {
	return traceOutcome{Counter: rule, Kind: KindUser, Rule: rule, Action: action}
}

func implicit(counter string, action policy.Action) traceOutcome {
	return traceOutcome{Counter: counter, Kind: KindImplicit, Action: action}
}

func byDefault(dir policy.Direction, action policy.Action) traceOutcome {
	return traceOutcome{Counter: DefaultCounter(dir), Kind: KindDefault, Action: action, Logged: action == policy.Drop}
}

func (o traceOutcome) rejectWith(answer string) traceOutcome { o.RejectWith = answer; return o }
func (o traceOutcome) logged() traceOutcome                  { o.Logged = true; return o }
func (o traceOutcome) limits(n int) traceOutcome             { o.Limits = n; return o }

const (
	accept = policy.Accept
	drop   = policy.Drop
	reject = policy.Reject
	input  = policy.Input
	output = policy.Output
	fwd    = policy.Forward
)

// TestTrace traces packets through the golden policies: every kind of
// match, both families, except, interfaces, sets, implicit rules,
// defaults, reject and limits.
func TestTrace(t *testing.T) {
	tests := []struct {
		policy string // testdata/golden/NAME.yaml
		packet string // see tracePacket
		want   traceOutcome
		// note, when set, is a substring of one of the verdict's notes.
		note string
	}{
		// Implicit rules, in the order the chain holds them.
		{"spec-example-full", "input tcp 198.51.100.7 192.0.2.1 22 state=established", implicit("edgefw-established-input", accept), ""},
		{"spec-example-full", "input udp 2001:db8::7 2001:db8::1 53 state=related", implicit("edgefw-established-input", accept), ""},
		{"spec-example-full", "input tcp 10.10.1.2 192.0.2.1 22 state=invalid", implicit("edgefw-invalid-input", drop), ""},
		{"spec-example-full", "output tcp 192.0.2.1 10.20.0.1 3000 state=invalid", implicit("edgefw-invalid-output", drop), ""},
		{"spec-example-full", "input tcp 127.0.0.1 127.0.0.1 8080", implicit("edgefw-loopback-input", accept), "comes in on lo"},
		{"spec-example-full", "output udp ::1 ::1 53", implicit("edgefw-loopback-output", accept), "goes out on lo"},
		{"spec-example-full", "input tcp 192.0.2.1 192.0.2.1 8080 iif=lo", implicit("edgefw-loopback-input", accept), ""},
		{"spec-example-full", "input icmpv6 fe80::1 ff02::1:ff00:1 type=nd-neighbor-solicit", implicit("edgefw-icmpv6-nd-input", accept), ""},
		{"spec-example-full", "output icmpv6 fe80::2 fe80::1 type=nd-neighbor-advert", implicit("edgefw-icmpv6-nd-output", accept), ""},
		{"spec-example-full", "input icmpv6 fe80::1 ff02::16 type=mld2-listener-report", implicit("edgefw-icmpv6-nd-input", accept), ""},
		{"spec-example-full", "input icmp 198.51.100.9 192.0.2.1 type=destination-unreachable", implicit("edgefw-icmp-errors-input", accept), ""},
		{"spec-example-full", "input icmpv6 2001:db8::9 2001:db8::1 type=packet-too-big", implicit("edgefw-icmp-errors-input", accept), ""},
		{"spec-example-full", "forward icmp 198.51.100.9 10.0.0.9 type=time-exceeded", implicit("edgefw-icmp-errors-forward", accept), ""},
		{"spec-example-full", "input icmp 198.51.100.9 192.0.2.1 type=echo-request", byDefault(input, drop), ""},
		{"spec-example-full", "input icmpv6 2001:db8::9 2001:db8::1", byDefault(input, drop), ""},
		// The failsafe comes before every rule: even a blocklisted source
		// reaches tcp/22.
		{"spec-example-full", "input tcp 10.10.1.2 192.0.2.1 22", implicit("edgefw-failsafe", accept), ""},
		{"spec-example-full", "input tcp 198.51.100.7 192.0.2.1 22", implicit("edgefw-failsafe", accept), ""},
		{"spec-example-full", "input udp 203.0.113.1 192.0.2.1 51820", implicit("edgefw-tunnel-wg0", accept), ""},
		{"spec-example-full", "input udp 203.0.113.1 192.0.2.1 51821", user("drop-blocklisted", drop).logged(), ""},
		// Sets: a set file's single address, merged ranges, IPv6.
		{"spec-example-full", "input tcp 198.51.100.7 192.0.2.1 30001", user("drop-blocklisted", drop).logged(), ""},
		{"spec-example-full", "input tcp 198.20.255.255 192.0.2.1 80", user("drop-blocklisted", drop).logged(), ""},
		{"spec-example-full", "input udp 2001:db8:bad::1 2001:db8::1 53", user("drop-blocklisted", drop).logged(), ""},
		{"spec-example-full", "input udp 2001:db8:bae::1 2001:db8::1 53", byDefault(input, drop), ""},
		// Limits are reported, not simulated.
		{"spec-example-full", "input tcp 198.51.100.8 192.0.2.1 6443", user("kube-api", accept).limits(2), ""},
		{"spec-example-full", "input tcp 2001:db8::8 2001:db8::1 6443", user("kube-api", accept).limits(2), ""},
		// Except, and an interface alternative of the same rule.
		{"spec-example-full", "input tcp 198.51.100.8 192.0.2.1 30000", user("nodeports", accept), ""},
		{"spec-example-full", "input tcp 192.0.3.0 192.0.2.1 32767", user("nodeports", accept), ""},
		{"spec-example-full", "input tcp 192.0.2.8 192.0.2.1 30000", byDefault(input, drop), "rule nodeports would match if the packet's interface were known: it matches packets that come in on wg0"},
		{"spec-example-full", "input tcp 192.0.2.8 192.0.2.1 30000 iif=wg0", user("nodeports", accept), ""},
		{"spec-example-full", "input tcp 192.0.2.8 192.0.2.1 30000 iif=eth0", byDefault(input, drop), ""},
		{"spec-example-full", "input tcp 2001:db8::8 2001:db8::1 30000", byDefault(input, drop), "come in on wg0"},
		{"spec-example-full", "input tcp 2001:db8::8 2001:db8::1 30000 iif=wg0", user("nodeports", accept), ""},
		{"spec-example-full", "input tcp 198.51.100.8 192.0.2.1 32768", byDefault(input, drop), ""},
		// Output and forward, with their defaults (accept: not logged).
		{"spec-example-full", "output tcp 192.0.2.1 10.20.255.255 3000", user("backend-egress", accept), ""},
		{"spec-example-full", "output tcp 192.0.2.1 10.21.0.1 3000", byDefault(output, accept), ""},
		{"spec-example-full", "forward tcp 10.0.0.9 198.51.100.1 443 iif=wg0 oif=eth0", byDefault(fwd, accept), ""},

		{"families", "input tcp 203.0.113.5 192.0.2.1 8443", user("mixed", accept), ""},
		{"families", "input tcp 203.0.113.6 192.0.2.1 8443", byDefault(input, drop), ""},
		{"families", "input tcp 198.51.100.1 192.0.2.2 8443", byDefault(input, drop), ""},
		{"families", "input tcp 2001:db8:1::ffff 2001:db8::1 8443", user("mixed", accept), ""},
		{"families", "input tcp 2001:db8:2::1 2001:db8::1 8443", user("mixed", accept), ""},
		{"families", "input tcp 2001:db8:2::2 2001:db8::1 8443", byDefault(input, drop), ""},
		{"families", "input udp 2001:db8::9 2001:db8::1 546", user("v6-only", accept), ""},
		{"families", "input udp 192.0.2.9 192.0.2.1 546", byDefault(input, drop), ""},
		{"families", "input tcp 192.0.2.9 192.0.2.1 179", user("v4-only", accept), ""},
		{"families", "input tcp 2001:db8::9 2001:db8::1 179", byDefault(input, drop), ""},
		{"families", "input icmp 192.0.2.9 192.0.2.1", user("ping4", accept), ""},
		{"families", "input icmpv6 2001:db8::9 2001:db8::1", user("ping6", accept), ""},
		{"families", "output tcp 2001:db8::1 2001:db8:ffff::1 80", user("anywhere-v6", accept), ""},
		{"families", "output tcp 192.0.2.1 198.51.100.1 80", byDefault(output, accept), ""},
		{"families", "output tcp 192.0.2.1 11.0.0.1 443", user("anywhere-v4-but", accept), ""},
		{"families", "output tcp 192.0.2.1 10.255.0.1 443", byDefault(output, accept), ""},
		{"families", "output tcp 192.0.2.1 0.0.0.1 443", byDefault(output, accept), ""},

		{"sets-except", "input tcp 10.11.255.255 192.0.2.1 80", user("from-mgmt", accept), ""},
		{"sets-except", "input tcp 192.0.2.127 192.0.2.1 80", byDefault(input, drop), ""},
		{"sets-except", "input tcp 2001:db8:10:ffff::1 2001:db8::1 80", user("from-mgmt", accept), ""},
		{"sets-except", "input udp 198.51.100.200 192.0.2.1 161", user("v4-set", accept), ""},
		{"sets-except", "input udp 2001:db8::200 2001:db8::1 161", byDefault(input, drop), ""},
		{"sets-except", "input tcp 192.168.9.255 192.0.2.1 443", user("lan-but-printers", accept), ""},
		{"sets-except", "input tcp 192.168.10.1 192.0.2.1 443", byDefault(input, drop), ""},
		{"sets-except", "input tcp 192.168.21.255 192.0.2.1 443", byDefault(input, drop), ""},
		{"sets-except", "input tcp 192.168.22.0 192.0.2.1 443", user("lan-but-printers", accept), ""},
		{"sets-except", "input tcp 172.16.0.1 192.0.2.1 443", byDefault(input, drop), ""},
		{"sets-except", "input tcp 172.16.0.0 192.0.2.1 443", user("lan-but-printers", accept), ""},
		{"sets-except", "input tcp 2001:db8:dead::1 2001:db8::1 443", byDefault(input, drop), ""},
		{"sets-except", "input tcp 2001:db8:deae::1 2001:db8::1 443", user("lan-but-printers", accept), ""},
		{"sets-except", "output tcp 2001:db8::1 2001:db8:20::1 443", user("to-backends", accept), ""},

		{"interfaces", "input udp 192.0.2.9 192.0.2.1 53 iif=eth1", user("from-lan", accept), ""},
		{"interfaces", "input udp 2001:db8::9 2001:db8::1 53 iif=veth0a1b", user("from-lan", accept), ""},
		{"interfaces", "input udp 192.0.2.9 192.0.2.1 53 iif=eth0", byDefault(input, drop), ""},
		{"interfaces", "input udp 192.0.2.9 192.0.2.1 53", byDefault(input, drop), "rule from-lan would match"},
		{"interfaces", "input tcp 10.10.0.9 192.0.2.1 9100 iif=eth0", user("lan-or-mgmt", accept), ""},
		{"interfaces", "input tcp 2001:db8::9 2001:db8::1 9100 iif=eth0", byDefault(input, drop), ""},
		{"interfaces", "forward tcp 10.42.0.5 198.51.100.1 443 iif=cni0 oif=eth0", user("pods-out", accept), ""},
		{"interfaces", "forward tcp 10.42.0.5 192.168.1.1 443 iif=cni0 oif=eth1", byDefault(fwd, drop), ""},
		{"interfaces", "forward tcp 10.42.0.5 198.51.100.1 443 iif=cni0", byDefault(fwd, drop), "go out on eth0"},
		{"interfaces", "output tcp 192.0.2.1 198.51.100.1 25 oif=eth0", user("no-wan-smtp", reject).rejectWith("tcp reset"), ""},
		{"interfaces", "output tcp 192.0.2.1 198.51.100.1 25 oif=eth1", byDefault(output, accept), ""},

		{"reject-log", "input tcp 192.0.2.9 192.0.2.1 25", user("reject-tcp", reject).rejectWith("tcp reset"), ""},
		{"reject-log", "input udp 192.0.2.9 192.0.2.1 69", user("reject-udp-logged", reject).rejectWith("icmp port-unreachable").logged(), ""},
		{"reject-log", "input udp 2001:db8::9 2001:db8::1 69", user("reject-udp-logged", reject).rejectWith("icmpv6 port-unreachable").logged(), ""},
		{"reject-log", "input tcp 203.0.113.9 192.0.2.1 80", user("reject-any", reject).rejectWith("icmp port-unreachable"), ""},
		{"reject-log", "input udp 2001:db8:bad::9 2001:db8::1 80", user("drop-logged", drop).logged(), ""},
		{"reject-log", "input tcp 2001:db8::9 2001:db8::1 8080", user("accept-logged", accept).logged(), ""},
		{"reject-log", "input udp 2001:db8::9 2001:db8::1 514", user("reject-v6-syslog", reject).rejectWith("icmpv6 port-unreachable"), ""},
		{"reject-log", "input udp 192.0.2.9 192.0.2.1 514", byDefault(input, drop), ""},
		{"reject-log", "input icmp 192.0.2.9 192.0.2.1", user("reject-ping", reject).rejectWith("icmp port-unreachable"), ""},
		{"reject-log", "input tcp 10.0.0.9 192.0.2.1 80 iif=wg0", user("reject-wg-v4", reject).rejectWith("icmp port-unreachable"), ""},
		{"reject-log", "input tcp fd00::9 fd00::1 80 iif=wg0", byDefault(input, drop), ""},

		{"ports", "input tcp 192.0.2.9 192.0.2.1 2223", implicit("edgefw-failsafe", accept), ""},
		{"ports", "input udp 192.0.2.9 192.0.2.1 60000", implicit("edgefw-failsafe", accept), ""},
		{"ports", "input tcp 192.0.2.9 192.0.2.1 8090", user("web", accept), ""},
		{"ports", "input tcp 192.0.2.9 192.0.2.1 8091", byDefault(input, drop), ""},
		{"ports", "input tcp 192.0.2.9 192.0.2.1 53", user("dns", accept), ""},
		{"ports", "input sctp 192.0.2.9 192.0.2.1 3869", user("sctp-range", accept), ""},
		{"ports", "input sctp 192.0.2.9 192.0.2.1 80", byDefault(input, drop), ""},
		{"ports", "input udp 10.1.2.3 192.0.2.1 9999", user("any-udp-and-ping", accept), ""},
		{"ports", "input icmp 10.1.2.3 192.0.2.1", user("any-udp-and-ping", accept), ""},
		{"ports", "input tcp 10.1.2.3 192.0.2.1 9999", byDefault(input, drop), ""},
		{"ports", "input tcp 192.0.2.9 192.0.2.1 65535", user("top-port", accept), ""},

		{"limits", "input tcp 192.0.2.9 192.0.2.1 6443", user("api", accept).limits(1), ""},
		{"limits", "input tcp 10.0.0.9 192.0.2.1 5432", user("db", accept).limits(1), ""},
		{"limits", "input tcp 10.0.0.9 192.0.2.1 5432 state=established", implicit("edgefw-established-input", accept), ""},
		{"per-source", "input icmp 192.0.2.9 192.0.2.1", user("ping", accept).limits(1), ""},
		{"per-source", "input udp 2001:db8::9 2001:db8::1 53", user("dns-v6", accept).limits(1), ""},
		{"per-source", "input tcp 192.0.2.9 192.0.2.1 25 iif=eth0", user("smtp", reject).rejectWith("tcp reset").limits(1), ""},
		{"per-source", "input tcp 192.0.2.9 192.0.2.1 25", byDefault(input, drop), "rule smtp would match"},

		{"tunnels", "input udp 2001:db8::9 2001:db8::1 51821", implicit("edgefw-tunnel-wg-backup", accept), ""},
		{"tunnels", "input udp 192.0.2.9 192.0.2.1 51822", byDefault(input, drop), ""},
		{"tunnels", "input tcp 10.0.0.1 10.0.0.2 80 iif=wg0", user("from-cluster", accept), ""},

		{"output-drop", "output udp 192.0.2.1 192.0.2.53 53", user("dns-out", accept), ""},
		{"output-drop", "output tcp 2001:db8::1 2001:db8::53 53", user("dns-out", accept), ""},
		{"output-drop", "output tcp 192.0.2.1 192.0.2.54 53", byDefault(output, drop), ""},
		{"output-drop", "output udp 2001:db8::1 2001:db8::99 123", user("ntp-out", accept), ""},
		{"output-drop", "output tcp 192.0.2.1 198.51.100.11 443", user("registry", accept), ""},
		{"output-drop", "output tcp 192.0.2.1 198.51.100.12 443", byDefault(output, drop), ""},
		{"output-drop", "forward tcp 192.0.2.9 198.51.100.12 443", byDefault(fwd, drop), ""},
		{"output-drop", "output tcp 192.0.2.1 198.51.100.12 443 state=established", implicit("edgefw-established-output", accept), ""},

		// An empty failsafe leaves tcp/22 to the policy's own rule.
		{"edge-default", "input tcp 192.0.2.9 192.0.2.1 22", user("ssh", accept), ""},
		{"accept-all", "input tcp 192.0.2.9 192.0.2.1 80", byDefault(input, drop), ""},
	}
	rulesets := map[string]*Ruleset{}
	for _, tc := range tests {
		rs, ok := rulesets[tc.policy]
		if !ok {
			rs = compileFile(t, filepath.Join("testdata", "golden", tc.policy+".yaml"))
			rulesets[tc.policy] = rs
		}
		t.Run(tc.policy+"/"+tc.packet, func(t *testing.T) {
			v := Trace(rs, tracePacket(t, tc.packet))
			if diff := cmp.Diff(tc.want, outcomeOf(v)); diff != "" {
				t.Errorf("verdict (-want +got):\n%s\n%s", diff, v.Explanation)
			}
			if !slices.Contains(rs.Counters, v.Counter) {
				t.Errorf("counter %q is not one of the ruleset's", v.Counter)
			}
			if tc.note != "" && !slices.ContainsFunc(v.Notes, func(n string) bool { return strings.Contains(n, tc.note) }) {
				t.Errorf("no note says %q; notes: %q", tc.note, v.Notes)
			}
			if len(v.Passed) != v.Position-1 && !slices.ContainsFunc(v.Passed, func(s TraceStep) bool { return s.Chain != v.Chain }) {
				t.Errorf("decided by rule %d of %s after passing %d rules", v.Position, v.Chain, len(v.Passed))
			}
		})
	}
}

// TestTraceExplains pins the explanation and the steps of -v for a few
// packets, in full.
func TestTraceExplains(t *testing.T) {
	rs := compileFile(t, "testdata/golden/spec-example-full.yaml")
	tests := []struct {
		packet, want string
	}{
		{"input tcp 10.10.1.2 192.0.2.1 22", "tcp 10.10.1.2 → 192.0.2.1:22 (input, new): accepted by implicit rule edgefw-failsafe, the failsafe (anti-lockout) ports (counter edgefw-failsafe): tcp port 22"},
		{"input tcp 198.51.100.7 192.0.2.1 80", "tcp 198.51.100.7 → 192.0.2.1:80 (input, new): dropped by rule drop-blocklisted (counter drop-blocklisted): source 198.51.100.7 in set blocklist (198.51.100.7)"},
		{"input tcp 2001:db8::9 2001:db8::1 30000 iif=wg0", "tcp 2001:db8::9 → [2001:db8::1]:30000 (input, in wg0, new): accepted by rule nodeports (counter nodeports): IPv6; comes in on wg0; tcp port 30000 (in 30000-32767)"},
		{"input icmp 192.0.2.9 192.0.2.1", "icmp 192.0.2.9 → 192.0.2.1 echo-request (input, new): dropped by the input default policy (counter edgefw-default-input): no rule matched"},
		{"output tcp 192.0.2.1 10.20.0.1 3000", "tcp 192.0.2.1 → 10.20.0.1:3000 (output, new): accepted by rule backend-egress (counter backend-egress): destination 10.20.0.1 in 10.20.0.0/16; tcp port 3000"},
		{"input tcp 192.0.2.9 192.0.2.1 443 state=established", "tcp 192.0.2.9 → 192.0.2.1:443 (input, established): accepted by implicit rule edgefw-established-input, packets of established and related connections (counter edgefw-established-input): ct state established"},
	}
	for _, tc := range tests {
		if got := Trace(rs, tracePacket(t, tc.packet)).Explanation; got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.packet, got, tc.want)
		}
	}

	// Every rule before the deciding one is a step, with why it passed.
	v := Trace(rs, tracePacket(t, "forward tcp 10.0.0.9 198.51.100.1 443 iif=wg0"))
	var steps []string
	for _, s := range v.Passed {
		steps = append(steps, s.Chain+"#"+strconv.Itoa(s.Position)+" "+s.Result+": "+s.Reason)
	}
	want := []string{
		"forward#1 statement: comes in on wg0; a TCP SYN: tcp option maxseg size set rt mtu",
		"forward#2 no match: interface not given: it matches packets that go out on wg0",
		"forward#3 no match: ct state new, not established,related",
		"forward#4 no match: ct state new, not invalid",
		"forward#5 no match: protocol tcp, not icmp",
		"forward#6 no match: protocol tcp, not icmpv6",
	}
	if diff := cmp.Diff(want, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
}

// TestTraceLimitChain follows the jump into a rule's limit chain and back,
// and names the limits in the verdict.
func TestTraceLimitChain(t *testing.T) {
	rs := compileFile(t, "testdata/golden/spec-example-full.yaml")
	v := Trace(rs, tracePacket(t, "input tcp 192.0.2.9 192.0.2.1 6443"))
	want := []TraceLimit{
		{Rule: "kube-api", Counter: "edgefw-limited-kube-api", Limit: "100/minute burst 20 packets per source address"},
		{Rule: "kube-api", Counter: "edgefw-limited-kube-api", Limit: "at most 10 connections per source address"},
	}
	if diff := cmp.Diff(want, v.Limits); diff != "" {
		t.Errorf("limits (-want +got):\n%s", diff)
	}
	var jumped, inLimitChain bool
	for _, s := range v.Passed {
		jumped = jumped || s.Result == TraceJump && strings.Contains(s.Nft, "jump "+LimitChain("kube-api"))
		inLimitChain = inLimitChain || s.Chain == LimitChain("kube-api")
	}
	if !jumped || !inLimitChain || v.Chain != "input" {
		t.Errorf("the trace did not go through %s and back: %+v", LimitChain("kube-api"), v.Passed)
	}
	// An established packet never reaches the limit.
	if v := Trace(rs, tracePacket(t, "input tcp 192.0.2.9 192.0.2.1 6443 state=established")); len(v.Limits) != 0 {
		t.Errorf("established packet met limits %v", v.Limits)
	}
}

// TestTraceHandBuilt covers rulesets the compiler does not build: a chain
// whose policy decides uncounted, a missing hook, a jump to nowhere.
func TestTraceHandBuilt(t *testing.T) {
	rs := &Ruleset{Chains: []*Chain{
		{Name: "input", Hook: policy.Input, Policy: policy.Drop, Rules: []*Rule{
			{Owner: "x", Matches: []Match{L4Match{Protos: []policy.Protocol{policy.TCP}}}, Jump: "missing"},
		}},
	}}
	v := Trace(rs, tracePacket(t, "input tcp 192.0.2.9 192.0.2.1 80"))
	if v.Action != policy.Drop || v.Kind != KindDefault || v.Counter != "" || v.Position != 0 {
		t.Errorf("uncounted chain policy: %+v", v)
	}
	if len(v.Passed) != 1 || !strings.Contains(v.Passed[0].Reason, "does not exist") {
		t.Errorf("jump to a missing chain: %+v", v.Passed)
	}
	v = Trace(rs, tracePacket(t, "output tcp 192.0.2.1 192.0.2.9 80"))
	if v.Action != policy.Accept || v.Kind != KindDefault || v.Counter != "" {
		t.Errorf("no output chain: %+v", v)
	}
}

// TestTraceKnowsEveryMatch fails when package nft gains a Match type that
// Trace does not evaluate: every type named *Match in the package's
// source must be in traceMatches, and each must be evaluated.
func TestTraceKnowsEveryMatch(t *testing.T) {
	traceMatches := []Match{NFProtoMatch{}, L4Match{}, IfaceMatch{}, AddrMatch{}, ICMPTypeMatch{},
		CtStateMatch{}, TCPSynMatch{}, MeterMatch{Limit: &RateLimit{}}, ConnCountMatch{}}
	var known []string
	for _, m := range traceMatches {
		known = append(known, strings.TrimPrefix(fmt.Sprintf("%T", m), "nft."))
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var declared []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				if _, isStruct := ts.Type.(*ast.StructType); isStruct && strings.HasSuffix(ts.Name.Name, "Match") && ast.IsExported(ts.Name.Name) {
					name := ts.Name.Name
					declared = append(declared, name)
				}
			}
		}
	}
	slices.Sort(known)
	slices.Sort(declared)
	if diff := cmp.Diff(declared, known); diff != "" {
		t.Errorf("Match types declared (-) and known to this test (+) differ; teach Trace the new ones:\n%s", diff)
	}
	tr := &tracer{rs: &Ruleset{}, p: tracePacket(t, "input tcp 192.0.2.9 192.0.2.1 80")}
	for _, m := range traceMatches {
		tr.match(m)
	}
	if len(tr.v.Notes) > 0 {
		t.Errorf("Trace cannot evaluate: %q", tr.v.Notes)
	}
}

func TestPacketValidate(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("2001:db8::9")
	ok := Packet{Direction: input, Protocol: policy.TCP, Src: v4, Dst: v4, DstPort: 80}
	tests := []struct {
		name   string
		change func(*Packet)
		want   string // "" for valid
	}{
		{"valid", func(*Packet) {}, ""},
		{"direction", func(p *Packet) { p.Direction = "prerouting" }, `direction "prerouting": use input, output or forward`},
		{"protocol", func(p *Packet) { p.Protocol = "gre" }, `protocol "gre": use tcp, udp, sctp, icmp or icmpv6`},
		{"families", func(p *Packet) { p.Dst = v6 }, "source 192.0.2.9 and destination 2001:db8::9: both must be IPv4 or both IPv6"},
		{"no source", func(p *Packet) { p.Src = netip.Addr{} }, "source address missing"},
		{"zone", func(p *Packet) { p.Src, p.Dst = netip.MustParseAddr("fe80::1%eth0"), v6 }, "source address fe80::1%eth0: no zone (%eth0) please, the rules do not match on it"},
		{"mapped", func(p *Packet) { p.Src, p.Dst = netip.MustParseAddr("::ffff:192.0.2.9"), v6 }, "source address ::ffff:192.0.2.9 is an IPv4-mapped IPv6 address: write 192.0.2.9 for IPv4"},
		{"icmp v6", func(p *Packet) { p.Protocol, p.Src, p.Dst, p.DstPort = policy.ICMP, v6, v6, 0 }, "protocol icmp is IPv4's: use icmpv6 with IPv6 addresses"},
		{"icmpv6 v4", func(p *Packet) { p.Protocol, p.DstPort = policy.ICMPv6, 0 }, "protocol icmpv6 is IPv6's: use icmp with IPv4 addresses"},
		{"no port", func(p *Packet) { p.DstPort = 0 }, "protocol tcp needs a destination port from 1 to 65535 (DST:PORT)"},
		{"icmp port", func(p *Packet) { p.Protocol = policy.ICMP }, "protocol icmp has no ports: give the destination without :PORT"},
		{"oif in input", func(p *Packet) { p.Oif = "eth0" }, `output interface "eth0": input packets, for the host, have none; use the input interface`},
		{"iif in output", func(p *Packet) { p.Direction, p.Iif = output, "eth0" }, `input interface "eth0": output packets, sent by the host, have none; use the output interface`},
		{"long ifname", func(p *Packet) { p.Iif = "abcdefghijklmnop" }, `input interface "abcdefghijklmnop": an interface name has at most 15 characters, without spaces, / or *`},
		{"wildcard ifname", func(p *Packet) { p.Direction, p.Oif = fwd, "eth*" }, `output interface "eth*": an interface name has at most 15 characters, without spaces, / or *`},
		{"state", func(p *Packet) { p.State = "untracked" }, `state "untracked": use new, established, related or invalid`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.change(&p)
			err := p.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestICMPTypes(t *testing.T) {
	for _, tc := range []struct {
		v6   bool
		name string
		typ  uint8
	}{
		{false, "echo-request", 8}, {false, "echo-reply", 0}, {false, "destination-unreachable", 3},
		{true, "echo-request", 128}, {true, "nd-neighbor-solicit", 135}, {true, "packet-too-big", 2},
		{false, "42", 42},
	} {
		typ, err := ParseICMPType(tc.v6, tc.name)
		if err != nil || typ != tc.typ {
			t.Errorf("ParseICMPType(%v, %q) = %d, %v; want %d", tc.v6, tc.name, typ, err, tc.typ)
		}
		if got := ICMPTypeName(tc.v6, tc.typ); got != tc.name {
			t.Errorf("ICMPTypeName(%v, %d) = %q, want %q", tc.v6, tc.typ, got, tc.name)
		}
	}
	if _, err := ParseICMPType(true, "ping"); err == nil || !strings.Contains(err.Error(), `icmpv6 type "ping": use a number from 0 to 255 or one of `) {
		t.Errorf("ParseICMPType(ping) = %v", err)
	}
}
