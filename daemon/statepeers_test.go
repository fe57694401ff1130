package daemon

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/policy"
)

// TestTunnelsEncoding: peers written without encoding/json's reflection
// are byte for byte what encoding/json writes, strings that need escaping
// included, and tunnels the same document (their peers come last).
func TestTunnelsEncoding(t *testing.T) {
	// A field added to these types must be written by appendPeers too.
	if n := reflect.TypeFor[policy.TunnelPeer]().NumField(); n != 8 {
		t.Errorf("policy.TunnelPeer has %d fields; appendPeers writes 8", n)
	}
	if n := reflect.TypeFor[policy.Pos]().NumField(); n != 3 {
		t.Errorf("policy.Pos has %d fields; appendPos writes 3", n)
	}
	peers := []policy.TunnelPeer{
		{Name: "site-a", PublicKey: [32]byte{0, 1, 2, 255, 31: 9}, Endpoint: "gw.example.com:51820",
			AllowedIPs:          []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/64")},
			PersistentKeepalive: 25 * time.Second, Pos: policy.Pos{File: "/etc/edgefw/policy.yaml", Line: 40, Col: 9}},
		{Name: "site-b", PresharedKeyFile: "/etc/edgefw/keys/<b>&\"c\"\\d\u00e9\u2028\x01.psk",
			PresharedKeyFilePos: policy.Pos{File: "policy.d/tab\there.yaml", Line: 2, Col: 3}},
		{AllowedIPs: []netip.Prefix{}},
	}
	for name, ps := range map[string][]policy.TunnelPeer{"peers": peers, "none": {}, "nil": nil} {
		want, err := json.Marshal(ps)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendPeers(nil, ps); string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	for name, ts := range map[string][]policy.Tunnel{
		"peers":      {{Name: "wg0", Backend: policy.BackendUserspace, PrivateKeyFile: "/k", ListenPort: 51820, Peers: peers}, {Name: "wg1"}},
		"no peers":   {{Name: "wg0", Peers: []policy.TunnelPeer{}}},
		"no tunnels": {},
		"nil":        nil,
	} {
		got, err := appendTunnels(nil, ts)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(ts)
		if err != nil {
			t.Fatal(err)
		}
		var gotDoc, wantDoc any
		if err := json.Unmarshal(got, &gotDoc); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", name, err, got)
		}
		if err := json.Unmarshal(want, &wantDoc); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantDoc, gotDoc); diff != "" {
			t.Errorf("%s: document differs from encoding/json's (-want +got):\n%s", name, diff)
		}
	}
}
