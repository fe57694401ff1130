package integration

import (
	"encoding/json"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/nft"
)

// tracePolicy exercises what trace must get right against real packets:
// accept, drop and reject (TCP reset, ICMP and ICMPv6 port unreachable),
// a named set, a CIDR with an except, interfaces, forwarding, output, the
// failsafe and the defaults, in both families. IFA and IFB are the host's
// interfaces towards the client and the LAN.
const tracePolicy = `version: 1
defaults: {input: drop, forward: drop, output: accept}
failsafe: [{protocol: tcp, port: 22}]
sets:
  trusted: [192.0.2.0/26, "2001:db8::/122"]
rules:
  - name: blocked-hosts
    direction: input
    from: [{cidr: 192.0.2.66/32}, {cidr: "2001:db8::66/128"}]
    action: drop
  - name: refuse-hosts          # no ports: an ICMP port unreachable, even to TCP
    direction: input
    from: [{cidr: 192.0.2.77/32}, {cidr: "2001:db8::77/128"}]
    action: reject
  - name: admin-from-trusted
    direction: input
    from: [{set: trusted}]
    ports: [{protocol: tcp, port: 8080}]
    action: accept
  - name: ping-from-trusted
    direction: input
    from: [{set: trusted}]
    ports: [{protocol: icmp}, {protocol: icmpv6}]
    action: accept
  - name: web
    direction: input
    from:
      - {cidr: 192.0.2.0/24, except: [192.0.2.3/32]}
      - {cidr: "2001:db8::/64", except: ["2001:db8::3/128"]}
    ports: [{protocol: tcp, port: 80}]
    action: accept
  - name: refuse-smtp
    direction: input
    ports: [{protocol: tcp, port: 25}]
    action: reject
  - name: lan-metrics
    direction: input
    from: [{interface: IFB}]
    ports: [{protocol: tcp, port: 9100}]
    action: accept
  - name: fwd-web
    direction: forward
    from: [{interface: IFA}]
    to: [{interface: IFB}]
    ports: [{protocol: tcp, port: 80}]
    action: accept
  - name: fwd-refuse-smtp
    direction: forward
    ports: [{protocol: tcp, port: 25}]
    action: reject
  - name: out-refuse
    direction: output
    to: [{cidr: 192.0.2.0/24}, {cidr: "2001:db8::/64"}]
    ports: [{protocol: tcp, port: 7070}]
    action: reject
`

// traceCell is one cell of the matrix: a packet from a namespace, what
// the host's firewall sees of it, and the counter that must decide it.
type traceCell struct {
	name      string
	from      *netnstest.NS
	to        *netnstest.NS // the server's namespace
	proto     string        // tcp or icmp (a ping)
	src, dst  string
	port      int
	direction string // at the host
	iif, oif  string // at the host
	want      string // the counter that decides
}

// TestTraceMatchesTraffic is the proof that trace tells the truth: for
// every cell of a traffic matrix (accept, drop, reject, sets, except,
// interfaces, forwarding, output, both families), real packets go through
// the ruleset edgefwd --once applied, and
//   - `edgefwctl trace` names the cell's counter for the first packet,
//   - what the sender sees (connected, refused, timed out) is what trace's
//     action says (accept, reject, drop),
//   - the kernel counters that moved are exactly those trace names for the
//     packets of the exchange (the first packet, and the replies or the
//     reject's answer, traced with their conntrack state), and the
//     deciding counter counted the one packet sent (see traceCheckCounts).
func TestTraceMatchesTraffic(t *testing.T) {
	l := newTraceLab(t)
	for i, c := range l.cells() {
		t.Run(c.name, func(t *testing.T) {
			first := l.trace(t, c.firstPacket())
			if first.Counter != c.want {
				t.Fatalf("trace %s: counter %q (%s), want %q", c.firstPacket(), first.Counter, first.Explanation, c.want)
			}
			want := map[string]bool{first.Counter: true}
			var answers []string
			for _, args := range c.exchange(first, 40000+i) {
				counter := l.trace(t, args).Counter
				want[counter] = true
				answers = append(answers, counter)
			}
			before := l.counters(t)
			got := l.send(t, c, string(first.Action), 40000+i)
			after := l.counters(t)
			moved := traceDelta(before, after)
			t.Logf("trace: %s\nmoved: %v", first.Explanation, moved)
			if wantOutcome := traceOutcomeOf(string(first.Action)); got != wantOutcome {
				t.Errorf("%s: %s; trace says %s, so %s", c.firstPacket(), got, first.Action, wantOutcome)
			}
			if diff := cmp.Diff(slices.Sorted(maps.Keys(want)), traceMoved(moved)); diff != "" {
				t.Errorf("%s: the counters that moved are not those trace names (-trace +kernel):\n%s\ntrace: %s", c.firstPacket(), diff, first.Explanation)
			}
			traceCheckCounts(t, c, first, answers, moved)
		})
	}
}

