package wg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/edgefw/edgefw/policy"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// A full reconcile reads the whole device back and lists every route of
// the namespace: with 10,000 peers, adding one took about a second, all
// of it reading. When the tunnel's last sync succeeded and a new
// declaration changes only its peers, or nothing, the change is computed
// from the two declarations instead, and only the peers and routes that
// differ are sent. An unchanged declaration still checks the interface's
// links and routes (an Apply restores a deleted address or route), but
// does not read the device: what changed there behind edgefw's back is
// found by Refresh, which reads it every 30 s, or by the next full
// reconcile (a change to anything but peers, or a failed sync).

// peerBefore is what a peer was declared and configured as before an
// Apply.
type peerBefore struct {
	decl   policy.TunnelPeer
	psk    wgtypes.Key
	pskErr error
}

// sameButPeers reports whether b differs from a in nothing but its
// peers, if at all.
func sameButPeers(a, b policy.Tunnel) bool {
	return a.Name == b.Name && a.Backend == b.Backend && a.PrivateKeyFile == b.PrivateKeyFile &&
		a.ListenPort == b.ListenPort && a.MTU == b.MTU && slices.Equal(a.Addresses, b.Addresses)
}

func samePeer(a, b policy.TunnelPeer) bool {
	return a.Name == b.Name && a.PublicKey == b.PublicKey && a.PresharedKeyFile == b.PresharedKeyFile &&
		a.Endpoint == b.Endpoint && slices.Equal(a.AllowedIPs, b.AllowedIPs) && a.PersistentKeepalive == b.PersistentKeepalive
}

// reconcilePeers applies a declaration st.decl that differs from prev,
// which the device runs, only in its peers if at all, neither of which
// declares a prefix twice: an allowed-IPs prefix belongs to one peer of a device at
// a time, the last configured with it, so which one runs would depend on
// history that only reading the device tells. It reports false, having
// changed nothing, when a full reconcile is needed instead: the private
// key file now holds another key, or the interface is gone.
func (m *Manager) reconcilePeers(st *tunnelState, prev policy.Tunnel, rep *Report) (bool, error) {
	key, err := LoadOrCreatePrivateKey(st.decl.PrivateKeyFile)
	if err != nil || key != st.key || st.backend == "" {
		return false, nil
	}
	if _, err := m.links.Link(st.name); err != nil {
		return false, nil
	}
	for _, p := range st.peers {
		p.before, p.ran = peerBefore{decl: p.decl, psk: p.psk, pskErr: p.pskErr}, true
	}
	errs, gone := m.loadChangedPeers(st, prev.Peers)
	cfg := wgtypes.Config{Peers: peerChanges(st.peers, gone, m.dns)}
	routes := alongside(func(rep *Report) error {
		return errors.Join(m.changeRoutes(st, prev.Addresses, gone, rep)...)
	})
	if len(cfg.Peers) == 0 {
		rep.add(Change{Kind: DeviceUpToDate, Interface: st.name, PeerCount: len(st.peers)})
	} else if err := m.configure(st, cfg, rep); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, routes(rep))
	for _, p := range st.peers {
		p.before, p.ran = peerBefore{}, false
	}
	return true, errors.Join(errs...)
}

// peerChanges returns the configuration that turns the peers declared
// before (p.before of those that p.ran, and gone) into peers: removals
// first, sorted by key, then in declared order new peers in full and
// changed ones as UpdateOnly with the fields that differ, as diffPeers
// makes them. An endpoint is written when its target differs from the
// one last written (declared anew, or resolved to a new address). A peer
// whose preshared key cannot be read is left as it runs.
func peerChanges(peers, gone []*peerState, dns map[string]resolution) []wgtypes.PeerConfig {
	var changes []wgtypes.PeerConfig
	for _, g := range gone {
		changes = append(changes, wgtypes.PeerConfig{PublicKey: wgtypes.Key(g.decl.PublicKey), Remove: true})
	}
	slices.SortFunc(changes, func(a, b wgtypes.PeerConfig) int { return slices.Compare(a.PublicKey[:], b.PublicKey[:]) })
	for _, p := range peers {
		if p.pskErr != nil {
			continue
		}
		key := wgtypes.Key(p.decl.PublicKey)
		b, ran := p.before, p.ran
		target, known := p.target(dns)
		keepalive := p.decl.PersistentKeepalive.Truncate(time.Second)
		if ran && b.pskErr == nil && p.psk == b.psk && keepalive == b.decl.PersistentKeepalive.Truncate(time.Second) &&
			slices.Equal(p.decl.AllowedIPs, b.decl.AllowedIPs) && (!known || target == p.lastSet) {
			continue // as it runs; checked without allocating, for 10,000 peers
		}
		psk := p.psk
		want := wgtypes.PeerConfig{PublicKey: key, PresharedKey: &psk, PersistentKeepaliveInterval: &keepalive,
			AllowedIPs: prefixesToIPNets(p.decl.AllowedIPs)}
		if known {
			want.Endpoint = net.UDPAddrFromAddrPort(target)
		}
		switch {
		case !ran:
			changes = append(changes, newPeerConfig(want))
			continue
		case b.pskErr != nil:
			// Left as it ran, whatever that was: set every field.
			want.ReplaceAllowedIPs = true
			changes = append(changes, want)
			continue
		}
		c := wgtypes.PeerConfig{PublicKey: key, UpdateOnly: true}
		changed := false
		if psk != b.psk {
			c.PresharedKey, changed = want.PresharedKey, true
		}
		if keepalive != b.decl.PersistentKeepalive.Truncate(time.Second) {
			c.PersistentKeepaliveInterval, changed = want.PersistentKeepaliveInterval, true
		}
		if !samePrefixes(p.decl.AllowedIPs, b.decl.AllowedIPs) {
			c.ReplaceAllowedIPs, c.AllowedIPs, changed = true, want.AllowedIPs, true
		}
		if known && target != p.lastSet {
			c.Endpoint, changed = want.Endpoint, true
		}
		if changed {
			changes = append(changes, c)
		}
	}
	return changes
}

