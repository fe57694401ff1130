package wg

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func testKey(b byte) wgtypes.Key { return wgtypes.Key{0: b, 31: b} }

func ipNets(cidrs ...string) []net.IPNet {
	var ps []netip.Prefix
	for _, c := range cidrs {
		ps = append(ps, netip.MustParsePrefix(c))
	}
	return prefixesToIPNets(ps)
}

func udpAddr(s string) *net.UDPAddr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func ptr[T any](v T) *T { return &v }

// declaredPeer is a fully specified declared peer, as desiredPeers makes it.
func declaredPeer(key byte, endpoint string, allowed ...string) wgtypes.PeerConfig {
	c := wgtypes.PeerConfig{
		PublicKey:                   testKey(key),
		PresharedKey:                &wgtypes.Key{},
		PersistentKeepaliveInterval: ptr(time.Duration(0)),
		AllowedIPs:                  ipNets(allowed...),
	}
	if endpoint != "" {
		c.Endpoint = udpAddr(endpoint)
	}
	return c
}

// runningPeer is a peer as the kernel reports it (IPv4 endpoints as 16-byte
// addresses).
func runningPeer(key byte, endpoint string, allowed ...string) wgtypes.Peer {
	p := wgtypes.Peer{PublicKey: testKey(key), AllowedIPs: ipNets(allowed...)}
	if endpoint != "" {
		a := udpAddr(endpoint)
		p.Endpoint = &net.UDPAddr{IP: a.IP.To16(), Port: a.Port}
	}
	return p
}