// cells is the matrix: each cell names the counter that must decide it.
func (l *traceLab) cells() []traceCell {
	in := func(name string, from *netnstest.NS, proto, src, dst string, port int, want string) traceCell {
		iif := l.ifA
		if from == l.lan {
			iif = l.ifB
		}
		return traceCell{name, from, l.host, proto, src, dst, port, "input", iif, "", want}
	}
	fwd := func(name string, from, to *netnstest.NS, src, dst string, port int, want string) traceCell {
		iif, oif := l.ifA, l.ifB
		if from == l.lan {
			iif, oif = l.ifB, l.ifA
		}
		return traceCell{name, from, to, "tcp", src, dst, port, "forward", iif, oif, want}
	}
	out := func(name, src, dst string, port int, want string) traceCell {
		return traceCell{name, l.host, l.client, "tcp", src, dst, port, "output", "", l.ifA, want}
	}
	const defIn, defFwd, defOut = "edgefw-default-input", "edgefw-default-forward", "edgefw-default-output"
	return []traceCell{
		in("accept v4", l.client, "tcp", tracePlain4, traceHostA4, 80, "web"),
		in("accept v6", l.client, "tcp", tracePlain6, traceHostA6, 80, "web"),
		in("except v4", l.client, "tcp", traceExcept4, traceHostA4, 80, defIn),
		in("except v6", l.client, "tcp", traceExc6, traceHostA6, 80, defIn),
		in("set v4", l.client, "tcp", tracePlain4, traceHostA4, 8080, "admin-from-trusted"),
		in("set v6", l.client, "tcp", tracePlain6, traceHostA6, 8080, "admin-from-trusted"),
		in("outside the set v4", l.client, "tcp", traceOut4, traceHostA4, 8080, defIn),
		in("outside the set v6", l.client, "tcp", traceOut6, traceHostA6, 8080, defIn),
		in("drop from a CIDR v4", l.client, "tcp", traceBlock4, traceHostA4, 80, "blocked-hosts"),
		in("drop from a CIDR v6", l.client, "tcp", traceBlock6, traceHostA6, 80, "blocked-hosts"),
		in("failsafe before the drop", l.client, "tcp", traceBlock4, traceHostA4, 22, "edgefw-failsafe"),
		in("failsafe before the drop v6", l.client, "tcp", traceBlock6, traceHostA6, 22, "edgefw-failsafe"),
		in("reject with tcp reset v4", l.client, "tcp", tracePlain4, traceHostA4, 25, "refuse-smtp"),
		in("reject with tcp reset v6", l.client, "tcp", tracePlain6, traceHostA6, 25, "refuse-smtp"),
		in("reject with icmp", l.client, "tcp", traceRefuse4, traceHostA4, 80, "refuse-hosts"),
		in("reject with icmpv6", l.client, "tcp", traceRef6, traceHostA6, 80, "refuse-hosts"),
		in("default drop v4", l.client, "tcp", tracePlain4, traceHostA4, 81, defIn),
		in("default drop v6", l.client, "tcp", tracePlain6, traceHostA6, 81, defIn),
		in("interface v4", l.lan, "tcp", traceLAN4, traceHostB4, 9100, "lan-metrics"),
		in("interface v6", l.lan, "tcp", traceLAN6, traceHostB6, 9100, "lan-metrics"),
		in("other interface v4", l.client, "tcp", tracePlain4, traceHostA4, 9100, defIn),
		// The LAN address of the host, reached from the client: what
		// counts is the interface the packet comes in on.
		in("other interface to its address", l.client, "tcp", tracePlain4, traceHostB4, 9100, defIn),
		in("other interface v6", l.client, "tcp", tracePlain6, traceHostB6, 9100, defIn),
		in("ping from the set v4", l.client, "icmp", tracePlain4, traceHostA4, 0, "ping-from-trusted"),
		in("ping from the set v6", l.client, "icmp", tracePlain6, traceHostA6, 0, "ping-from-trusted"),
		in("ping from outside the set v4", l.client, "icmp", traceOut4, traceHostA4, 0, defIn),
		in("ping from outside the set v6", l.client, "icmp", traceOut6, traceHostA6, 0, defIn),
		in("ping dropped from a CIDR", l.client, "icmp", traceBlock4, traceHostA4, 0, "blocked-hosts"),
		fwd("forward accept v4", l.client, l.lan, tracePlain4, traceLAN4, 80, "fwd-web"),
		fwd("forward accept v6", l.client, l.lan, tracePlain6, traceLAN6, 80, "fwd-web"),
		fwd("forward default drop", l.client, l.lan, tracePlain4, traceLAN4, 81, defFwd),
		fwd("forward the other way", l.lan, l.client, traceLAN4, tracePlain4, 80, defFwd),
		fwd("forward the other way v6", l.lan, l.client, traceLAN6, tracePlain6, 80, defFwd),
		fwd("forward reject v4", l.client, l.lan, tracePlain4, traceLAN4, 25, "fwd-refuse-smtp"),
		fwd("forward reject v6", l.client, l.lan, tracePlain6, traceLAN6, 25, "fwd-refuse-smtp"),
		out("output default accept", traceHostA4, tracePlain4, 7071, defOut),
		out("output default accept v6", traceHostA6, tracePlain6, 7071, defOut),
		out("output reject v4", traceHostA4, tracePlain4, 7070, "out-refuse"),
		out("output reject v6", traceHostA6, tracePlain6, 7070, "out-refuse"),
	}
}

