package wg

import (
	"errors"
	"fmt"
	"net"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// This file keeps a tunnel's WireGuard device as declared: its private key,
// listen port and peers, sent as the changes diffPeers finds.

// syncPeers reads the device once and sends it only what differs: its
// private key, listen port and the peer changes diffPeers finds.
func (m *Manager) syncPeers(st *tunnelState, rep *Report) error {
	dev, err := m.client.Device(st.name)
	if err != nil {
		return fmt.Errorf("read WireGuard device: %w", err)
	}

	var cfg wgtypes.Config
	if dev.PrivateKey != st.key {
		cfg.PrivateKey = &st.key
	}
	if port := int(st.decl.ListenPort); port != 0 && dev.ListenPort != port {
		cfg.ListenPort = &port
	}
	cfg.Peers = diffPeers(desiredPeers(st.peers, dev.Peers, m.dns, m.now()), dev.Peers)
	if configEmpty(cfg) {
		rep.add(Change{Kind: DeviceUpToDate, Interface: st.name, PeerCount: len(dev.Peers)})
		return nil
	}
	return m.configure(st, cfg, rep)
}

// desiredPeers is the declared peer configuration to compare with the
// running peers. A peer whose preshared key cannot be read is left as it
// runs: guessing the key would break its session, and removing it would cut
// a session that may still work. For a peer found running whose endpoint
// this manager never wrote (after a restart), it records the endpoint
// assumed written (assumedLastSet), so that a roam is recognised as one.
func desiredPeers(peers []*peerState, running []wgtypes.Peer, dns map[string]resolution, now time.Time) []wgtypes.PeerConfig {
	byKey := make(map[wgtypes.Key]*wgtypes.Peer, len(running))
	for i := range running {
		byKey[running[i].PublicKey] = &running[i]
	}
	out := make([]wgtypes.PeerConfig, 0, len(peers))
	for _, p := range peers {
		key := wgtypes.Key(p.decl.PublicKey)
		r := byKey[key]
		if p.pskErr != nil {
			if r != nil {
				out = append(out, wgtypes.PeerConfig{
					PublicKey:                   key,
					PresharedKey:                &r.PresharedKey,
					PersistentKeepaliveInterval: &r.PersistentKeepaliveInterval,
					AllowedIPs:                  r.AllowedIPs,
				})
			}
			continue
		}
		psk := p.psk
		// The protocol carries whole seconds; comparing anything finer
		// would report a change on every run.
		keepalive := p.decl.PersistentKeepalive.Truncate(time.Second)
		c := wgtypes.PeerConfig{
			PublicKey:                   key,
			PresharedKey:                &psk,
			PersistentKeepaliveInterval: &keepalive,
			AllowedIPs:                  prefixesToIPNets(p.decl.AllowedIPs),
		}
		if target, ok := p.target(dns); ok {
			p.lastSet = assumedLastSet(target, p.lastSet, r, now)
			if wantEndpoint(target, p.lastSet, r, now) {
				c.Endpoint = net.UDPAddrFromAddrPort(target)
			}
		}
		out = append(out, c)
	}
	return out
}

// configure sends cfg. If the device rejects the whole batch, the changes
// are sent again one at a time, so that one peer the device refuses does
// not hold back the others.
func (m *Manager) configure(st *tunnelState, cfg wgtypes.Config, rep *Report) error {
	if err := m.client.ConfigureDevice(st.name, cfg); err == nil {
		m.applied(st, cfg, rep)
		return nil
	} else if len(cfg.Peers) == 0 || (len(cfg.Peers) == 1 && cfg.PrivateKey == nil && cfg.ListenPort == nil) {
		return m.configureError(st, cfg, err)
	}
	var errs []error
	device := wgtypes.Config{PrivateKey: cfg.PrivateKey, ListenPort: cfg.ListenPort}
	if !configEmpty(device) {
		if err := m.client.ConfigureDevice(st.name, device); err != nil {
			errs = append(errs, m.configureError(st, device, err))
		} else {
			m.applied(st, device, rep)
		}
	}
	for _, p := range cfg.Peers {
		one := wgtypes.Config{Peers: []wgtypes.PeerConfig{p}}
		if err := m.client.ConfigureDevice(st.name, one); err != nil {
			errs = append(errs, m.configureError(st, one, err))
			continue
		}
		m.applied(st, one, rep)
	}
	return errors.Join(errs...)
}

// configureError names what a rejected configuration was about, never its
// keys.
func (m *Manager) configureError(st *tunnelState, cfg wgtypes.Config, err error) error {
	if len(cfg.Peers) == 1 && cfg.PrivateKey == nil && cfg.ListenPort == nil {
		return fmt.Errorf("configure peer %q: %w", m.peerName(st, cfg.Peers[0].PublicKey), err)
	}
	if len(cfg.Peers) == 0 {
		return fmt.Errorf("configure device (private key, listen port): %w", err)
	}
	return fmt.Errorf("configure device and %d peers: %w", len(cfg.Peers), err)
}

// applied reports an accepted configuration and remembers the endpoints
// written.
func (m *Manager) applied(st *tunnelState, cfg wgtypes.Config, rep *Report) {
	if cfg.PrivateKey != nil {
		rep.add(Change{Kind: PrivateKeySet, Interface: st.name})
	}
	if cfg.ListenPort != nil {
		rep.add(Change{Kind: ListenPortSet, Interface: st.name, ListenPort: *cfg.ListenPort})
	}
	for _, c := range cfg.Peers {
		name := m.peerName(st, c.PublicKey)
		if c.Remove {
			rep.add(Change{Kind: PeerRemoved, Interface: st.name, Peer: name})
			continue
		}
		if ps := st.byKey[c.PublicKey]; ps != nil && c.Endpoint != nil {
			ps.lastSet = udpAddrPort(c.Endpoint)
		}
		if !c.UpdateOnly {
			rep.add(Change{Kind: PeerAdded, Interface: st.name, Peer: name, Endpoint: udpAddrPort(c.Endpoint)})
			continue
		}
		rep.add(Change{Kind: PeerUpdated, Interface: st.name, Peer: name, Endpoint: udpAddrPort(c.Endpoint), Fields: updatedFields(c)})
	}
}

// updatedFields names the peer settings an UpdateOnly configuration sets.
func updatedFields(c wgtypes.PeerConfig) []string {
	var fields []string
	if c.PresharedKey != nil {
		fields = append(fields, FieldPresharedKey)
	}
	if c.Endpoint != nil {
		fields = append(fields, FieldEndpoint)
	}
	if c.PersistentKeepaliveInterval != nil {
		fields = append(fields, FieldPersistentKeepalive)
	}
	if c.ReplaceAllowedIPs {
		fields = append(fields, FieldAllowedIPs)
	}
	return fields
}

func (m *Manager) peerName(st *tunnelState, key wgtypes.Key) string {
	if n, ok := st.names[key]; ok {
		return n
	}
	return "(undeclared)"
}
