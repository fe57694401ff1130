package nft

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/policy"
)

// dispatchTrafficPolicy has a run of nine port rules, dispatched, with
// overlapping ranges, sources, an audit-mode rule, rejects and a limit;
// then a rule without ports and port rules inline after it.
const dispatchTrafficPolicy = `
version: 1
defaults: {input: drop, forward: drop, output: accept}
failsafe: [{protocol: tcp, port: 22}]
sets:
  mgmt: [192.0.2.128/25, "2001:db8::100/120"]
rules:
  - name: drop-suspect
    direction: input
    from: [{cidr: 192.0.2.66/32}]
    action: drop
  - name: mgmt-admin
    direction: input
    from: [{set: mgmt}]
    ports: [{protocol: tcp, port: 9000, endPort: 9010}]
    action: accept
  - name: audit-except
    direction: input
    from: [{cidr: 192.0.2.3/32}]
    ports: [{protocol: tcp, port: 80}, {protocol: tcp, port: 8000, endPort: 8100}]
    mode: audit
    action: drop
  - name: web
    direction: input
    from:
      - {cidr: 192.0.2.0/24, except: [192.0.2.3/32]}
      - {cidr: "2001:db8::/64", except: ["2001:db8::3/128"]}
    ports: [{protocol: tcp, port: 80}, {protocol: tcp, port: 8000, endPort: 8010}]
    action: accept
  - name: block-mid
    direction: input
    ports: [{protocol: tcp, port: 8008, endPort: 8012}]
    action: drop
  - name: alt
    direction: input
    ports: [{protocol: tcp, port: 8005, endPort: 8020}]
    action: accept
  - name: refuse-smtp
    direction: input
    ports: [{protocol: tcp, port: 25}]
    action: reject
  - name: dns
    direction: input
    ports: [{protocol: udp, port: 53}, {protocol: udp, port: 5353}, {protocol: tcp, port: 53}]
    action: accept
  - name: refuse-tftp
    direction: input
    ports: [{protocol: udp, port: 69}]
    action: reject
  - name: api
    direction: input
    ports: [{protocol: tcp, port: 6443}]
    limit: {rate: 1000/second, burst: 1000}
    action: accept
  - name: ping
    direction: input
    ports: [{protocol: icmp}, {protocol: icmpv6}]
    action: accept
  - name: metrics
    direction: input
    ports: [{protocol: tcp, port: 9100}]
    action: accept
`

// TestDispatchTraffic sends real packets through a dispatched ruleset and
// checks that the counters that move are those Trace names: the deciding
// rule's, the audit-mode rules' that saw the packet, and the
// established ones of the connection's later packets.
func TestDispatchTraffic(t *testing.T) {
	l := newLab(t, plainV4, exceptV4, suspectV4, mgmtV4, plainV6, exceptV6, mgmtV6)
	rs := compileYAML(t, dispatchTrafficPolicy)
	if !hasDispatch(rs, false) {
		t.Fatal("the policy is not dispatched")
	}
	l.apply(t, rs)
	tcpPorts := []int{22, 25, 53, 80, 6443, 8000, 8005, 8008, 8011, 8015, 8021, 9000, 9100}
	srv := serve(t, l.host, "tcp", tcpPorts...)
	serve(t, l.host, "udp", 53, 54, 69, 5353)
	flows := []flow{{"udp", plainV4, hostV4, 53}, {"udp", plainV6, hostV6, 5353}, {"udp", plainV4, hostV4, 54}, {"udp", plainV6, hostV6, 69}}
	for _, port := range tcpPorts {
		flows = append(flows, flow{"tcp", plainV4, hostV4, port}, flow{"tcp", exceptV4, hostV4, port})
	}
	flows = append(flows, flow{"tcp", mgmtV6, hostV6, 9000}, flow{"tcp", exceptV6, hostV6, 8005}, flow{"tcp", suspectV4, hostV4, 80})
	dispatched, direct := 0, 0
	for _, f := range flows {
		t.Run(strings.ReplaceAll(f.String(), "/", "_"), func(t *testing.T) {
			v := Trace(rs, Packet{Direction: policy.Input, Protocol: policy.Protocol(f.proto),
				Src: netip.MustParseAddr(f.from), Dst: netip.MustParseAddr(f.to), DstPort: uint16(f.port), Iif: l.hostIf})
			want, moves := trafficExpected(v)
			if strings.HasPrefix(v.Chain, prefixReserved+"dispatch-") {
				dispatched++
			}
			if strings.HasPrefix(v.Nft, "counter name ") {
				// Decided by a direct map's key: counted through
				// its object map, without a chain.
				direct++
			}
			before := l.counters(t)
			if got := f.try(t, l.client, srv, want); got != want {
				t.Errorf("%s: %s, want %s as traced: %s", f, got, want, v.Explanation)
			}
			if d := cmp.Diff(moves, moved(before, l.counters(t))); d != "" {
				t.Errorf("%s: counters that moved (-traced +kernel):\n%s\ntrace: %s", f, d, v.Explanation)
			}
		})
	}
	if dispatched < len(flows)/3 {
		t.Errorf("only %d of %d flows were decided in a dispatch chain", dispatched, len(flows))
	}
	if direct < 4 {
		t.Errorf("only %d of %d flows were decided by a direct map (dns on tcp and udp, alt's 8015)", direct, len(flows))
	}
}

// trafficExpected is what a client sees of a connection whose first
// packet is traced to v, and the counters its packets move (sorted).
func trafficExpected(v Verdict) (outcome, []string) {
	moves := []string{v.Counter}
	for _, a := range v.Audited {
		moves = append(moves, a.Counter)
	}
	var o outcome
	switch v.Action {
	case policy.Accept:
		o = accepted
		moves = append(moves, implicitName("established", policy.Output))
		if v.Packet.Protocol == policy.TCP {
			moves = append(moves, implicitName("established", policy.Input))
		}
	case policy.Reject:
		o = refused
		moves = append(moves, implicitName("established", policy.Output))
	default:
		o = timedOut
	}
	slices.Sort(moves)
	return o, slices.Compact(moves)
}