// firstPacket is the cell's first packet as trace's arguments.
func (c traceCell) firstPacket() []string {
	dst := c.dst
	if c.proto == "tcp" {
		dst = net.JoinHostPort(c.dst, strconv.Itoa(c.port))
	}
	return traceArgs(c.proto, c.src, dst, c.direction, c.iif, c.oif, "new", "")
}

// traceArgs builds trace's arguments; an icmp packet with IPv6 addresses
// is icmpv6.
func traceArgs(proto, src, dst, direction, iif, oif, state, icmpType string) []string {
	if proto == "icmp" && netip.MustParseAddr(src).Is6() {
		proto = "icmpv6"
	}
	args := []string{proto, src, dst, "--direction", direction, "--state", state}
	if iif != "" {
		args = append(args, "--iif", iif)
	}
	if oif != "" {
		args = append(args, "--oif", oif)
	}
	if icmpType != "" {
		args = append(args, "--icmp-type", icmpType)
	}
	return args
}

// exchange lists the other packets the host's firewall sees of the cell,
// as trace's arguments: an accepted connection's replies and further
// packets (established), or a reject's answer (related), which the host
// sends, through output, and for an output reject, delivers to itself
// through lo. srcPort is the sender's port, a reply's destination port.
func (c traceCell) exchange(first nft.Verdict, srcPort int) [][]string {
	towardSender := func(dst string) string {
		if c.proto == "tcp" {
			return net.JoinHostPort(dst, strconv.Itoa(srcPort))
		}
		return dst
	}
	switch first.Action {
	case "accept":
		if c.proto == "icmp" { // one echo request, one reply
			return [][]string{traceArgs(c.proto, c.dst, c.src, traceReverse(c.direction), c.oif, c.iif, "established", "echo-reply")}
		}
		reply := traceArgs(c.proto, c.dst, towardSender(c.src), traceReverse(c.direction), c.oif, c.iif, "established", "")
		next := traceArgs(c.proto, c.src, net.JoinHostPort(c.dst, strconv.Itoa(c.port)), c.direction, c.iif, c.oif, "established", "")
		return [][]string{reply, next}
	case "reject":
		proto, dst, icmpType := "tcp", towardSender(c.src), ""
		if first.RejectWith != "tcp reset" {
			proto, dst, icmpType = "icmp", c.src, "destination-unreachable"
		}
		oif := c.iif
		if c.direction == "output" {
			oif = "lo"
		}
		answer := [][]string{traceArgs(proto, c.dst, dst, "output", "", oif, "related", icmpType)}
		if c.direction == "output" {
			answer = append(answer, traceArgs(proto, c.dst, dst, "input", "lo", "", "related", icmpType))
		}
		return answer
	}
	return nil
}

