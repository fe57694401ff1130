package bench

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgefw/edgefw/policy"
)

var lab = netip.MustParsePrefix("10.0.0.0/8")

func TestRandomPrefixes(t *testing.T) {
	const n = 20_000
	ps := RandomPrefixes(7, n)
	if len(ps) != n {
		t.Fatalf("%d prefixes, want %d", len(ps), n)
	}
	if !slices.Equal(ps, RandomPrefixes(7, n)) {
		t.Error("the same seed gave other prefixes")
	}
	type span struct{ lo, hi uint32 }
	spans := make([]span, 0, n)
	for _, p := range ps {
		if !p.IsValid() || p.Masked() != p || !p.Addr().Is4() {
			t.Fatalf("invalid prefix %v", p)
		}
		if p.Overlaps(lab) || p.Addr().IsMulticast() || !p.Addr().IsGlobalUnicast() {
			t.Fatalf("%v is outside the generated space", p)
		}
		lo := u32(p.Addr())
		spans = append(spans, span{lo, lo + 1<<(32-p.Bits()) - 1})
	}
	slices.SortFunc(spans, func(a, b span) int { return int(int64(a.lo) - int64(b.lo)) })
	for i := 1; i < len(spans); i++ {
		if spans[i].lo <= spans[i-1].hi+1 {
			t.Fatalf("ranges %v and %v overlap or touch", spans[i-1], spans[i])
		}
	}
	r := Replacement(ps, 3)
	for _, p := range ps {
		if p.Overlaps(r) || u32(p.Addr())+1<<(32-p.Bits()) == u32(r.Addr()) || u32(r.Addr())+1 == u32(p.Addr()) {
			t.Fatalf("replacement %v overlaps or touches %v", r, p)
		}
	}
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// TestPolicyLoads parses generated policies with policy.Load, as edgefwd
// does.
func TestPolicyLoads(t *testing.T) {
	dir := t.TempDir()
	prefixes := RandomPrefixes(1, 1000)
	if err := os.WriteFile(filepath.Join(dir, "blocklist.txt"), SetFile(prefixes), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "wg.key")
	if err := os.WriteFile(keyFile, []byte(key.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var peers []Peer
	for i := range 20 {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, Peer{Name: fmt.Sprintf("peer-%d", i), PublicKey: k.PublicKey().String(), AllowedIP: PeerAllowedIP(i)})
	}
	for _, tc := range []struct {
		name      string
		spec      PolicySpec
		rules     int
		setLen    int
		peerCount int
	}{
		{"set", PolicySpec{SetFile: "blocklist.txt", PortRules: 2, FirstPort: 22}, 3, 1000, 0},
		{"rules", PolicySpec{PortRules: 1000, FirstPort: 1000}, 1000, 0, 0},
		{"datapath", PolicySpec{SetFile: "blocklist.txt", PortRules: 100, FirstPort: 20000, AcceptPorts: []int{5201, 7000}}, 103, 1000, 0},
		{"tunnel", PolicySpec{PortRules: 1, FirstPort: 1000, Tunnel: &TunnelSpec{Name: "efwb0", KeyFile: keyFile, ListenPort: 51820, Address: "10.127.0.1/24", Peers: peers}}, 1, 0, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".yaml")
			if err := os.WriteFile(path, Policy(tc.spec), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := policy.Load(path)
			if err != nil {
				t.Fatalf("%v\n%s", err, Policy(tc.spec))
			}
			if len(p.Rules) != tc.rules {
				t.Errorf("%d rules, want %d", len(p.Rules), tc.rules)
			}
			if tc.setLen > 0 && (len(p.Sets) != 1 || len(p.Sets[0].Prefixes) != tc.setLen) {
				t.Errorf("sets %d, want one of %d prefixes", len(p.Sets), tc.setLen)
			}
			if tc.peerCount > 0 && (len(p.Tunnels) != 1 || len(p.Tunnels[0].Peers) != tc.peerCount) {
				t.Errorf("tunnels %+v, want one with %d peers", len(p.Tunnels), tc.peerCount)
			}
		})
	}
}

func TestPeerAllowedIP(t *testing.T) {
	seen := map[netip.Prefix]bool{}
	for i := range 20_000 {
		p := PeerAllowedIP(i)
		if seen[p] || !netip.MustParsePrefix("10.128.0.0/9").Contains(p.Addr()) || p.Bits() != 32 {
			t.Fatalf("peer %d: %v repeated or outside 10.128.0.0/9", i, p)
		}
		seen[p] = true
	}
}
