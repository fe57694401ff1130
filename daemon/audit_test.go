package daemon

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// ipv4TCP builds a minimal IPv4+TCP header with the given source and port.
func ipv4TCP(src string, dport uint16) []byte {
	b := make([]byte, 40)
	b[0] = 0x45
	b[9] = 6
	a := netip.MustParseAddr(src).As4()
	copy(b[12:16], a[:])
	binary.BigEndian.PutUint16(b[22:24], dport)
	return b
}

func ipv6UDP(src string, dport uint16) []byte {
	b := make([]byte, 48)
	b[0] = 0x60
	b[6] = 17
	a := netip.MustParseAddr(src).As16()
	copy(b[8:24], a[:])
	binary.BigEndian.PutUint16(b[42:44], dport)
	return b
}

func TestAuditAggregatesByRuleSourceAndPort(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	a := NewAudit(func() time.Time { return now })
	for range 3 {
		a.Record("edgefw-default-input ", ipv4TCP("198.51.100.7", 8080))
	}
	a.Record("drop-blocklisted ", ipv6UDP("2001:db8::9", 53))
	a.Record("edgefw-default-input ", ipv4TCP("198.51.100.7", 22))
	a.Record("", ipv4TCP("198.51.100.7", 22))          // no rule: ignored
	a.Record("edgefw-default-input ", []byte{0x45, 0}) // truncated: ignored

	got := a.Snapshot()
	if len(got) != 3 {
		t.Fatalf("got %d records, want 3: %+v", len(got), got)
	}
	want := DropRecord{Rule: "edgefw-default-input", Source: "198.51.100.7", Protocol: "tcp", Port: 8080, Packets: 3, First: now, Last: now}
	if got[0] != want {
		t.Errorf("top record = %+v, want %+v", got[0], want)
	}
	var v6 *DropRecord
	for i := range got {
		if got[i].Rule == "drop-blocklisted" {
			v6 = &got[i]
		}
	}
	if v6 == nil || v6.Source != "2001:db8::9" || v6.Protocol != "udp" || v6.Port != 53 {
		t.Errorf("IPv6 record = %+v", v6)
	}
}

func TestAuditMemoryIsBounded(t *testing.T) {
	clock := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	a := NewAudit(func() time.Time { clock = clock.Add(time.Millisecond); return clock })
	for i := range maxDropRecords + 500 {
		src := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
		a.Record("edgefw-default-input", ipv4TCP(src, 22))
	}
	got := a.Snapshot()
	if len(got) != maxDropRecords {
		t.Fatalf("kept %d records, want the bound %d", len(got), maxDropRecords)
	}
	for _, r := range got {
		if r.Source == "10.0.0.0" {
			t.Fatalf("the oldest record survived eviction")
		}
	}
}

func TestAuditCountsOnlyDeniedRules(t *testing.T) {
	h := newHarness(t)
	h.write(t, `version: 1
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 443}]
    action: accept
    log: true
  - name: telnet
    direction: input
    ports: [{protocol: tcp, port: 23}]
    action: reject
    log: true
`)
	d := h.daemon(t)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"web": false, "telnet": true, "edgefw-default-input": true} {
		if got := d.denies(name); got != want {
			t.Errorf("denies(%q) = %v, want %v", name, got, want)
		}
	}
}
