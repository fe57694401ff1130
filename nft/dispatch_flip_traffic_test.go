package nft

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/edgefw/edgefw/policy"
)

// directFlipPolicy has eight port rules, dispatched to direct maps; web
// (tcp 8003) accepts or drops as the policy says.
func directFlipPolicy(webAction string) string {
	var b strings.Builder
	b.WriteString("version: 1\ndefaults: {input: drop, forward: drop, output: accept}\nrules:\n")
	for port := 8001; port <= 8008; port++ {
		name, action := fmt.Sprintf("p%d", port), "accept"
		if port == 8003 {
			name, action = "web", webAction
		}
		fmt.Fprintf(&b, "  - {name: %s, direction: input, ports: [{protocol: tcp, port: %d}], action: %s}\n", name, port, action)
	}
	return b.String()
}

// TestDirectMapFlipTraffic changes the action of a rule whose key is in a
// direct map, with real traffic: after the flip its counter reads zero,
// as metrics must not report the accepted packets as drops, and then
// counts the dropped ones; a counter of the map whose rule stays as it
// was keeps its value.
func TestDirectMapFlipTraffic(t *testing.T) {
	l := newLab(t, plainV4)
	accepting := compileYAML(t, directFlipPolicy("accept"))
	dropping := compileYAML(t, directFlipPolicy("drop"))
	for _, rs := range []*Ruleset{accepting, dropping} {
		v := Trace(rs, Packet{Direction: policy.Input, Protocol: policy.TCP,
			Src: netip.MustParseAddr(plainV4), Dst: netip.MustParseAddr(hostV4), DstPort: 8003, Iif: l.hostIf})
		if v.Counter != "web" || !strings.HasPrefix(v.Nft, "counter name ") {
			t.Fatalf("tcp 8003 is decided by %s (%s), not by web's key in a direct map", v.Counter, v.Nft)
		}
	}
	srv := serve(t, l.host, "tcp", 8001, 8003)
	web, other := flow{"tcp", plainV4, hostV4, 8003}, flow{"tcp", plainV4, hostV4, 8001}

	l.apply(t, accepting)
	for _, f := range []flow{web, other} {
		if got := f.try(t, l.client, srv, accepted); got != accepted {
			t.Fatalf("%s: %s before the flip, want %s", f, got, accepted)
		}
	}
	before := l.counters(t)
	if before["web"].Packets == 0 || before["p8001"].Packets == 0 {
		t.Fatalf("the accepted connections were not counted: %+v", before)
	}

	l.apply(t, dropping)
	after := l.counters(t)
	if after["web"] != (Counter{}) {
		t.Errorf("web's counter after its action went from accept to drop: %+v, want zero", after["web"])
	}
	if after["p8001"] != before["p8001"] {
		t.Errorf("p8001's counter went from %+v to %+v; want it kept", before["p8001"], after["p8001"])
	}
	if got := web.try(t, l.client, srv, timedOut); got != timedOut {
		t.Fatalf("%s: %s after the flip, want %s", web, got, timedOut)
	}
	if c := l.counters(t)["web"]; c.Packets == 0 {
		t.Errorf("web's counter did not count the dropped packets: %+v", c)
	}
}
