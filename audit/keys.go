package audit

import (
	"cmp"
	"fmt"
	"net/netip"
	"strconv"
)

// Protocol is an IP protocol number (the IPv4 protocol field, the IPv6
// next header). In JSON and text it is named as nftables names it:
// "tcp", "udp", "sctp", "icmp", "icmpv6", or else its number.
type Protocol uint8

// The protocols a policy names.
const (
	ICMP   Protocol = 1
	TCP    Protocol = 6
	UDP    Protocol = 17
	ICMPv6 Protocol = 58
	SCTP   Protocol = 132
)

// String names the protocol, or gives its number.
func (p Protocol) String() string {
	switch p {
	case ICMP:
		return "icmp"
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case ICMPv6:
		return "icmpv6"
	case SCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// ParseProtocol reads a protocol name as String writes it, or a number
// from 0 to 255.
func ParseProtocol(s string) (Protocol, error) {
	for _, p := range []Protocol{ICMP, TCP, UDP, ICMPv6, SCTP} {
		if s == p.String() {
			return p, nil
		}
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("protocol %q: want tcp, udp, sctp, icmp, icmpv6 or a number from 0 to 255", s)
	}
	return Protocol(n), nil
}

// MarshalText names the protocol.
func (p Protocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a protocol name or number.
func (p *Protocol) UnmarshalText(b []byte) error {
	v, err := ParseProtocol(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// addrKey is an address as a sketch key. It holds no pointer (a
// netip.Addr does, for its zone), so the maps and slices of the sketches
// are not scanned by the garbage collector, and it is 17 bytes, not 24.
type addrKey struct {
	b  [16]byte
	v6 bool
}

func keyOf(a netip.Addr) addrKey { return addrKey{b: a.As16(), v6: !a.Is4()} }

func (k addrKey) addr() netip.Addr {
	a := netip.AddrFrom16(k.b)
	if !k.v6 {
		return a.Unmap()
	}
	return a
}

func (k addrKey) compare(o addrKey) int { return k.addr().Compare(o.addr()) }

// portKey is a destination port of a protocol (0 for protocols without
// ports, such as ICMP).
type portKey struct {
	proto Protocol
	port  uint16
}

func (k portKey) compare(o portKey) int {
	return cmp.Or(cmp.Compare(k.proto, o.proto), cmp.Compare(k.port, o.port))
}

// flowKey is a source with a destination port: who knocked where.
type flowKey struct {
	src   addrKey
	proto Protocol
	port  uint16
}

func (k flowKey) compare(o flowKey) int {
	return cmp.Or(k.src.compare(o.src), portKey{k.proto, k.port}.compare(portKey{o.proto, o.port}))
}
