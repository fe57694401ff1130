package wg

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// This file decides; the Manager (manager.go, interface.go, peers.go) does.
// Everything here is pure: no I/O, no clock (time is passed in).

// diffPeers returns the peer changes that turn the running peers into the
// declared ones, and nothing for peers that already match:
//
//   - a declared peer that is not running: its full configuration;
//   - a running peer that is not declared: Remove;
//   - a peer whose settings differ: UpdateOnly with only the differing fields,
//     and ReplaceAllowedIPs with the new list only when its allowed IPs differ.
//
// It never sets ReplacePeers: on a live interface that would drop every
// session for a moment. In declared, a nil PresharedKey, Endpoint or
// PersistentKeepaliveInterval means "leave as running" (the wgctrl
// convention); a zero preshared key means "none". Allowed IPs compare as sets.
// If a public key is declared twice, the first declaration counts. Removals
// come first, sorted by key, then the other changes in declared order.
func diffPeers(declared []wgtypes.PeerConfig, running []wgtypes.Peer) []wgtypes.PeerConfig {
	runningByKey := make(map[wgtypes.Key]*wgtypes.Peer, len(running))
	for i := range running {
		runningByKey[running[i].PublicKey] = &running[i]
	}
	declaredKeys := make(map[wgtypes.Key]bool, len(declared))
	for _, d := range declared {
		declaredKeys[d.PublicKey] = true
	}
	var changes []wgtypes.PeerConfig

	for _, r := range running {
		if !declaredKeys[r.PublicKey] {
			changes = append(changes, wgtypes.PeerConfig{PublicKey: r.PublicKey, Remove: true})
		}
	}
	slices.SortFunc(changes, func(a, b wgtypes.PeerConfig) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })

	done := make(map[wgtypes.Key]bool, len(declared))
	for _, d := range declared {
		if done[d.PublicKey] {
			continue
		}
		done[d.PublicKey] = true
		r, ok := runningByKey[d.PublicKey]
		if !ok {
			changes = append(changes, newPeerConfig(d))
			continue
		}
		if c, changed := updatePeerConfig(d, r); changed {
			changes = append(changes, c)
		}
	}
	return changes
}

// newPeerConfig is the full configuration of a peer to add, without the
// fields whose zero value is the device's default anyway.
func newPeerConfig(d wgtypes.PeerConfig) wgtypes.PeerConfig {
	c := wgtypes.PeerConfig{PublicKey: d.PublicKey, Endpoint: d.Endpoint, AllowedIPs: d.AllowedIPs}
	if d.PresharedKey != nil && *d.PresharedKey != (wgtypes.Key{}) {
		c.PresharedKey = d.PresharedKey
	}
	if d.PersistentKeepaliveInterval != nil && *d.PersistentKeepaliveInterval != 0 {
		c.PersistentKeepaliveInterval = d.PersistentKeepaliveInterval
	}
	return c
}

// updatePeerConfig is the UpdateOnly change of the fields of r that differ
// from d, and whether there is any.
func updatePeerConfig(d wgtypes.PeerConfig, r *wgtypes.Peer) (wgtypes.PeerConfig, bool) {
	c := wgtypes.PeerConfig{PublicKey: d.PublicKey, UpdateOnly: true}
	changed := false
	if d.PresharedKey != nil && *d.PresharedKey != r.PresharedKey {
		c.PresharedKey, changed = d.PresharedKey, true
	}
	if d.Endpoint != nil && udpAddrPort(d.Endpoint) != udpAddrPort(r.Endpoint) {
		c.Endpoint, changed = d.Endpoint, true
	}
	if d.PersistentKeepaliveInterval != nil && *d.PersistentKeepaliveInterval != r.PersistentKeepaliveInterval {
		c.PersistentKeepaliveInterval, changed = d.PersistentKeepaliveInterval, true
	}
	if !samePrefixes(ipNetsToPrefixes(d.AllowedIPs), ipNetsToPrefixes(r.AllowedIPs)) {
		c.ReplaceAllowedIPs, c.AllowedIPs, changed = true, d.AllowedIPs, true
	}
	return c, changed
}

// wantEndpoint decides whether a peer's declared (resolved) endpoint target
// is written to the device. lastSet is what this manager last wrote for the
// peer (invalid if nothing; see assumedLastSet for a peer found running);
// running is the device's view of the peer, nil if it is not configured yet.
//
// WireGuard roams: a peer that reaches us from a new address becomes
// reachable there, and overwriting that with the declared address would
// break a working session behind NAT. So the endpoint is written only when
// the peer is new or has none, when the declared or resolved address changed
// since we last wrote it, or when the session is dead (no handshake within
// RejectAfterTime), in which case the declared address is the best bet.
func wantEndpoint(target, lastSet netip.AddrPort, running *wgtypes.Peer, now time.Time) bool {
	switch {
	case running == nil || running.Endpoint == nil:
		return true
	case target != lastSet:
		return true
	default:
		return !handshakeFresh(running.LastHandshakeTime, now)
	}
}

