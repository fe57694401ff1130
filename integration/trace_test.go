package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// traceLab is three namespaces: host, whose firewall is traced, between
// client (on the host's interface ifA) and lan (on ifB). The host routes
// between them.
type traceLab struct {
	host, client, lan *netnstest.NS
	ifA, ifB          string
	policyPath        string
	ctl               string
	// servers by namespace name: each answers TCP on its ports.
	servers map[string]*traceServer
}

// Addresses of the lab. The client holds several, each standing for what
// its name says; all are inside trusted but the .100 and ::100 ones
// (trusted is 192.0.2.0/26, 2001:db8::/122).
const (
	traceHostA4, traceHostA6 = "192.0.2.1", "2001:db8::1"
	traceHostB4, traceHostB6 = "198.51.100.1", "2001:db8:1::1"
	traceLAN4, traceLAN6     = "198.51.100.2", "2001:db8:1::2"
	tracePlain4, tracePlain6 = "192.0.2.2", "2001:db8::2"
	traceExcept4, traceExc6  = "192.0.2.3", "2001:db8::3"
	traceBlock4, traceBlock6 = "192.0.2.66", "2001:db8::66"
	traceRefuse4, traceRef6  = "192.0.2.77", "2001:db8::77"
	traceOut4, traceOut6     = "192.0.2.100", "2001:db8::100"
)

func newTraceLab(t *testing.T) *traceLab {
	t.Helper()
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft", "ping", "sysctl")
	bin, ctl := buildBinaries(t)
	l := &traceLab{host: netnstest.New(t, "trhost"), client: netnstest.New(t, "trcli"), lan: netnstest.New(t, "trlan"), ctl: ctl}
	var clientAddrs []string
	for _, a := range []string{tracePlain4, traceExcept4, traceBlock4, traceRefuse4, traceOut4} {
		clientAddrs = append(clientAddrs, a+"/24")
	}
	for _, a := range []string{tracePlain6, traceExc6, traceBlock6, traceRef6, traceOut6} {
		clientAddrs = append(clientAddrs, a+"/64")
	}
	l.ifA, _ = netnstest.Link(t, l.host, []string{traceHostA4 + "/24", traceHostA6 + "/64"}, l.client, clientAddrs)
	l.ifB, _ = netnstest.Link(t, l.host, []string{traceHostB4 + "/24", traceHostB6 + "/64"}, l.lan, []string{traceLAN4 + "/24", traceLAN6 + "/64"})
	l.host.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	l.client.MustRun(t, "ip", "route", "add", "198.51.100.0/24", "via", traceHostA4)
	l.client.MustRun(t, "ip", "-6", "route", "add", "2001:db8:1::/64", "via", traceHostA6)
	l.lan.MustRun(t, "ip", "route", "add", "192.0.2.0/24", "via", traceHostB4)
	l.lan.MustRun(t, "ip", "-6", "route", "add", "2001:db8::/64", "via", traceHostB6)

	doc := strings.NewReplacer("IFA", l.ifA, "IFB", l.ifB).Replace(tracePolicy)
	l.policyPath = filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(l.policyPath, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code, _ := runOnce(t, l.host, bin, l.policyPath, filepath.Join(t.TempDir(), "state")); code != 0 {
		t.Fatalf("edgefwd --once exited %d:\n%s", code, out)
	}
	l.servers = map[string]*traceServer{
		l.host.Name:   traceServe(t, l.host, 22, 25, 80, 81, 8080, 9100),
		l.lan.Name:    traceServe(t, l.lan, 25, 80, 81),
		l.client.Name: traceServe(t, l.client, 80, 7070, 7071),
	}
	return l
}

// traceServer answers TCP connections: it echoes one byte, then reads
// until the client ends the connection. The client ends it with a reset
// (see traceDial), so when done gets a value, every packet of the
// connection has passed the firewall: the reset is the last.
type traceServer struct {
	done chan struct{}
}

func traceServe(t *testing.T, ns *netnstest.NS, ports ...int) *traceServer {
	t.Helper()
	s := &traceServer{done: make(chan struct{}, 8)}
	for _, port := range ports {
		var ln net.Listener
		err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", ":"+strconv.Itoa(port)); return err })
		if err != nil {
			t.Fatalf("listen on %d in %s: %v", port, ns.Name, err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer func() { c.Close(); s.done <- struct{}{} }()
					_ = c.SetDeadline(time.Now().Add(traceAcceptTimeout))
					if _, err := io.Copy(c, io.LimitReader(c, 1)); err == nil {
						_, _ = io.Copy(io.Discard, c)
					}
				}()
			}
		}()
	}
	return s
}