// changeRoutes adds the routes the tunnel's peers need now and did not
// with the interface addresses and peers declared before (p.before of
// those that p.ran, and gone), and deletes those no longer needed: what
// syncRoutes would do with the routes of before installed.
func (m *Manager) changeRoutes(st *tunnelState, addresses []netip.Prefix, gone []*peerState, rep *Report) []error {
	var errs []error
	// No prefix is declared twice (reconcilePeers checked), so the routes
	// of peers whose allowed IPs stayed are the same before and after.
	var now, was []netip.Prefix
	for _, p := range st.peers {
		for _, err := range defaultRouteErrors(p.decl.AllowedIPs) {
			errs = append(errs, fmt.Errorf("peer %q: %w", p.decl.Name, err))
		}
		if p.ran && slices.Equal(p.before.decl.AllowedIPs, p.decl.AllowedIPs) {
			continue
		}
		now = append(now, p.decl.AllowedIPs...)
		if p.ran {
			was = append(was, p.before.decl.AllowedIPs...)
		}
	}
	for _, g := range gone {
		was = append(was, g.decl.AllowedIPs...)
	}
	add, del := diffPrefixes(routesFor(st.decl.Addresses, now), routesFor(addresses, was))
	errs = append(errs, m.applyRouteDiff(st.name, add, del, rep)...)
	return errs
}

// sharesAllowedIPs reports whether two peers declare the same allowed-IPs
// prefix.
func sharesAllowedIPs(peers []policy.TunnelPeer) bool {
	seen := make(map[netip.Prefix]bool, len(peers))
	for _, p := range peers {
		for _, a := range p.AllowedIPs {
			a = a.Masked()
			if seen[a] {
				return true
			}
			seen[a] = true
		}
	}
	return false
}

// sharesAllowedIPsAfter is sharesAllowedIPs(next) for a declaration
// whose peers were prev, which shares none unless prevShares: the peers
// declared alike at the head and tail of both lists share none among
// themselves, so a few peers between them are checked against all by a
// scan, without the set of 10,000 peers' prefixes.
func sharesAllowedIPsAfter(prev, next []policy.TunnelPeer, prevShares bool) bool {
	head, tail := sameEnds(prev, next)
	middle := next[head : len(next)-tail]
	if prevShares || len(middle) > 16 {
		return sharesAllowedIPs(next)
	}
	for i, p := range middle {
		if sharesAllowedIPs([]policy.TunnelPeer{p}) {
			return true
		}
		for _, a := range p.AllowedIPs {
			a = a.Masked()
			for j, q := range next {
				if j != head+i && slices.ContainsFunc(q.AllowedIPs, func(b netip.Prefix) bool { return b.Masked() == a }) {
					return true
				}
			}
		}
	}
	return false
}

// sameEnds returns how many peers are declared alike at the head of prev
// and next, and then how many at their tail.
func sameEnds(prev, next []policy.TunnelPeer) (head, tail int) {
	n := min(len(prev), len(next))
	for head < n && samePeer(prev[head], next[head]) {
		head++
	}
	for tail < n-head && samePeer(prev[len(prev)-1-tail], next[len(next)-1-tail]) {
		tail++
	}
	return head, tail
}

// alongside starts f, which changes only routes, so that the kernel
// installs them while the WireGuard device (for a userspace device, a
// goroutine of this process) applies the peers sent meanwhile: routes
// need the interface, not its peers. The function returned waits for f,
// appends what it reported to rep, and returns its error.
func alongside(f func(rep *Report) error) func(rep *Report) error {
	var own Report
	done := make(chan error, 1)
	go func() { done <- f(&own) }()
	return func(rep *Report) error {
		err := <-done
		rep.Changes = append(rep.Changes, own.Changes...)
		return err
	}
}