func traceReverse(direction string) string {
	switch direction {
	case "input":
		return "output"
	case "output":
		return "input"
	}
	return direction
}

func traceOutcomeOf(action string) string {
	switch action {
	case "accept":
		return traceAccepted
	case "reject":
		return traceRefused
	}
	return traceTimedOut
}

// traceMoved lists the counters that moved, leaving out those of
// neighbour discovery and MLD, which IPv6 sends when it wants.
func traceMoved(moved map[string]uint64) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(moved)) {
		if !strings.HasPrefix(name, "edgefw-icmpv6-nd-") {
			out = append(out, name)
		}
	}
	return out
}

// traceCheckCounts checks how many packets the deciding counter counted:
// the one packet an accepted or dropped attempt sends first (a dropped
// SYN is given up before TCP retransmits it), and for a reject, one per
// answer. A sender may try again after a reject's answer before it gives
// up (Linux 6.18 takes the first ICMPv6 port unreachable to a SYN as soft
// and gives up at the second), so a reject's count is the answers'.
func traceCheckCounts(t *testing.T, c traceCell, first nft.Verdict, answers []string, moved map[string]uint64) {
	t.Helper()
	n := moved[first.Counter]
	if first.Action != "reject" {
		if n != 1 {
			t.Errorf("%s: counter %s moved by %d packets, want the one packet", c.firstPacket(), first.Counter, n)
		}
		return
	}
	if n < 1 {
		t.Errorf("%s: counter %s did not move", c.firstPacket(), first.Counter)
	}
	for _, a := range answers {
		if moved[a] != n {
			t.Errorf("%s: %d packets rejected by %s, but %d answers counted in %s", c.firstPacket(), n, first.Counter, moved[a], a)
		}
	}
}

// TestTraceRunningDaemon traces without --policy: edgefwctl asks the
// running edgefwd for its policy and checks that the file compiles to
// exactly the ruleset edgefwd runs before it traces it.
func TestTraceRunningDaemon(t *testing.T) {
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "base.yaml")})
	out := p.MustCtl(t, "trace", "-o", "json", "tcp", "198.51.100.7", "192.0.2.1:8080")
	var got struct {
		nft.Verdict
		Policy  string `json:"policy"`
		Running bool   `json:"running"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Counter != "web" || got.Action != "accept" || got.Policy != p.PolicyPath || !got.Running {
		t.Errorf("trace of the running policy: counter %q, action %q, policy %q, running %v; want web, accept, %s, true",
			got.Counter, got.Action, got.Policy, got.Running, p.PolicyPath)
	}
}
