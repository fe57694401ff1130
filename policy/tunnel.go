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
		t.Name = d.name(v, joinPath(path, "name"), maxIfNameLen)
		if t.Name != "" {
			d.l.define(d.l.tunnelDefs, "tunnel", t.Name, d.pos(v), joinPath(path, "name"))
		}
	}
	if v := m.get("backend"); v != nil {
		s, _ := d.enum(v, joinPath(path, "backend"), "backend", string(BackendAuto), string(BackendKernel), string(BackendUserspace))
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
			if first, dup := d.l.listenPorts[port]; dup {
				d.errorf(v, p, "listen port %d is already used by the tunnel at %s:%d; choose another port", port, first.File, first.Line)
			} else {
				d.l.listenPorts[port] = d.pos(v)
			}
		}
	}
	hasV6 := false
	if v := d.require(m, "addresses", "list the interface's own addresses, like [10.0.0.2/24]"); v != nil {
		p := joinPath(path, "addresses")
		items, ok := d.list(v, p, "CIDRs")
		if ok && len(items) == 0 {
			d.errorf(v, p, "a tunnel needs at least one address, like [10.0.0.2/24]")
		}
		for j, e := range items {
			a, ok := d.prefix(e, indexPath(p, j), true)
			if !ok {
				continue
			}
			// The kernel adds a connected route for an address's prefix.
			if a.Bits() == 0 {
				d.errorf(e, indexPath(p, j), "%s has prefix length 0, so the kernel would route every %s address through the tunnel, taking over the host's default route; an interface address needs a prefix length of at least 1, usually the tunnel subnet's, like %s",
					a, familyName(a.Addr()), netip.PrefixFrom(a.Addr(), exampleBits(a.Addr())))
				continue
			}
			t.Addresses = append(t.Addresses, a)
			hasV6 = hasV6 || a.Addr().Is6()
		}
	}
	if v := m.get("mtu"); v != nil {
		p := joinPath(path, "mtu")
		lo, note := int64(minMTUv4), ""
		if hasV6 {
			lo, note = minMTUv6, "; the tunnel has an IPv6 address, and IPv6 needs at least 1280"
		}
		var mtu int64
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" && v.Decode(&mtu) == nil && (mtu < lo || mtu > maxMTU) {
			d.errorf(v, p, "mtu %s is out of range; valid values are %d to %d%s", v.Value, lo, maxMTU, note)
		} else if mtu, ok := d.integer(v, p, "mtu", lo, maxMTU); ok {
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
	if !ok {
		return "", false
	}
	if s == "" {
		d.errorf(n, path, "must name a key file, like /etc/edgefw/keys/wg0.key")
		return "", false
	}
	return d.resolveAbs(n, path, s)
}

// tunnelPeers decodes a tunnel's peers. WireGuard identifies a peer by its
// public key and routes each allowed IP to exactly one peer (a later peer
// silently takes it over), so both must be unique within the tunnel.
func (d *decoder) tunnelPeers(n *yaml.Node, path string) []TunnelPeer {
	items, _ := d.list(n, path, "peers")
	var peers []TunnelPeer
	names := map[string]Pos{}
	keys := map[[wireGuardKeyLen]byte]Pos{}
	routes := map[netip.Prefix]Pos{}
	for i, item := range items {
		p := indexPath(path, i)
		m := d.mapping(item, p, peerFieldsWG, nil)
		if m == nil {
			continue
		}
		peer := TunnelPeer{Pos: d.pos(item)}
		if v := d.require(m, "name", "name the peer like cluster-gw"); v != nil {
			peer.Name = d.name(v, joinPath(p, "name"), maxNameLen)
			if peer.Name != "" {
				d.l.define(names, "peer", peer.Name, d.pos(v), joinPath(p, "name"))
			}
		}
		if v := d.require(m, "publicKey", "write the peer's base64 public key, as edgefwctl pubkey prints it"); v != nil {
			kp := joinPath(p, "publicKey")
			if s, ok := d.str(v, kp); ok {
				if key, ok := parseKey(s); !ok {
					d.errorf(v, kp, "not a valid base64 WireGuard key of 32 bytes; write the 44 characters that edgefwctl pubkey prints")
				} else if first, dup := keys[key]; dup {
					d.errorf(v, kp, "the same public key is used by the peer at %s:%d; each peer of a tunnel needs its own key", first.File, first.Line)
				} else {
					peer.PublicKey = key
					keys[key] = d.pos(v)
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
			if s, ok := d.str(v, ep); ok {
				if err := checkEndpoint(s); err != nil {
					d.errorf(v, ep, "%v", err)
				} else {
					peer.Endpoint = s
					endpointIP = endpointAddr(s)
				}
			}
		}
		if v := d.require(m, "allowedIPs", "list the networks routed to this peer, like [10.0.0.0/24]"); v != nil {
			ap := joinPath(p, "allowedIPs")
			items, ok := d.list(v, ap, "CIDRs")
			if ok && len(items) == 0 {
				d.errorf(v, ap, "a peer needs at least one allowed IP, like [10.0.0.0/24]")
			}
			for j, e := range items {
				pfx, ok := d.prefix(e, indexPath(ap, j), false)
				if !ok {
					continue
				}
				// Each allowed IP becomes a main-table route through the
				// tunnel (package wg), without wg-quick's fwmark and policy
				// routing that keep the tunnel's own packets out of it.
				if pfx.Bits() == 0 {
					d.errorf(e, indexPath(ap, j), "%s would route all %s traffic into the tunnel: its route would take over the host's default route, and with it the tunnel's own packets to the peer and remote management; full-tunnel routing (wg-quick's fwmark and policy routing) is not supported, so list the cluster's prefixes instead, like %s",
						pfx, familyName(pfx.Addr()), exampleNet(pfx.Addr()))
					continue
				}
				if endpointIP.IsValid() && pfx.Contains(endpointIP) {
					d.errorf(e, indexPath(ap, j), "allowedIPs %s contains the endpoint %s; the tunnel's own UDP packets to the peer would be routed into the tunnel, so list prefixes that leave out the endpoint's address, or reach the peer at an address outside them", pfx, endpointIP)
					continue
				}
				if first, dup := routes[pfx]; dup {
					d.errorf(e, indexPath(ap, j), "%s is already an allowed IP at %s:%d; WireGuard routes it to one peer only", pfx, first.File, first.Line)
					continue
				}
				routes[pfx] = d.pos(e)
				peer.AllowedIPs = append(peer.AllowedIPs, pfx)
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
	const valid = "write a duration of whole seconds from 0s to 65535s, like 25s, or a number of seconds"
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		s, ok := d.integer(n, path, "persistentKeepalive", 0, maxUint16)
		return time.Duration(s) * time.Second, ok
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, path, "must be a duration or a number of seconds, not %s; %s", describe(n), valid)
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil:
		d.errorf(n, path, "%q is not a duration; %s", n.Value, valid)
	case v < 0 || v > maxKeepalive:
		d.errorf(n, path, "%s is out of range; %s", v, valid)
	case v%time.Second != 0:
		d.errorf(n, path, "%s is not a whole number of seconds; %s", v, valid)
	default:
		return v, true
	}
	return 0, false
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
