package wg

import (
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestApplyReResolvesNames: Apply (a daemon reload) looks endpoint names
// up again, so a name that moved is followed at once, not only at the next
// Refresh; a name that still has its address changes nothing.
func TestApplyReResolvesNames(t *testing.T) {
	e := newTestEnv(t, true)
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24", testPeer("gw", 1, "gw.cluster.example:51820", "10.0.0.1/32"))
	e.resolver.set("gw.cluster.example", "198.51.100.1")
	e.mustApply(tun)
	// A live session: only a changed address may move the endpoint.
	e.host.setPeer("wg0", testKey(1), func(p *wgtypes.Peer) { p.LastHandshakeTime = e.clock.Add(-5 * time.Second) })

	e.assertNoop(tun)

	e.resolver.set("gw.cluster.example", "198.51.100.2")
	e.host.resetCalls()
	e.mustApply(tun)
	dev, _ := e.host.Device("wg0")
	if got := udpAddrPort(dev.Peers[0].Endpoint).String(); got != "198.51.100.2:51820" {
		t.Errorf("endpoint after Apply with the name moved = %s, want 198.51.100.2:51820", got)
	}
	e.assertNoop(tun)
}
