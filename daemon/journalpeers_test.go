package daemon

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// peerTunnels is a Tunnels whose status the test sets.
type peerTunnels struct {
	mu      sync.Mutex
	tunnels []wg.TunnelStatus
	err     error
}

func (p *peerTunnels) Apply(context.Context, []policy.Tunnel) (wg.Report, error) {
	return wg.Report{}, nil
}
func (p *peerTunnels) Refresh(context.Context) (wg.Report, error) { return wg.Report{}, nil }
func (p *peerTunnels) Close() error                               { return nil }
func (p *peerTunnels) Status(context.Context) ([]wg.TunnelStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tunnels, p.err
}

// set makes wg0's two declared peers up or down (gw2 never shook hands
// when down), with an undeclared peer that must be ignored.
func (p *peerTunnels) set(gw1, gw2 bool, err error) {
	handshake := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	peer := func(name string, up bool) wg.PeerStatus {
		ps := wg.PeerStatus{Name: name, PublicKey: name + "-key", Up: up}
		if up || name == "gw1" {
			ps.LastHandshake = handshake
		}
		return ps
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tunnels = []wg.TunnelStatus{{Name: "wg0", Backend: "userspace", PublicKey: "wg0-key",
		Peers: []wg.PeerStatus{peer("gw1", gw1), peer("gw2", gw2), {PublicKey: "stray", Up: true}}}}
	p.err = err
}

// unreadable makes wg0's device unreadable, its peers seen as down.
func (p *peerTunnels) unreadable() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tunnels = []wg.TunnelStatus{{Name: "wg0", Backend: "userspace", Error: "read device: timeout",
		Peers: []wg.PeerStatus{{Name: "gw1"}, {Name: "gw2"}}}}
}

func peerLines(es []journal.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Kind)+" "+e.Interface+"/"+e.Peer)
	}
	return out
}

// TestJournalPeers checks peers one check at a time: each going up or
// down is journaled once, a failed read or an unreadable device changes
// nothing, and the first check says how each peer starts.
func TestJournalPeers(t *testing.T) {
	h := newHarness(t)
	tun := &peerTunnels{}
	d := h.startWith(t, func(c *Config) { c.Tunnels = tun })
	ctx := context.Background()
	n := len(h.entries(t))
	steps := []struct {
		name    string
		change  func()
		journal []string
	}{
		{"first check", func() { tun.set(true, false, nil) }, []string{"peer-up wg0/gw1", "peer-down wg0/gw2"}},
		{"nothing changed", func() { tun.set(true, false, nil) }, nil},
		{"gw1 goes down", func() { tun.set(false, false, nil) }, []string{"peer-down wg0/gw1"}},
		{"the read fails", func() { tun.set(true, true, errors.New("netlink: timeout")) }, nil},
		{"the device is unreadable", tun.unreadable, nil},
		{"both come up", func() { tun.set(true, true, nil) }, []string{"peer-up wg0/gw1", "peer-up wg0/gw2"}},
		{"gw2 goes down", func() { tun.set(true, false, nil) }, []string{"peer-down wg0/gw2"}},
	}
	for _, s := range steps {
		s.change()
		d.checkPeers(ctx)
		got := h.since(t, n)
		n += len(got)
		if !slices.Equal(peerLines(got), s.journal) {
			t.Errorf("%s: journaled %q, want %q", s.name, peerLines(got), s.journal)
		}
		for _, e := range got {
			wantBy(t, e, nil)
			if s.name == "first check" && !strings.Contains(e.Detail, "first check") {
				t.Errorf("%s: %s does not say it is the first check", s.name, e)
			}
		}
		if s.name == "gw1 goes down" && (len(got) != 1 || !strings.Contains(got[0].Detail, "no handshake since 2026-03-01T12:00:00Z")) {
			t.Errorf("%s: %s does not give the last handshake", s.name, entryLines(got))
		}
	}
}

// TestJournalPeersThroughTheLoop: the loop checks the peers on its own
// tick.
func TestJournalPeersThroughTheLoop(t *testing.T) {
	h := newHarness(t)
	tun := &peerTunnels{}
	tun.set(true, true, nil)
	loop(t, h.startWith(t, func(c *Config) { c.Tunnels, c.PeerCheckInterval = tun, 5*time.Millisecond }))
	waitFor(t, "both peers' entries", func() bool { return len(h.entries(t)) == 3 })
	tun.set(false, true, nil)
	waitFor(t, "gw1's peer-down", func() bool { return len(h.entries(t)) == 4 })
	if e := h.entries(t)[3]; e.Kind != journal.KindPeerDown || e.Peer != "gw1" {
		t.Errorf("entry %s, want gw1 down", e)
	}
}