// Timeouts. A SYN that is dropped gets no answer at all; 700 ms is far
// more than a veth needs to answer one and less than TCP's first
// retransmission (1 s), so a dropped connection sends exactly one SYN. What
// should get through gets much longer.
const (
	traceDropTimeout   = 700 * time.Millisecond
	traceAcceptTimeout = 10 * time.Second
)

// Outcomes a sender sees.
const (
	traceAccepted = "accepted"
	traceRefused  = "refused"
	traceTimedOut = "timed out"
)

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
	cells := []traceCell{
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
	for i, c := range cells {
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

// trace runs `edgefwctl trace --policy FILE -o json ARGS`.
func (l *traceLab) trace(t *testing.T, args []string) nft.Verdict {
	t.Helper()
	cmd := exec.Command(l.ctl, append([]string{"trace", "--policy", l.policyPath, "-o", "json"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("edgefwctl trace %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	var v nft.Verdict
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("edgefwctl trace %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// counters reads the host's counters as `nft -j list counters` lists them.
func (l *traceLab) counters(t *testing.T) map[string]uint64 {
	t.Helper()
	var listing struct {
		Nftables []struct {
			Counter *struct {
				Table   string `json:"table"`
				Name    string `json:"name"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	out := l.host.MustRun(t, "nft", "-j", "list", "counters")
	if err := json.Unmarshal([]byte(out), &listing); err != nil {
		t.Fatalf("nft -j list counters: %v\n%s", err, out)
	}
	c := map[string]uint64{}
	for _, o := range listing.Nftables {
		if o.Counter != nil && o.Counter.Table == nft.TableName {
			c[o.Counter.Name] = o.Counter.Packets
		}
	}
	return c
}

// traceDelta gives the packets each counter counted between two readings.
func traceDelta(before, after map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for name, n := range after {
		if n != before[name] {
			d[name] = n - before[name]
		}
	}
	return d
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

// send makes the cell's attempt and returns what the sender saw.
func (l *traceLab) send(t *testing.T, c traceCell, action string, srcPort int) string {
	t.Helper()
	timeout := traceAcceptTimeout
	if action == "drop" {
		timeout = traceDropTimeout
	}
	if c.proto == "icmp" {
		return tracePing(t, c.from, c.src, c.dst, timeout)
	}
	var got string
	err := c.from.Do(func() (err error) {
		got, err = traceDial(c.src, srcPort, net.JoinHostPort(c.dst, strconv.Itoa(c.port)), timeout)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	if got == traceAccepted {
		select {
		case <-l.servers[c.to.Name].done:
		case <-time.After(traceAcceptTimeout):
			t.Fatalf("%s: the server did not see the connection end", c.name)
		}
	}
	return got
}

// traceDial connects from src:srcPort, exchanges one byte and ends the
// connection with a reset, which the server sees last.
func traceDial(src string, srcPort int, dst string, timeout time.Duration) (string, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src), Port: srcPort}}
	c, err := d.Dial("tcp", dst)
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return traceRefused, nil
	case errors.As(err, &ne) && ne.Timeout():
		return traceTimedOut, nil
	case err != nil:
		return "", err
	}
	tc := c.(*net.TCPConn)
	defer func() { _ = tc.SetLinger(0); tc.Close() }()
	if err := tc.SetDeadline(time.Now().Add(traceAcceptTimeout)); err != nil {
		return "", err
	}
	if _, err := tc.Write([]byte{'x'}); err != nil {
		return "", fmt.Errorf("connected, then write: %w", err)
	}
	if _, err := io.ReadFull(tc, make([]byte, 1)); err != nil {
		return "", fmt.Errorf("connected, then read: %w", err)
	}
	return traceAccepted, nil
}

// tracePing sends one echo request and says whether a reply came.
func tracePing(t *testing.T, ns *netnstest.NS, src, dst string, timeout time.Duration) string {
	t.Helper()
	wait := strconv.Itoa(max(1, int(timeout/time.Second)))
	out, err := ns.Run("ping", "-n", "-c", "1", "-W", wait, "-I", src, dst)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return traceAccepted
	case strings.Contains(out, "Unreachable"):
		return traceRefused
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return traceTimedOut
	}
	t.Fatalf("ping -I %s %s: %v\n%s", src, dst, err, out)
	return ""
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
