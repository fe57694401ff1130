package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/wg"
)

// DefaultPeerCheckInterval is how often the loop reads the peers' health
// to journal peers going up or down: a transition is journaled at most
// this late. A peer is up while its last handshake is within
// wg.RejectAfterTime (180 s), as edgefw_wireguard_peer_up says.
const DefaultPeerCheckInterval = 10 * time.Second

// peerKey names a declared peer of a tunnel.
type peerKey struct{ iface, peer string }

// checkPeers reads the tunnels and journals each declared peer that went
// up or down since the last check. A failed read changes nothing: the
// next one compares with what was last seen.
func (d *Daemon) checkPeers(ctx context.Context) {
	if d.cfg.Tunnels == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, kernelReadTimeout)
	defer cancel()
	tunnels, err := d.cfg.Tunnels.Status(ctx)
	if err != nil {
		d.log.Debug("peer check: cannot read the tunnels", "error", err)
		return
	}
	var events []journal.Event
	d.jr.peers, events = peerTransitions(d.jr.peers, tunnels)
	d.recordAll(events)
}

// peerTransitions compares the declared peers' health with what was seen
// at the last check, and returns what is seen now and an event for each
// peer that went up or down. A peer not seen before (the daemon started,
// or the peer was added) gets an event for the state it is in, so that
// the journal says whether it was up from the start. The peers of a
// tunnel whose device could not be read keep what was seen of them.
func peerTransitions(seen map[peerKey]bool, tunnels []wg.TunnelStatus) (map[peerKey]bool, []journal.Event) {
	now := make(map[peerKey]bool, len(seen))
	var events []journal.Event
	for _, t := range tunnels {
		unreadable := t.Backend != "" && t.PublicKey == ""
		for _, p := range t.Peers {
			if p.Name == "" {
				continue // not declared: the next reconcile removes it
			}
			k := peerKey{t.Name, p.Name}
			was, known := seen[k]
			if unreadable {
				if known {
					now[k] = was
				}
				continue
			}
			now[k] = p.Up
			if known && was == p.Up {
				continue
			}
			events = append(events, peerEvent(t.Name, p, !known))
		}
	}
	return now, events
}

// peerEvent is the entry of a peer found up or down.
func peerEvent(iface string, p wg.PeerStatus, first bool) journal.Event {
	ev := journal.Event{Kind: journal.KindPeerDown, Interface: iface, Peer: p.Name}
	switch {
	case p.Up:
		ev.Kind = journal.KindPeerUp
		ev.Detail = "handshake at " + p.LastHandshake.UTC().Format(time.RFC3339)
	case p.LastHandshake.IsZero():
		ev.Detail = "no handshake yet"
	default:
		ev.Detail = fmt.Sprintf("no handshake since %s (a session lasts %s)",
			p.LastHandshake.UTC().Format(time.RFC3339), wg.RejectAfterTime)
	}
	if first {
		ev.Detail += "; first check of this peer since edgefwd started or the peer was added"
	}
	return ev
}
