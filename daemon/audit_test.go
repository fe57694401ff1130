package daemon

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/edgefw/edgefw/audit"
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

// TestParsePacket reads source, protocol and destination port from the
// packets nflog hands over, from their network header.
func TestParsePacket(t *testing.T) {
	icmp := ipv4TCP("192.0.2.1", 0)
	icmp[9] = 1
	sctp := ipv4TCP("192.0.2.1", 38412)
	sctp[9] = 132
	withOptions := make([]byte, 48) // IHL 6: four bytes of options
	withOptions[0], withOptions[9] = 0x46, 17
	copy(withOptions[12:16], []byte{198, 51, 100, 4})
	binary.BigEndian.PutUint16(withOptions[26:28], 53)
	icmpv6 := ipv6UDP("2001:db8::1", 0)
	icmpv6[6] = 58
	fragment := ipv6UDP("2001:db8::1", 53)
	fragment[6] = 44 // an extension header, not followed
	for _, tc := range []struct {
		name   string
		packet []byte
		src    string
		proto  audit.Protocol
		port   uint16
		ok     bool
	}{
		{"ipv4 tcp", ipv4TCP("198.51.100.7", 8080), "198.51.100.7", audit.TCP, 8080, true},
		{"ipv4 options", withOptions, "198.51.100.4", audit.UDP, 53, true},
		{"ipv4 icmp", icmp, "192.0.2.1", audit.ICMP, 0, true},
		{"ipv4 sctp", sctp, "192.0.2.1", audit.SCTP, 38412, true},
		{"ipv6 udp", ipv6UDP("2001:db8::9", 53), "2001:db8::9", audit.UDP, 53, true},
		{"ipv6 icmpv6", icmpv6, "2001:db8::1", audit.ICMPv6, 0, true},
		{"ipv6 extension header", fragment, "2001:db8::1", 44, 0, true},
		{"truncated ipv4", []byte{0x45, 0}, "", 0, 0, false},
		{"truncated ipv6", make([]byte, 20), "", 0, 0, false},
		{"empty", nil, "", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "truncated ipv6" {
				tc.packet[0] = 0x60
			}
			src, proto, port, ok := parsePacket(tc.packet)
			if ok != tc.ok || proto != tc.proto || port != tc.port || ok && src != netip.MustParseAddr(tc.src) {
				t.Errorf("parsePacket = %v %v %d %v, want %s %v %d %v", src, proto, port, ok, tc.src, tc.proto, tc.port, tc.ok)
			}
		})
	}
	if _, ok := sampleOf("  ", ipv4TCP("192.0.2.1", 22), time.Now()); ok {
		t.Error("a packet without a rule name in its prefix was taken")
	}
	if s, ok := sampleOf("edgefw-default-input ", ipv4TCP("192.0.2.1", 22), time.Now()); !ok || s.Rule != "edgefw-default-input" {
		t.Errorf("prefix with nft's trailing space: %+v %v", s, ok)
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
