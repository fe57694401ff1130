package policy

import (
	"net"
	"net/netip"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	tunnelFields = []string{"name", "backend", "privateKeyFile", "listenPort", "addresses", "mtu", "peers"}
	peerFieldsWG = []string{"name", "publicKey", "presharedKeyFile", "endpoint", "allowedIPs", "persistentKeepalive"}
)

// MTU bounds: 576 is the smallest datagram every IPv4 host must accept
// (RFC 791), 1280 the IPv6 minimum link MTU (RFC 8200 section 5), 9000 a
// common jumbo frame.
const (
	minMTUv4 = 576
	minMTUv6 = 1280
	maxMTU   = 9000
)

// maxKeepalive is the largest persistent keepalive WireGuard can carry: the
// interval is a 16-bit number of seconds.
const maxKeepalive = maxUint16 * time.Second

func (d *decoder) tunnels(n *yaml.Node) {
	items, _ := d.list(n, "tunnels", "tunnels")
	for i, item := range items {
		if t, ok := d.tunnel(item, indexPath("tunnels", i)); ok {
			d.l.notePeerList(d, len(d.l.policy.Tunnels), item)
			d.l.policy.Tunnels = append(d.l.policy.Tunnels, t)
		}
	}
}

// tunnel decodes one WireGuard tunnel.
func (d *decoder) tunnel(n *yaml.Node, path string) (Tunnel, bool) {
	m := d.mapping(n, path, tunnelFields, nil)
	if m == nil {
		return Tunnel{}, false
	}
	t := Tunnel{Backend: BackendAuto, Pos: d.pos(n)}
	if v := d.require(m, "name", "a tunnel's name is its interface name, like wg0"); v != nil {
		p := joinPath(path, "name")
		if t.Name = d.name(v, p, maxIfNameLen); t.Name != "" {
			d.check(v, p, define(d.l.tunnels, "tunnel", t.Name, d.site(v, p)))
		}
	}
	if v := m.get("backend"); v != nil {
		s, _ := d.enum(v, joinPath(path, "backend"), "backend", backends)
		t.Backend = Backend(s)
	}
	if v := d.require(m, "privateKeyFile", "name the file holding the private key, like /etc/edgefw/keys/wg0.key; it is created if missing"); v != nil {
		t.PrivateKeyFile, _ = d.keyFile(v, joinPath(path, "privateKeyFile"))
		t.PrivateKeyFilePos = d.pos(v)
	}
	if v := m.get("listenPort"); v != nil {
		p := joinPath(path, "listenPort")
		if port, ok := d.port(v, p); ok {
			t.ListenPort = port
			d.check(v, p, d.l.listenOn(port, d.site(v, p)))
		}
	}
	hasV6 := false
	if v := d.require(m, "addresses", "list the interface's own addresses, like [10.0.0.2/24]"); v != nil {
		p := joinPath(path, "addresses")
		items, ok := d.list(v, p, "CIDRs")
		if ok && len(items) == 0 {
			d.check(v, p, errNoTunnelAddress)
		}
		for j, e := range items {
			if a, ok := d.prefix(e, indexPath(p, j), checkTunnelAddress); ok {
				t.Addresses = append(t.Addresses, a)
				hasV6 = hasV6 || a.Addr().Is6()
			}
		}
	}
	if v := m.get("mtu"); v != nil {
		if mtu, ok := d.integer(v, joinPath(path, "mtu"), mtuRange(hasV6)); ok {
			t.MTU = int(mtu)
		}
	}
	if v := m.get("peers"); v != nil {
		t.Peers = d.tunnelPeers(v, joinPath(path, "peers"))
	}
	return t, true
}

// keyFile decodes the path of a key file, made absolute.
func (d *decoder) keyFile(n *yaml.Node, path string) (string, bool) {
	s, ok := d.str(n, path)
	if !ok || !d.check(n, path, checkKeyFile(s)) {
		return "", false
	}
	return d.resolveAbs(n, path, s)
}