// assumedLastSet returns the endpoint to take as the one this manager last
// wrote for a peer. It is lastSet, unless that is unknown (invalid) while the
// device already runs the peer with an endpoint: kernel interfaces outlive a
// daemon restart, and the new manager has written nothing yet. The declared
// target is then taken as written before when the peer runs with it, or when
// it runs elsewhere with a live session, which is what a peer that roamed
// looks like. A running endpoint that differs and carries no live session
// leaves lastSet unknown, so that wantEndpoint writes the target.
//
// A target that changed while the daemon was stopped is indistinguishable
// from a roam; it is written once the session dies, which is when a peer that
// really moved stops answering at its old address.
func assumedLastSet(target, lastSet netip.AddrPort, running *wgtypes.Peer, now time.Time) netip.AddrPort {
	switch {
	case lastSet.IsValid() || running == nil || running.Endpoint == nil:
		return lastSet
	case udpAddrPort(running.Endpoint) == target || handshakeFresh(running.LastHandshakeTime, now):
		return target
	default:
		return lastSet
	}
}

// handshakeFresh reports whether a handshake at t (zero: never) is recent
// enough for the session to carry traffic: WireGuard rejects a session's keys
// RejectAfterTime after its handshake (whitepaper §6.1).
func handshakeFresh(t, now time.Time) bool {
	// Some implementations report "never" as the Unix epoch.
	return !t.IsZero() && t.Unix() > 0 && now.Sub(t) <= RejectAfterTime
}

// routesFor returns the routes a tunnel needs: every allowed-IPs prefix of its
// peers, masked and de-duplicated, except those inside one of the
// interface's own address prefixes, which the kernel's connected route
// already sends through the interface, and except prefixes of length 0
// (see defaultRouteErrors). The result is sorted.
func routesFor(addresses []netip.Prefix, allowedIPs []netip.Prefix) []netip.Prefix {
	var routes []netip.Prefix
	seen := make(map[netip.Prefix]bool)
	for _, p := range allowedIPs {
		p = p.Masked()
		if !p.IsValid() || p.Bits() == 0 || seen[p] || coveredBy(p, addresses) {
			continue
		}
		seen[p] = true
		routes = append(routes, p)
	}
	slices.SortFunc(routes, netip.Prefix.Compare)
	return routes
}

// defaultRouteErrors returns one error for each distinct prefix of length 0
// (0.0.0.0/0, ::/0) in allowedIPs, for which routesFor installs no route.
// Policy validation rejects them; this package refuses them again because a
// route for one would take the host's default route, and with it every
// connection including the tunnel's own packets to its endpoint.
func defaultRouteErrors(allowedIPs []netip.Prefix) []error {
	var errs []error
	seen := make(map[netip.Prefix]bool)
	for _, p := range allowedIPs {
		if p = p.Masked(); p.IsValid() && p.Bits() == 0 && !seen[p] {
			seen[p] = true
			errs = append(errs, fmt.Errorf("no route installed for %s: full-tunnel routing is not supported", p))
		}
	}
	return errs
}

// coveredBy reports whether p lies inside the network of one of the
// interface addresses.
func coveredBy(p netip.Prefix, addresses []netip.Prefix) bool {
	for _, a := range addresses {
		if a.Addr().Is4() == p.Addr().Is4() && a.Bits() <= p.Bits() && a.Masked().Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// diffAddresses returns the interface addresses to add and to delete.
// Addresses compare with their host bits. IPv6 link-local addresses that the
// kernel may have assigned are kept unless declared otherwise: deleting them
// would only make the kernel fight back.
func diffAddresses(want, have []netip.Prefix) (add, del []netip.Prefix) {
	add, del = diffPrefixes(want, have)
	del = slices.DeleteFunc(del, func(p netip.Prefix) bool { return p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() })
	return add, del
}

// diffPrefixes returns the prefixes in want and not in have (to add) and
// those in have and not in want (to delete), each sorted.
func diffPrefixes(want, have []netip.Prefix) (add, del []netip.Prefix) {
	wantSet := make(map[netip.Prefix]bool, len(want))
	for _, p := range want {
		wantSet[p] = true
	}
	haveSet := make(map[netip.Prefix]bool, len(have))
	for _, p := range have {
		haveSet[p] = true
	}
	for p := range wantSet {
		if !haveSet[p] {
			add = append(add, p)
		}
	}
	for p := range haveSet {
		if !wantSet[p] {
			del = append(del, p)
		}
	}
	slices.SortFunc(add, netip.Prefix.Compare)
	slices.SortFunc(del, netip.Prefix.Compare)
	return add, del
}

// samePrefixes reports whether a and b hold the same prefixes in any order.
func samePrefixes(a, b []netip.Prefix) bool {
	add, del := diffPrefixes(a, b)
	return len(add) == 0 && len(del) == 0
}

// configEmpty reports whether cfg would change nothing, so that sending it can
// be skipped.
func configEmpty(cfg wgtypes.Config) bool {
	return cfg.PrivateKey == nil && cfg.ListenPort == nil && cfg.FirewallMark == nil && !cfg.ReplacePeers && len(cfg.Peers) == 0
}

func ipNetsToPrefixes(nets []net.IPNet) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(nets))
	for i := range nets {
		if p, ok := prefixFromIPNet(&nets[i], true); ok {
			out = append(out, p)
		}
	}
	return out
}

func prefixesToIPNets(prefixes []netip.Prefix) []net.IPNet {
	out := make([]net.IPNet, 0, len(prefixes))
	for _, p := range prefixes {
		out = append(out, *ipNetFromPrefix(p.Masked()))
	}
	return out
}

// udpAddrPort converts a wgctrl endpoint for comparison; nil is the zero
// AddrPort. IPv4 addresses may come back as IPv4-mapped IPv6.
func udpAddrPort(a *net.UDPAddr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
