package wg

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgefw/edgefw/policy"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestOnePeerAddedSendsOnlyIt: adding one peer to a tunnel of many sends
// the device one configuration holding exactly that peer, and adds only
// its route; the others' sessions and routes are not touched.
func TestOnePeerAddedSendsOnlyIt(t *testing.T) {
	const n = 2000
	e := newTestEnv(t, true)
	var peers []policy.TunnelPeer
	for i := range n {
		p := policy.TunnelPeer{Name: fmt.Sprintf("site-%d", i), PublicKey: wgtypes.Key{0: byte(i), 1: byte(i >> 8), 31: 1},
			AllowedIPs: prefixes(fmt.Sprintf("10.201.%d.%d/32", i/250, i%250+1))}
		peers = append(peers, p)
	}
	tun := e.tunnel("wg0", 51820, "10.200.0.1/16", peers...)
	if err := e.apply(tun); err != nil {
		t.Fatal(err)
	}
	e.host.resetCalls()

	added := policy.TunnelPeer{Name: "one-more", PublicKey: wgtypes.Key{0: 0xff, 1: 0xff, 31: 2}, AllowedIPs: prefixes("10.250.0.1/32")}
	tun.Peers = append(tun.Peers, added)
	if err := e.apply(tun); err != nil {
		t.Fatal(err)
	}
	if n := e.host.reads(); n != 0 {
		t.Errorf("the device was read back %d times to add one peer", n)
	}
	calls := e.host.calls()
	if len(calls) != 1 || len(calls[0].cfg.Peers) != 1 {
		t.Fatalf("configure calls: %+v, want one holding one peer", calls)
	}
	c := calls[0].cfg
	if c.Peers[0].PublicKey != wgtypes.Key(added.PublicKey) || c.Peers[0].Remove || c.Peers[0].UpdateOnly || c.ReplacePeers ||
		c.PrivateKey != nil || c.ListenPort != nil {
		t.Errorf("configuration sent: %+v, want only the added peer, as new", c)
	}
	if got := ipNetsToPrefixes(c.Peers[0].AllowedIPs); len(got) != 1 || got[0] != netip.MustParsePrefix("10.250.0.1/32") {
		t.Errorf("allowed IPs sent: %v", got)
	}
	if got, want := e.host.changes(), []string{"add-route wg0 10.250.0.1/32"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("link changes: %q, want %q", got, want)
	}
	dev, err := e.host.Device("wg0")
	if err != nil {
		t.Fatal(err)
	}
	if len(dev.Peers) != n+1 {
		t.Errorf("device peers: %d, want %d", len(dev.Peers), n+1)
	}
}

// BenchmarkAddOnePeer adds one peer to a tunnel of 10,000 on the fake
// host, then removes it: the Manager's own share of the cost.
func BenchmarkAddOnePeer(b *testing.B) {
	const n = 10000
	host := newFakeHost()
	host.kernelModule = true
	m, err := New(WithClient(host), WithLinks(host), withUserspace(host), WithKernelModule(func() bool { return true }))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	tun := policy.Tunnel{Name: "wg0", Backend: policy.BackendKernel, PrivateKeyFile: filepath.Join(b.TempDir(), "wg0.key"),
		ListenPort: 51820, Addresses: prefixes("10.200.0.1/16")}
	for i := range n {
		tun.Peers = append(tun.Peers, policy.TunnelPeer{Name: fmt.Sprintf("site-%d", i), PublicKey: wgtypes.Key{0: byte(i), 1: byte(i >> 8), 31: 1},
			Endpoint: fmt.Sprintf("192.0.2.%d:51820", i%250+1), AllowedIPs: prefixes(fmt.Sprintf("10.%d.%d.%d/32", 201+i/62500, i/250%250, i%250+1))})
	}
	ctx := context.Background()
	if _, err := m.Apply(ctx, []policy.Tunnel{tun}); err != nil {
		b.Fatal(err)
	}
	more := tun
	more.Peers = append(slices.Clone(tun.Peers), policy.TunnelPeer{Name: "one-more", PublicKey: wgtypes.Key{0: 0xff, 1: 0xff, 31: 2},
		AllowedIPs: prefixes("10.250.0.1/32")})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Apply(ctx, []policy.Tunnel{more}); err != nil {
			b.Fatal(err)
		}
		if _, err := m.Apply(ctx, []policy.Tunnel{tun}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOnePeerAddedLeavesOthersToRefresh: adding one peer sends only it
// and does not read the device, so peers changed, added or removed
// behind edgefw's back stay as they are until Refresh, which reads the
// device and repairs them all.
func TestOnePeerAddedLeavesOthersToRefresh(t *testing.T) {
	e := newTestEnv(t, true)
	var peers []policy.TunnelPeer
	for i := range 50 {
		peers = append(peers, testPeer(fmt.Sprintf("site-%d", i), byte(i+1), "", fmt.Sprintf("10.201.0.%d/32", i+1)))
	}
	tun := e.tunnel("wg0", 51820, "10.200.0.1/16", peers...)
	e.mustApply(tun)
	// Behind edgefw's back: one peer's allowed IPs replaced, one removed,
	// one added.
	if err := e.host.ConfigureDevice("wg0", wgtypes.Config{Peers: []wgtypes.PeerConfig{
		{PublicKey: testKey(10), UpdateOnly: true, ReplaceAllowedIPs: true, AllowedIPs: ipNets("10.99.0.0/16")},
		{PublicKey: testKey(20), Remove: true},
		{PublicKey: testKey(200), AllowedIPs: ipNets("10.98.0.0/16")},
	}}); err != nil {
		t.Fatal(err)
	}
	e.host.resetCalls()
	tun.Peers = slices.Insert(slices.Clone(tun.Peers), 25, testPeer("one-more", 100, "", "10.250.0.1/32"))
	e.mustApply(tun)
	if n := e.host.reads(); n != 0 {
		t.Errorf("the device was read back %d times to add one peer", n)
	}
	if calls := e.host.calls(); len(calls) != 1 || len(calls[0].cfg.Peers) != 1 || calls[0].cfg.Peers[0].PublicKey != testKey(100) {
		t.Fatalf("configure calls: %+v, want one holding the added peer", calls)
	}
	if got, want := e.host.changes(), []string{"add-route wg0 10.250.0.1/32"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("link changes: %q, want %q", got, want)
	}
	if err := e.refresh(); err != nil {
		t.Fatal(err)
	}
	e.assertConverged(tun)
}
