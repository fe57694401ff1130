package nft

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// trafficPolicy exercises every kind of match against real packets. The
// client's addresses are chosen to fall inside or outside each peer.
const trafficPolicy = `
version: 1
defaults: {input: drop, forward: drop, output: drop}
failsafe: [{protocol: tcp, port: 22}]
sets:
  mgmt: [192.0.2.128/25, "2001:db8::100/120"]
rules:
  - name: drop-suspect          # the failsafe still wins for tcp/22
    direction: input
    from: [{cidr: 192.0.2.66/32}]
    action: drop
  - name: mgmt-admin
    direction: input
    from: [{set: mgmt}]
    ports: [{protocol: tcp, port: 9000}]
    action: accept
  - name: web
    direction: input
    from:
      - {cidr: 192.0.2.0/24, except: [192.0.2.3/32]}
      - {cidr: "2001:db8::/64", except: ["2001:db8::3/128"]}
    ports: [{protocol: tcp, port: 80}, {protocol: tcp, port: 8000, endPort: 8010}]
    action: accept
  - name: refuse-smtp
    direction: input
    ports: [{protocol: tcp, port: 25}]
    action: reject
  - name: dns
    direction: input
    ports: [{protocol: udp, port: 53}, {protocol: udp, port: 5353}]
    action: accept
  - name: refuse-tftp
    direction: input
    ports: [{protocol: udp, port: 69}]
    action: reject
  - name: refuse-syslog         # one family each: ICMP, ICMPv6 port unreachable
    direction: input
    from: [{cidr: 192.0.2.0/24}]
    ports: [{protocol: udp, port: 514}]
    action: reject
  - name: refuse-syslog-v6
    direction: input
    family: ipv6
    ports: [{protocol: udp, port: 514}]
    action: reject
  - name: egress
    direction: output
    to: [{cidr: 192.0.2.2/32}]
    ports: [{protocol: tcp, port: 7000}]
    action: accept
`

// Client addresses of the traffic lab and what they stand for.
const (
	plainV4   = "192.0.2.2"
	exceptV4  = "192.0.2.3"   // web's except
	suspectV4 = "192.0.2.66"  // drop-suspect
	mgmtV4    = "192.0.2.130" // in set mgmt
	plainV6   = "2001:db8::2"
	exceptV6  = "2001:db8::3"
	mgmtV6    = "2001:db8::102"
)

