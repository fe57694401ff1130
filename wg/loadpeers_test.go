package wg

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/edgefw/edgefw/policy"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestLoadChangedPeersAsLoadPeers: for random changes of a peer list
// (peers added, removed, changed, renamed, moved; duplicate keys; bad
// endpoints; preshared keys that read and that do not), loading the new
// list with the old one known leaves the states, errors and peers gone
// exactly as a full load does.
func TestLoadChangedPeersAsLoadPeers(t *testing.T) {
	dir := t.TempDir()
	psk, err := wgtypes.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	goodPSK := filepath.Join(dir, "good.psk")
	if err := os.WriteFile(goodPSK, []byte(psk.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	peer := func(i int) policy.TunnelPeer {
		p := policy.TunnelPeer{Name: fmt.Sprintf("p%d", i), PublicKey: [32]byte{byte(i), 1},
			AllowedIPs: prefixes(fmt.Sprintf("10.3.0.%d/32", i+1))}
		switch rng.IntN(8) {
		case 0:
			p.Endpoint = "192.0.2.1:51820"
		case 1:
			p.Endpoint = "no port"
		case 2:
			p.PresharedKeyFile = goodPSK
		case 3:
			p.PresharedKeyFile = filepath.Join(dir, "missing.psk")
		}
		return p
	}
	edit := func(list []policy.TunnelPeer) []policy.TunnelPeer {
		list = slices.Clone(list)
		for range 1 + rng.IntN(3) {
			switch op := rng.IntN(6); {
			case op == 0 || len(list) == 0:
				list = slices.Insert(list, rng.IntN(len(list)+1), peer(rng.IntN(40)))
			case op == 1:
				k := rng.IntN(len(list))
				list = slices.Delete(list, k, k+1)
			case op == 2: // another endpoint or key file
				k := rng.IntN(len(list))
				list[k] = peer(int(list[k].PublicKey[0]))
			case op == 3: // renamed
				list[rng.IntN(len(list))].Name += "x"
			case op == 4: // moved
				k := rng.IntN(len(list))
				p := list[k]
				list = slices.Delete(list, k, k+1)
				list = slices.Insert(list, rng.IntN(len(list)+1), p)
			default: // a position changed, as a line added above moves it
				list[rng.IntN(len(list))].Pos.Line++
			}
		}
		return list
	}
	m := &Manager{}
	prev := edit(nil)
	for round := range 500 {
		next := edit(prev)
		full, changed := &tunnelState{decl: policy.Tunnel{Peers: prev}}, &tunnelState{decl: policy.Tunnel{Peers: prev}}
		m.loadPeers(full)
		m.loadPeers(changed)
		full.decl.Peers, changed.decl.Peers = next, next
		wantErrs, wantGone := m.loadPeers(full)
		gotErrs, gotGone := m.loadChangedPeers(changed, prev)
		if fmt.Sprint(gotErrs) != fmt.Sprint(wantErrs) {
			t.Fatalf("round %d: errors %v, want %v", round, gotErrs, wantErrs)
		}
		if got, want := stateKeys(gotGone), stateKeys(wantGone); !slices.Equal(got, want) {
			t.Fatalf("round %d: gone %v, want %v", round, got, want)
		}
		if len(changed.peers) != len(full.peers) {
			t.Fatalf("round %d: %d peers, want %d", round, len(changed.peers), len(full.peers))
		}
		for i, p := range changed.peers {
			w := full.peers[i]
			if !reflect.DeepEqual(p.decl, w.decl) || p.psk != w.psk || fmt.Sprint(p.pskErr) != fmt.Sprint(w.pskErr) ||
				p.ep != w.ep || fmt.Sprint(p.epErr) != fmt.Sprint(w.epErr) {
				t.Fatalf("round %d: peer %d: %+v, want %+v", round, i, p, w)
			}
		}
		if got, want := stateKeys(slices.Collect(maps.Values(changed.byKey))), stateKeys(slices.Collect(maps.Values(full.byKey))); !slices.Equal(got, want) {
			t.Fatalf("round %d: index %v, want %v", round, got, want)
		}
		if !maps.Equal(changed.names, full.names) {
			t.Fatalf("round %d: names %v, want %v", round, changed.names, full.names)
		}
		prev = next
	}
}

func stateKeys(states []*peerState) []string {
	var keys []string
	for _, s := range states {
		keys = append(keys, wgtypes.Key(s.decl.PublicKey).String())
	}
	slices.Sort(keys)
	return keys
}

// TestSharesAllowedIPsAfter: for random changes of a peer list, whether
// two peers share an allowed-IPs prefix is found as a check of the whole
// list finds it.
func TestSharesAllowedIPsAfter(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	peer := func() policy.TunnelPeer {
		var ips []string
		for range 1 + rng.IntN(2) {
			ips = append(ips, fmt.Sprintf("10.4.%d.%d/%d", rng.IntN(3), rng.IntN(60), 30+rng.IntN(3)))
		}
		return policy.TunnelPeer{Name: "p", PublicKey: [32]byte{byte(rng.IntN(256))}, AllowedIPs: prefixes(ips...)}
	}
	var prev []policy.TunnelPeer
	prevShares := false
	for round := range 2000 {
		next := slices.Clone(prev)
		switch op := rng.IntN(4); {
		case op == 0 || len(next) == 0:
			next = slices.Insert(next, rng.IntN(len(next)+1), peer())
		case op == 1:
			k := rng.IntN(len(next))
			next = slices.Delete(next, k, k+1)
		case op == 2:
			next[rng.IntN(len(next))] = peer()
		default:
			next = nil
			for range rng.IntN(30) {
				next = append(next, peer())
			}
		}
		want := sharesAllowedIPs(next)
		if got := sharesAllowedIPsAfter(prev, next, prevShares); got != want {
			t.Fatalf("round %d: %v, want %v", round, got, want)
		}
		prev, prevShares = next, want
	}
}
