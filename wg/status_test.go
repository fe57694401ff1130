package wg

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Status is served as JSON next to the daemon's camelCase API, and a peer
// that never shook hands must not claim a handshake in year 1.
func TestStatusJSON(t *testing.T) {
	e := newTestEnv(t, true)
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24",
		testPeer("fresh", 1, "192.0.2.1:51820", "10.0.0.1/32"),
		testPeer("never", 2, "192.0.2.2:51820", "10.0.0.2/32"))
	e.mustApply(tun)
	e.host.setPeer("wg0", testKey(1), func(p *wgtypes.Peer) { p.LastHandshakeTime = e.clock.Add(-time.Minute) })
	status, err := e.m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(status)
	if err != nil {
		t.Fatal(err)
	}
	var tunnels []map[string]json.RawMessage
	if err := json.Unmarshal(data, &tunnels); err != nil {
		t.Fatal(err)
	}
	if len(tunnels) != 1 {
		t.Fatalf("status JSON: %s", data)
	}
	wantTunnel := []string{"addresses", "backend", "error", "listenPort", "mtu", "name", "peers", "publicKey"}
	if got := slices.Sorted(maps.Keys(tunnels[0])); !slices.Equal(got, wantTunnel) {
		t.Errorf("tunnel keys = %q, want %q", got, wantTunnel)
	}
	var peers []map[string]json.RawMessage
	if err := json.Unmarshal(tunnels[0]["peers"], &peers); err != nil || len(peers) != 2 {
		t.Fatalf("peers JSON %s: %v", tunnels[0]["peers"], err)
	}
	wantPeer := []string{"allowedIPs", "endpoint", "error", "lastHandshake", "name", "publicKey", "receiveBytes", "transmitBytes", "up"}
	if got := slices.Sorted(maps.Keys(peers[0])); !slices.Equal(got, wantPeer) {
		t.Errorf("peer keys = %q, want %q", got, wantPeer)
	}
	if got, want := string(peers[0]["lastHandshake"]), `"2026-05-01T11:59:00Z"`; got != want {
		t.Errorf("lastHandshake = %s, want %s", got, want)
	}
	if _, ok := peers[1]["lastHandshake"]; ok || strings.Contains(string(data), "0001-01-01") {
		t.Errorf("a peer that never shook hands has a lastHandshake: %s", tunnels[0]["peers"])
	}

	var back []TunnelStatus
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !back[0].Peers[1].LastHandshake.IsZero() || !back[0].Peers[0].LastHandshake.Equal(e.clock.Add(-time.Minute)) {
		t.Errorf("round trip: %+v", back[0].Peers)
	}
}