// TestTraffic sends packets through the compiled ruleset in a namespace and
// checks, for each attempt, what the client saw and which counters moved:
// exactly the rule that decided, plus the established/related counters of
// the connection's later packets, and nothing else. A reject's answer (TCP
// reset, ICMP error) leaves through output as related to the rejected
// connection. An output drop of a TCP SYN times out (TCP retries and does
// not report the first transmit's error); of a UDP datagram, fails at once
// with EPERM.
func TestTraffic(t *testing.T) {
	l := newLab(t, plainV4, exceptV4, suspectV4, mgmtV4, plainV6, exceptV6, mgmtV6)
	l.apply(t, compileYAML(t, trafficPolicy))
	tcpSrv := serve(t, l.host, "tcp", 22, 25, 80, 8005, 8011, 9000)
	serve(t, l.host, "udp", 53, 54, 69, 514, 5353)
	clientSrv := serve(t, l.client, "tcp", 7000, 7001)

	const (
		estIn  = "edgefw-established-input"
		estOut = "edgefw-established-output"
		defIn  = "edgefw-default-input"
		defOut = "edgefw-default-output"
	)
	tests := []struct {
		name     string
		flow     flow
		outbound bool // the host opens the connection to the client
		want     outcome
		moved    []string
	}{
		{"tcp accepted v4", flow{"tcp", plainV4, hostV4, 80}, false, accepted, []string{"web", estIn, estOut}},
		{"tcp accepted v6", flow{"tcp", plainV6, hostV6, 80}, false, accepted, []string{"web", estIn, estOut}},
		{"tcp port range", flow{"tcp", plainV4, hostV4, 8005}, false, accepted, []string{"web", estIn, estOut}},
		{"tcp past the range dropped", flow{"tcp", plainV4, hostV4, 8011}, false, timedOut, []string{defIn}},
		{"tcp from except v4 dropped", flow{"tcp", exceptV4, hostV4, 80}, false, timedOut, []string{defIn}},
		{"tcp from except v6 dropped", flow{"tcp", exceptV6, hostV6, 80}, false, timedOut, []string{defIn}},
		{"tcp from named set v4", flow{"tcp", mgmtV4, hostV4, 9000}, false, accepted, []string{"mgmt-admin", estIn, estOut}},
		{"tcp from named set v6", flow{"tcp", mgmtV6, hostV6, 9000}, false, accepted, []string{"mgmt-admin", estIn, estOut}},
		{"tcp from outside the set dropped", flow{"tcp", plainV4, hostV4, 9000}, false, timedOut, []string{defIn}},
		{"tcp rejected with reset v4", flow{"tcp", plainV4, hostV4, 25}, false, refused, []string{"refuse-smtp", estOut}},
		{"tcp rejected with reset v6", flow{"tcp", plainV6, hostV6, 25}, false, refused, []string{"refuse-smtp", estOut}},
		{"udp accepted v4", flow{"udp", plainV4, hostV4, 53}, false, accepted, []string{"dns", estOut}},
		{"udp accepted v6 second port of the list", flow{"udp", plainV6, hostV6, 5353}, false, accepted, []string{"dns", estOut}},
		{"udp dropped", flow{"udp", plainV4, hostV4, 54}, false, timedOut, []string{defIn}},
		{"udp dropped v6", flow{"udp", plainV6, hostV6, 54}, false, timedOut, []string{defIn}},
		{"udp rejected v4", flow{"udp", plainV4, hostV4, 69}, false, refused, []string{"refuse-tftp", estOut}},
		{"udp rejected v6", flow{"udp", plainV6, hostV6, 69}, false, refused, []string{"refuse-tftp", estOut}},
		{"udp rejected with icmp", flow{"udp", plainV4, hostV4, 514}, false, refused, []string{"refuse-syslog", estOut}},
		{"udp rejected with icmpv6", flow{"udp", plainV6, hostV6, 514}, false, refused, []string{"refuse-syslog-v6", estOut}},
		{"failsafe before a drop of the source", flow{"tcp", suspectV4, hostV4, 22}, false, accepted, []string{"edgefw-failsafe", estIn, estOut}},
		{"drop of the source", flow{"tcp", suspectV4, hostV4, 80}, false, timedOut, []string{"drop-suspect"}},
		{"output accepted", flow{"tcp", hostV4, plainV4, 7000}, true, accepted, []string{"egress", estIn, estOut}},
		{"output default drop", flow{"tcp", hostV4, plainV4, 7001}, true, timedOut, []string{defOut}},
		{"output default drop v6", flow{"tcp", hostV6, plainV6, 7000}, true, timedOut, []string{defOut}},
		{"output udp default drop", flow{"udp", hostV4, plainV4, 53}, true, denied, []string{defOut}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns, srv := l.client, tcpSrv
			if tc.outbound {
				ns, srv = l.host, clientSrv
			}
			before := l.counters(t)
			got := tc.flow.try(t, ns, srv, tc.want)
			after := l.counters(t)
			if got != tc.want {
				t.Errorf("%s: %s, want %s", tc.flow, got, tc.want)
			}
			want := slices.Sorted(slices.Values(tc.moved))
			if diff := cmp.Diff(want, moved(before, after)); diff != "" {
				t.Errorf("%s: counters that moved (-want +got):\n%s", tc.flow, diff)
			}
		})
	}
}

// TestEdgeDefaultTraffic runs the policy that replaces the iptables
// DaemonSet: SSH and the Kubernetes API from anywhere, loopback and
// established traffic, and nothing else. (An empty failsafe list once
// compiled into an accept-everything rule; this is the test that would
// have caught it.)
func TestEdgeDefaultTraffic(t *testing.T) {
	l := newLab(t, plainV4, plainV6)
	l.apply(t, compileFile(t, "testdata/golden/edge-default.yaml"))
	srv := serve(t, l.host, "tcp", 22, 80, 6443)
	serve(t, l.host, "udp", 53)
	const (
		estIn  = "edgefw-established-input"
		estOut = "edgefw-established-output"
	)
	tests := []struct {
		name  string
		ns    *netnstest.NS
		flow  flow
		want  outcome
		moved []string
	}{
		{"ssh", l.client, flow{"tcp", plainV4, hostV4, 22}, accepted, []string{"ssh", estIn, estOut}},
		{"ssh v6", l.client, flow{"tcp", plainV6, hostV6, 22}, accepted, []string{"ssh", estIn, estOut}},
		{"kube-api", l.client, flow{"tcp", plainV4, hostV4, 6443}, accepted, []string{"kube-api", estIn, estOut}},
		{"anything else", l.client, flow{"tcp", plainV4, hostV4, 80}, timedOut, []string{"edgefw-default-input"}},
		{"anything else over udp", l.client, flow{"udp", plainV6, hostV6, 53}, timedOut, []string{"edgefw-default-input"}},
		{"loopback", l.host, flow{"tcp", "127.0.0.1", "127.0.0.1", 80}, accepted,
			[]string{"edgefw-loopback-input", "edgefw-loopback-output", estIn, estOut}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := l.counters(t)
			if got := tc.flow.try(t, tc.ns, srv, tc.want); got != tc.want {
				t.Errorf("%s: %s, want %s", tc.flow, got, tc.want)
			}
			want := slices.Sorted(slices.Values(tc.moved))
			if diff := cmp.Diff(want, moved(before, l.counters(t))); diff != "" {
				t.Errorf("%s: counters that moved (-want +got):\n%s", tc.flow, diff)
			}
		})
	}
}