// tunnelPeers decodes a tunnel's peers.
func (d *decoder) tunnelPeers(n *yaml.Node, path string) []TunnelPeer {
	items, _ := d.list(n, path, "peers")
	var peers []TunnelPeer
	ts := newTunnelScope()
	for i, item := range items {
		p := indexPath(path, i)
		m := d.mapping(item, p, peerFieldsWG, nil)
		if m == nil {
			continue
		}
		peer := TunnelPeer{Pos: d.pos(item)}
		if v := d.require(m, "name", "name the peer like cluster-gw"); v != nil {
			np := joinPath(p, "name")
			if peer.Name = d.name(v, np, maxNameLen); peer.Name != "" {
				d.check(v, np, define(ts.peers, "peer", peer.Name, d.site(v, np)))
			}
		}
		if v := d.require(m, "publicKey", "write the peer's base64 public key, as edgefwctl pubkey prints it"); v != nil {
			kp := joinPath(p, "publicKey")
			if s, ok := d.str(v, kp); ok {
				if key, ok := parseKey(s); !ok {
					d.errorf(v, kp, "not a valid base64 WireGuard key of 32 bytes; write the 44 characters that edgefwctl pubkey prints")
				} else if d.check(v, kp, ts.useKey(key, d.site(v, kp))) {
					peer.PublicKey = key
				}
			}
		}
		if v := m.get("presharedKeyFile"); v != nil {
			peer.PresharedKeyFile, _ = d.keyFile(v, joinPath(p, "presharedKeyFile"))
			peer.PresharedKeyFilePos = d.pos(v)
		}
		// endpointIP is the endpoint's address if it is written as one.
		var endpointIP netip.Addr
		if v := m.get("endpoint"); v != nil {
			ep := joinPath(p, "endpoint")
			if s, ok := d.str(v, ep); ok && d.check(v, ep, checkEndpoint(s)) {
				peer.Endpoint = s
				endpointIP = endpointAddr(s)
			}
		}
		if v := d.require(m, "allowedIPs", "list the networks routed to this peer, like [10.0.0.0/24]"); v != nil {
			ap := joinPath(p, "allowedIPs")
			items, ok := d.list(v, ap, "CIDRs")
			if ok && len(items) == 0 {
				d.check(v, ap, errNoAllowedIP)
			}
			allowed := func(p netip.Prefix) error { return checkAllowedIP(p, endpointIP) }
			for j, e := range items {
				jp := indexPath(ap, j)
				if pfx, ok := d.prefix(e, jp, allowed); ok && d.check(e, jp, ts.route(pfx, d.site(e, jp))) {
					peer.AllowedIPs = append(peer.AllowedIPs, pfx)
				}
			}
		}
		if v := m.get("persistentKeepalive"); v != nil {
			peer.PersistentKeepalive, _ = d.keepalive(v, joinPath(p, "persistentKeepalive"))
		}
		peers = append(peers, peer)
	}
	return peers
}

// keepalive decodes a persistent keepalive: a duration like 25s, or seconds.
func (d *decoder) keepalive(n *yaml.Node, path string) (time.Duration, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		s, ok := d.integer(n, path, keepaliveRange)
		return time.Duration(s) * time.Second, ok
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, path, "must be a duration or a number of seconds, not %s; %s", describe(n), keepaliveValid)
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.errorf(n, path, "%q is not a duration; %s", n.Value, keepaliveValid)
		return 0, false
	}
	if !d.check(n, path, checkKeepalive(v)) {
		return 0, false
	}
	return v, true
}

// endpointAddr returns the address of a valid endpoint HOST:PORT whose HOST
// is an IP address (an IPv4-mapped one as IPv4), or the zero Addr if HOST is
// a DNS name.
func endpointAddr(endpoint string) netip.Addr {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// exampleBits is a usual prefix length of a tunnel subnet of a's family.
func exampleBits(a netip.Addr) int {
	if a.Is4() {
		return 24
	}
	return 64
}

// exampleNet is a private network of a's family, for suggestions.
func exampleNet(a netip.Addr) string {
	if a.Is4() {
		return "10.0.0.0/8"
	}
	return "fd00::/8"
}