func TestDiffPeers(t *testing.T) {
	a := func() wgtypes.PeerConfig { return declaredPeer(1, "192.0.2.1:51820", "10.0.0.1/32") }
	b := func() wgtypes.PeerConfig { return declaredPeer(2, "192.0.2.2:51820", "10.0.0.2/32", "10.96.0.0/12") }
	aWithPSK := func() wgtypes.PeerConfig {
		c := a()
		c.PresharedKey = ptr(testKey(9))
		c.PersistentKeepaliveInterval = ptr(25 * time.Second)
		return c
	}
	runA := func() wgtypes.Peer { return runningPeer(1, "192.0.2.1:51820", "10.0.0.1/32") }
	runB := func() wgtypes.Peer { return runningPeer(2, "192.0.2.2:51820", "10.0.0.2/32", "10.96.0.0/12") }

	tests := []struct {
		name     string
		declared []wgtypes.PeerConfig
		running  []wgtypes.Peer
		want     []wgtypes.PeerConfig
	}{
		{
			name:     "nothing changed",
			declared: []wgtypes.PeerConfig{a(), b()},
			running:  []wgtypes.Peer{runA(), runB()},
		},
		{
			name:     "nothing declared, nothing running",
			declared: nil,
			running:  nil,
		},
		{
			name:     "add one peer: full config, nothing for the other",
			declared: []wgtypes.PeerConfig{a(), b()},
			running:  []wgtypes.Peer{runA()},
			want: []wgtypes.PeerConfig{{
				PublicKey:  testKey(2),
				Endpoint:   udpAddr("192.0.2.2:51820"),
				AllowedIPs: ipNets("10.0.0.2/32", "10.96.0.0/12"),
			}},
		},
		{
			name:     "add peer with preshared key and keepalive",
			declared: []wgtypes.PeerConfig{aWithPSK()},
			want: []wgtypes.PeerConfig{{
				PublicKey:                   testKey(1),
				PresharedKey:                ptr(testKey(9)),
				Endpoint:                    udpAddr("192.0.2.1:51820"),
				PersistentKeepaliveInterval: ptr(25 * time.Second),
				AllowedIPs:                  ipNets("10.0.0.1/32"),
			}},
		},
		{
			name:     "remove one peer",
			declared: []wgtypes.PeerConfig{a()},
			running:  []wgtypes.Peer{runA(), runB()},
			want:     []wgtypes.PeerConfig{{PublicKey: testKey(2), Remove: true}},
		},
		{
			name:     "change allowed IPs: replace only for that peer",
			declared: []wgtypes.PeerConfig{a(), declaredPeer(2, "192.0.2.2:51820", "10.0.0.2/32", "10.244.0.0/16")},
			running:  []wgtypes.Peer{runA(), runB()},
			want: []wgtypes.PeerConfig{{
				PublicKey:         testKey(2),
				UpdateOnly:        true,
				ReplaceAllowedIPs: true,
				AllowedIPs:        ipNets("10.0.0.2/32", "10.244.0.0/16"),
			}},
		},
		{
			name:     "allowed IPs in another order are the same",
			declared: []wgtypes.PeerConfig{declaredPeer(2, "192.0.2.2:51820", "10.96.0.0/12", "10.0.0.2/32")},
			running:  []wgtypes.Peer{runB()},
		},
		{
			name:     "change endpoint: only the endpoint",
			declared: []wgtypes.PeerConfig{declaredPeer(1, "192.0.2.9:51820", "10.0.0.1/32"), b()},
			running:  []wgtypes.Peer{runA(), runB()},
			want:     []wgtypes.PeerConfig{{PublicKey: testKey(1), UpdateOnly: true, Endpoint: udpAddr("192.0.2.9:51820")}},
		},
		{
			name:     "endpoint left alone (nil) does not undo roaming",
			declared: []wgtypes.PeerConfig{declaredPeer(1, "", "10.0.0.1/32")},
			running:  []wgtypes.Peer{runningPeer(1, "198.51.100.7:40000", "10.0.0.1/32")},
		},
		{
			name:     "IPv6 endpoint unchanged",
			declared: []wgtypes.PeerConfig{declaredPeer(1, "[2001:db8::1]:51820", "fd00::1/128")},
			running:  []wgtypes.Peer{runningPeer(1, "[2001:db8::1]:51820", "fd00::1/128")},
		},
		{
			name:     "preshared key added and keepalive changed",
			declared: []wgtypes.PeerConfig{aWithPSK()},
			running:  []wgtypes.Peer{runA()},
			want: []wgtypes.PeerConfig{{
				PublicKey:                   testKey(1),
				UpdateOnly:                  true,
				PresharedKey:                ptr(testKey(9)),
				PersistentKeepaliveInterval: ptr(25 * time.Second),
			}},
		},
		{
			name:     "preshared key removed is cleared with the zero key",
			declared: []wgtypes.PeerConfig{a()},
			running:  []wgtypes.Peer{func() wgtypes.Peer { p := runA(); p.PresharedKey = testKey(9); return p }()},
			want:     []wgtypes.PeerConfig{{PublicKey: testKey(1), UpdateOnly: true, PresharedKey: &wgtypes.Key{}}},
		},
		{
			name:     "swap: removals first, then additions in declared order",
			declared: []wgtypes.PeerConfig{declaredPeer(4, "", "10.0.0.4/32"), declaredPeer(3, "", "10.0.0.3/32")},
			running:  []wgtypes.Peer{runB(), runA()},
			want: []wgtypes.PeerConfig{
				{PublicKey: testKey(1), Remove: true},
				{PublicKey: testKey(2), Remove: true},
				{PublicKey: testKey(4), AllowedIPs: ipNets("10.0.0.4/32")},
				{PublicKey: testKey(3), AllowedIPs: ipNets("10.0.0.3/32")},
			},
		},
		{
			name:     "a key declared twice counts once",
			declared: []wgtypes.PeerConfig{a(), declaredPeer(1, "192.0.2.9:1", "10.9.9.9/32")},
			running:  []wgtypes.Peer{runA()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diffPeers(tt.declared, tt.running)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("diffPeers() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWantEndpoint(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	target := netip.MustParseAddrPort("192.0.2.1:51820")
	roamed := func(handshake time.Time) *wgtypes.Peer {
		p := runningPeer(1, "198.51.100.7:40000")
		p.LastHandshakeTime = handshake
		return &p
	}
	tests := []struct {
		name    string
		lastSet netip.AddrPort
		running *wgtypes.Peer
		want    bool
	}{
		{"new peer", netip.AddrPort{}, nil, true},
		{"running without endpoint", target, &wgtypes.Peer{}, true},
		{"declared address changed", netip.MustParseAddrPort("192.0.2.5:51820"), roamed(now.Add(-time.Second)), true},
		{"nothing written or assumed, running elsewhere", netip.AddrPort{}, roamed(now.Add(-time.Second)), true},
		{"roamed, session alive: leave it", target, roamed(now.Add(-10 * time.Second)), false},
		{"roamed, session exactly at reject-after-time", target, roamed(now.Add(-RejectAfterTime)), false},
		{"roamed, session dead", target, roamed(now.Add(-RejectAfterTime - time.Second)), true},
		{"roamed, never handshaked", target, roamed(time.Time{}), true},
		{"roamed, never handshaked (epoch)", target, roamed(time.Unix(0, 0)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wantEndpoint(target, tt.lastSet, tt.running, now); got != tt.want {
				t.Errorf("wantEndpoint() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAssumedLastSet(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	target := netip.MustParseAddrPort("192.0.2.1:51820")
	written := netip.MustParseAddrPort("192.0.2.5:51820")
	running := func(endpoint string, handshake time.Time) *wgtypes.Peer {
		p := runningPeer(1, endpoint)
		p.LastHandshakeTime = handshake
		return &p
	}
	tests := []struct {
		name    string
		lastSet netip.AddrPort
		running *wgtypes.Peer
		want    netip.AddrPort
	}{
		{"written by this manager: kept", written, running("198.51.100.7:40000", now), written},
		{"not running", netip.AddrPort{}, nil, netip.AddrPort{}},
		{"running without endpoint", netip.AddrPort{}, &wgtypes.Peer{}, netip.AddrPort{}},
		{"restart, running at the target", netip.AddrPort{}, running("192.0.2.1:51820", time.Time{}), target},
		{"restart, roamed with a live session", netip.AddrPort{}, running("198.51.100.7:40000", now.Add(-RejectAfterTime)), target},
		{"restart, elsewhere with a dead session", netip.AddrPort{}, running("198.51.100.7:40000", now.Add(-RejectAfterTime-time.Second)), netip.AddrPort{}},
		{"restart, elsewhere, never handshaked", netip.AddrPort{}, running("198.51.100.7:40000", time.Unix(0, 0)), netip.AddrPort{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := assumedLastSet(target, tt.lastSet, tt.running, now)
			if got != tt.want {
				t.Errorf("assumedLastSet() = %v, want %v", got, tt.want)
			}
			// Together with wantEndpoint: only a peer without a live
			// session elsewhere gets the target written.
			if tt.lastSet.IsValid() || tt.running == nil || tt.running.Endpoint == nil {
				return
			}
			write := wantEndpoint(target, got, tt.running, now)
			dead := !handshakeFresh(tt.running.LastHandshakeTime, now)
			if write != dead {
				t.Errorf("wantEndpoint after assumedLastSet = %v, want %v", write, dead)
			}
		})
	}
}

func prefixes(cidrs ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cidrs {
		out = append(out, netip.MustParsePrefix(c))
	}
	return out
}

func TestRoutesFor(t *testing.T) {
	tests := []struct {
		name      string
		addresses []netip.Prefix
		allowed   []netip.Prefix
		want      []netip.Prefix
	}{
		{
			name:      "inside the interface network: no route",
			addresses: prefixes("10.0.0.2/24"),
			allowed:   prefixes("10.0.0.0/24", "10.0.0.7/32"),
		},
		{
			name:      "outside: one route each, sorted, de-duplicated",
			addresses: prefixes("10.0.0.2/24"),
			allowed:   prefixes("10.96.0.0/12", "10.0.0.0/24", "10.244.0.0/16", "10.96.0.0/12"),
			want:      prefixes("10.96.0.0/12", "10.244.0.0/16"),
		},
		{
			name:      "wider than the interface network needs a route",
			addresses: prefixes("10.0.0.2/24"),
			allowed:   prefixes("10.0.0.0/16"),
			want:      prefixes("10.0.0.0/16"),
		},
		{
			name:      "IPv6, and families never cover each other",
			addresses: prefixes("fd00::2/64", "10.0.0.2/24"),
			allowed:   prefixes("fd00::/64", "fd01::/64", "::ffff:10.0.0.0/120"),
			want:      prefixes("::ffff:10.0.0.0/120", "fd01::/64"),
		},
		{
			name:    "host bits are masked",
			allowed: prefixes("10.1.2.3/16"),
			want:    prefixes("10.1.0.0/16"),
		},
		{
			name:    "never a default route, even with host bits",
			allowed: prefixes("0.0.0.0/0", "::/0", "10.1.2.3/0", "10.96.0.0/12", "0.0.0.0/1"),
			want:    prefixes("0.0.0.0/1", "10.96.0.0/12"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := routesFor(tt.addresses, tt.allowed)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("routesFor() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffAddresses(t *testing.T) {
	add, del := diffAddresses(
		prefixes("10.0.0.2/24", "fd00::2/64"),
		prefixes("10.0.0.2/16", "fd00::2/64", "fe80::1234/64", "192.0.2.9/24"),
	)
	cmpPrefix := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	if diff := cmp.Diff(prefixes("10.0.0.2/24"), add, cmpPrefix); diff != "" {
		t.Errorf("add mismatch (-want +got):\n%s", diff)
	}
	// The kernel's link-local address stays.
	if diff := cmp.Diff(prefixes("10.0.0.2/16", "192.0.2.9/24"), del, cmpPrefix); diff != "" {
		t.Errorf("del mismatch (-want +got):\n%s", diff)
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in      string
		want    endpoint
		wantErr bool
	}{
		{in: "192.0.2.1:51820", want: endpoint{addr: netip.MustParseAddr("192.0.2.1"), port: 51820}},
		{in: "[2001:db8::1]:51820", want: endpoint{addr: netip.MustParseAddr("2001:db8::1"), port: 51820}},
		{in: "gw.cluster.example:51820", want: endpoint{host: "gw.cluster.example", port: 51820}},
		{in: "gw.cluster.example", wantErr: true},
		{in: "gw.cluster.example:0", wantErr: true},
		{in: "gw.cluster.example:70000", wantErr: true},
		{in: ":51820", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseEndpoint(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseEndpoint(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("parseEndpoint(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestPickAddress(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if got, _ := pickAddress([]netip.Addr{b, a}, a); got != a {
		t.Errorf("current address still answered: got %v, want it kept (%v)", got, a)
	}
	if got, _ := pickAddress([]netip.Addr{b, a}, netip.MustParseAddr("192.0.2.3")); got != b {
		t.Errorf("current address gone: got %v, want first answer %v", got, b)
	}
	if _, ok := pickAddress(nil, a); ok {
		t.Error("no answers: got ok")
	}
}
