package wg

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefw/edgefw/policy"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestIncrementalMatchesFull applies a run of peer changes to one
// Manager, which sends only what changed, and after each compares the
// device and routes with those of a Manager that configures the same
// declaration on a new host from scratch: the two must be the same.
func TestIncrementalMatchesFull(t *testing.T) {
	e := newTestEnv(t, true)
	e.resolver.set("gw.example", "198.51.100.7")
	psk := filepath.Join(e.dir, "psk")
	if err := os.WriteFile(psk, []byte(wgtypes.Key{1: 9}.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tun := e.tunnel("wg0", 51820, "10.200.0.1/16",
		testPeer("a", 1, "192.0.2.1:51820", "10.201.0.1/32"),
		testPeer("b", 2, "gw.example:51820", "10.201.0.2/32", "10.96.0.0/12"),
		testPeer("c", 3, "", "10.200.5.0/24"), // inside the interface network: no route
	)
	// full: the step needs the device read (nothing but peers changed,
	// or peers share a prefix).
	steps := []struct {
		name   string
		change func(tun *policy.Tunnel)
		full   bool
	}{
		{"as declared", func(*policy.Tunnel) {}, true},
		{"peer added", func(tun *policy.Tunnel) {
			tun.Peers = append(tun.Peers, testPeer("d", 4, "192.0.2.4:51820", "10.201.0.4/32"))
		}, false},
		{"peer removed", func(tun *policy.Tunnel) { tun.Peers = slices.Delete(slices.Clone(tun.Peers), 0, 1) }, false},
		{"allowed IPs changed", func(tun *policy.Tunnel) {
			tun.Peers = slices.Clone(tun.Peers)
			tun.Peers[0].AllowedIPs = prefixes("10.201.0.2/32", "10.97.0.0/16")
		}, false},
		{"keepalive and preshared key", func(tun *policy.Tunnel) {
			tun.Peers = slices.Clone(tun.Peers)
			tun.Peers[1].PersistentKeepalive = 25 * time.Second
			tun.Peers[1].PresharedKeyFile = psk
		}, false},
		{"endpoint changed", func(tun *policy.Tunnel) {
			tun.Peers = slices.Clone(tun.Peers)
			tun.Peers[2].Endpoint = "192.0.2.44:51821"
		}, false},
		{"unchanged: links and routes checked, the device not read", func(*policy.Tunnel) {}, false},
		{"renamed only", func(tun *policy.Tunnel) {
			tun.Peers = slices.Clone(tun.Peers)
			tun.Peers[0].Name = "b-renamed"
		}, false},
		{"route shared by two peers, one removed", func(tun *policy.Tunnel) {
			p := testPeer("e", 5, "", "10.97.0.0/16")
			tun.Peers = append(slices.Clone(tun.Peers), p)
		}, true},
		{"the sharer removed", func(tun *policy.Tunnel) { tun.Peers = tun.Peers[:len(tun.Peers)-1] }, true},
		{"peers added at the start and in the middle", func(tun *policy.Tunnel) {
			tun.Peers = slices.Insert(slices.Clone(tun.Peers), 1, testPeer("f", 6, "192.0.2.6:51820", "10.201.0.6/32"))
			tun.Peers = slices.Insert(tun.Peers, 0, testPeer("g", 7, "", "10.201.0.7/32"))
		}, false},
		{"a peer moved and another changed", func(tun *policy.Tunnel) {
			tun.Peers = slices.Clone(tun.Peers)
			tun.Peers[0], tun.Peers[len(tun.Peers)-1] = tun.Peers[len(tun.Peers)-1], tun.Peers[0]
			tun.Peers[1].AllowedIPs = prefixes("10.201.0.66/32")
		}, false},
		{"all removed", func(tun *policy.Tunnel) { tun.Peers = nil }, false},
		{"back", func(tun *policy.Tunnel) {
			tun.Peers = []policy.TunnelPeer{testPeer("a", 1, "192.0.2.1:51820", "10.201.0.1/32")}
		}, false},
	}
	for _, s := range steps {
		s.change(&tun)
		e.host.resetCalls()
		if err := e.apply(tun); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if read := e.host.reads() > 0; read != s.full {
			t.Errorf("%s: device read back: %v, want %v", s.name, read, s.full)
		}
		fresh := newTestEnv(t, true)
		fresh.resolver.set("gw.example", "198.51.100.7")
		fresh.dir = e.dir // the same key files
		if err := fresh.apply(tun); err != nil {
			t.Fatalf("%s, from scratch: %v", s.name, err)
		}
		if got, want := deviceView(t, e.host), deviceView(t, fresh.host); got != want {
			t.Errorf("%s: incremental\n%s\nfrom scratch\n%s", s.name, got, want)
		}
	}
}

// deviceView renders the device wg0 and its routes for comparison.
func deviceView(t *testing.T, h *fakeHost) string {
	t.Helper()
	dev, err := h.Device("wg0")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range dev.Peers {
		ips := ipNetsToPrefixes(p.AllowedIPs)
		slices.SortFunc(ips, func(a, b netip.Prefix) int { return a.Compare(b) })
		lines = append(lines, fmt.Sprintf("peer %x psk %x keepalive %v endpoint %v allowed %v",
			p.PublicKey[:2], p.PresharedKey[:2], p.PersistentKeepaliveInterval, udpAddrPort(p.Endpoint), ips))
	}
	slices.Sort(lines)
	routes, err := h.Routes("wg0")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(routes, func(a, b netip.Prefix) int { return a.Compare(b) })
	return strings.Join(lines, "\n") + fmt.Sprintf("\nroutes %v", routes)
}
