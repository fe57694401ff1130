package nft

import (
	"fmt"
	"testing"
)

// auditTrafficPolicy watches tcp/80 with a reject rule whose two
// alternatives (an address and the host's interface) both match the
// client, before the rule that accepts it.
const auditTrafficPolicy = `
version: 1
rules:
  - name: watch
    direction: input
    from: [{cidr: 192.0.2.0/24}, {interface: %s}]
    ports: [{protocol: tcp, port: 80}]
    action: reject
    mode: %s
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 80}]
    action: accept
`

// TestAuditModeTraffic sends real packets past a rule in audit mode: the
// connection gets through to the rule after it, the audit rule counts its
// first packet once although both of its alternatives match it, and
// switched to enforce, the same rule rejects the next connection, counting
// on from where it was.
func TestAuditModeTraffic(t *testing.T) {
	l := newLab(t, "192.0.2.10")
	srv := serve(t, l.host, "tcp", 80)
	f := flow{"tcp", "192.0.2.10", hostV4, 80}

	l.apply(t, compileYAML(t, fmt.Sprintf(auditTrafficPolicy, l.hostIf, "audit")))
	if got := f.try(t, l.client, srv, accepted); got != accepted {
		t.Fatalf("%s past the audit rule: %s, want %s", f, got, accepted)
	}
	audited := l.counters(t)
	if audited["watch"].Packets != 1 || audited["web"].Packets != 1 {
		t.Errorf("after one connection: watch counted %d packets, web %d; want 1 and 1 (the SYN, counted once by watch)",
			audited["watch"].Packets, audited["web"].Packets)
	}

	res := l.apply(t, compileYAML(t, fmt.Sprintf(auditTrafficPolicy, l.hostIf, "enforce")))
	if res.Full {
		t.Errorf("the switch to enforce replaced the table: %q", res.Changes)
	}
	if c := l.counters(t)["watch"]; c != audited["watch"] {
		t.Errorf("the switch to enforce changed watch's counter from %+v to %+v", audited["watch"], c)
	}
	if got := f.try(t, l.client, srv, refused); got != refused {
		t.Fatalf("%s past the enforced rule: %s, want %s", f, got, refused)
	}
	enforced := l.counters(t)
	if enforced["watch"].Packets != audited["watch"].Packets+1 || enforced["web"] != audited["web"] {
		t.Errorf("after the refused connection: watch %d packets (want %d), web %+v (want %+v)",
			enforced["watch"].Packets, audited["watch"].Packets+1, enforced["web"], audited["web"])
	}
}
