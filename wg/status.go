package wg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TunnelStatus is the state of one declared tunnel as the host reports it.
// It carries no secrets: PublicKey is the interface's public key.
type TunnelStatus struct {
	Name string `json:"name"`
	// Backend is "kernel" or "userspace", empty if the interface could not
	// be created.
	Backend    string   `json:"backend"`
	ListenPort int      `json:"listenPort"`
	PublicKey  string   `json:"publicKey"`
	Addresses  []string `json:"addresses"`
	MTU        int      `json:"mtu"`
	// Peers lists the declared peers in policy order, then any peer running
	// on the interface that the policy does not declare.
	Peers []PeerStatus `json:"peers"`
	// Error is why the tunnel is not as declared, empty if it is.
	Error string `json:"error"`
}

// PeerStatus is the state of one peer of a tunnel.
type PeerStatus struct {
	// Name is the declared peer name, empty for an undeclared peer.
	Name      string `json:"name"`
	PublicKey string `json:"publicKey"`
	// Endpoint is the address WireGuard currently sends to (it follows a
	// roaming peer), empty if none.
	Endpoint   string   `json:"endpoint"`
	AllowedIPs []string `json:"allowedIPs"`
	// LastHandshake is zero if there never was one; JSON then omits it
	// rather than spell "never" as year 1.
	LastHandshake time.Time `json:"lastHandshake,omitzero"`
	ReceiveBytes  int64     `json:"receiveBytes"`
	TransmitBytes int64     `json:"transmitBytes"`
	// Up: a handshake happened within RejectAfterTime, so the session can
	// carry traffic. A peer that never completed one is down.
	Up bool `json:"up"`
	// Error is why the peer is not configured as declared (unreadable
	// preshared key, endpoint name that does not resolve), empty if it is.
	Error string `json:"error"`
}

// Status reports every declared tunnel, with one WireGuard device read per
// interface (and rtnetlink reads for MTU and addresses), so that values are
// read from the host at call time, never from a cache.
func (m *Manager) Status(ctx context.Context) ([]TunnelStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	now := m.now()
	out := make([]TunnelStatus, 0, len(m.order))
	for _, name := range m.order {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		out = append(out, m.tunnelStatus(m.tunnels[name], now))
	}
	return out, nil
}

func (m *Manager) tunnelStatus(st *tunnelState, now time.Time) TunnelStatus {
	ts := TunnelStatus{Name: st.name, Backend: string(st.backend)}
	if st.err != nil {
		ts.Error = st.err.Error()
	}
	if st.backend == "" {
		return ts
	}
	if info, err := m.links.Link(st.name); err == nil {
		ts.MTU = info.MTU
	}
	if addrs, err := m.links.Addresses(st.name); err == nil {
		for _, a := range addrs {
			ts.Addresses = append(ts.Addresses, a.String())
		}
	}
	dev, err := m.client.Device(st.name)
	if err != nil {
		if ts.Error == "" {
			ts.Error = "read WireGuard device: " + err.Error()
		}
		return ts
	}
	ts.ListenPort = dev.ListenPort
	ts.PublicKey = dev.PublicKey.String()

	running := make(map[wgtypes.Key]*wgtypes.Peer, len(dev.Peers))
	for i := range dev.Peers {
		running[dev.Peers[i].PublicKey] = &dev.Peers[i]
	}
	declared := make(map[wgtypes.Key]bool, len(st.peers))
	for _, p := range st.peers {
		key := wgtypes.Key(p.decl.PublicKey)
		declared[key] = true
		ps := PeerStatus{Name: p.decl.Name, PublicKey: key.String()}
		if r := running[key]; r != nil {
			ps = peerStatus(p.decl.Name, r, now)
		} else {
			ps.Error = "not configured on the interface"
		}
		switch {
		case p.pskErr != nil:
			ps.Error = p.pskErr.Error()
		case p.epErr != nil:
			ps.Error = p.epErr.Error()
		case p.ep.host != "" && m.dns[p.ep.host].err != nil:
			ps.Error = fmt.Sprintf("resolve endpoint %s: %v", p.decl.Endpoint, m.dns[p.ep.host].err)
		default:
			var msgs []string
			for _, err := range defaultRouteErrors(p.decl.AllowedIPs) {
				msgs = append(msgs, err.Error())
			}
			if msgs != nil {
				ps.Error = strings.Join(msgs, "; ")
			}
		}
		ts.Peers = append(ts.Peers, ps)
	}
	for i := range dev.Peers {
		if !declared[dev.Peers[i].PublicKey] {
			ts.Peers = append(ts.Peers, peerStatus("", &dev.Peers[i], now))
		}
	}
	return ts
}

func peerStatus(name string, r *wgtypes.Peer, now time.Time) PeerStatus {
	hs := r.LastHandshakeTime
	if hs.Unix() <= 0 {
		hs = time.Time{} // "never", however the implementation spells it
	}
	ps := PeerStatus{
		Name:          name,
		PublicKey:     r.PublicKey.String(),
		LastHandshake: hs,
		ReceiveBytes:  r.ReceiveBytes,
		TransmitBytes: r.TransmitBytes,
		Up:            handshakeFresh(hs, now),
	}
	if r.Endpoint != nil {
		ps.Endpoint = udpAddrPort(r.Endpoint).String()
	}
	for _, p := range ipNetsToPrefixes(r.AllowedIPs) {
		ps.AllowedIPs = append(ps.AllowedIPs, p.String())
	}
	return ps
}
