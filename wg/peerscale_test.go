package wg

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/policy"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// peerScaleEnv, set to a number of peers, runs TestNetnsPeerScale: a
// measurement for issue 13, not a check, so it logs and asserts nothing
// about time.
const peerScaleEnv = "EDGEFW_PEER_SCALE"

// TestNetnsPeerScale configures N peers on one userspace interface
// through the Manager, then adds one peer, applies the same declaration
// again (the no-op an edit followed by a reload also makes, through the
// daemon's policy watch), and configures the same N
// peers with `wg setconf` on a userspace device of the same kind (the
// helper's, started without peers) in another namespace: the reference
// an operator would otherwise use.
func TestNetnsPeerScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(peerScaleEnv))
	if n == 0 {
		t.Skip("set " + peerScaleEnv + "=N to measure N peers")
	}
	requireNetnsLab(t)
	pid := os.Getpid()
	dir := t.TempDir()
	tunnel := func(ifname string, peers int) policy.Tunnel {
		tun := policy.Tunnel{Name: ifname, Backend: policy.BackendUserspace, PrivateKeyFile: filepath.Join(dir, ifname+".key"),
			ListenPort: 51820, Addresses: prefixes("10.200.0.1/16")}
		for i := range peers {
			k, err := wgtypes.GeneratePrivateKey()
			if err != nil {
				t.Fatal(err)
			}
			tun.Peers = append(tun.Peers, policy.TunnelPeer{Name: fmt.Sprintf("site-%d", i), PublicKey: k.PublicKey(),
				Endpoint:   fmt.Sprintf("192.0.2.%d:%d", i%250+1, 40000+i%20000),
				AllowedIPs: prefixes(fmt.Sprintf("10.%d.%d.%d/32", 201+i/62500, i/250%250, i%250+1))})
		}
		return tun
	}

	ns, ifname := fmt.Sprintf("efwt-%d-s", pid), fmt.Sprintf("efs%d", pid)
	newNetns(t, ns)
	removeSocketOnCleanup(t, ifname)
	tun := tunnel(ifname, n)
	config := filepath.Join(dir, "edgefw.json")
	writeJSON(t, config, helperConfigFile{Tunnels: []policy.Tunnel{tun}})
	h := startHelper(t, ns, config, os.DevNull, "")
	first := h.wait("applied")
	t.Logf("edgefw: %d peers (and routes) on a new userspace interface: Apply %v", n, first.Duration.Round(time.Millisecond))
	extra := tunnel(ifname, 1).Peers[0]
	extra.Name, extra.AllowedIPs = "one-more", prefixes("10.250.0.1/32")
	tun.Peers = append(tun.Peers, extra)
	writeJSON(t, config, helperConfigFile{Tunnels: []policy.Tunnel{tun}})
	h.signal(syscall.SIGHUP)
	one := h.wait("applied")
	t.Logf("edgefw: one peer added to %d: Apply %v", n, one.Duration.Round(time.Millisecond))
	h.signal(syscall.SIGHUP)
	same := h.wait("applied")
	t.Logf("edgefw: the same %d peers again (no change): Apply %v", n+1, same.Duration.Round(time.Millisecond))
	if got := len(wgShow(t, ns, ifname, "peers")); got != n+1 {
		t.Errorf("wg show peers: %d, want %d", got, n+1)
	}
	for _, l := range strings.Split(h.stop(), "\n") {
		if strings.Contains(l, "TIMING") {
			t.Log(l)
		}
	}

	refNs, refIf := fmt.Sprintf("efwt-%d-r", pid), fmt.Sprintf("efr%d", pid)
	newNetns(t, refNs)
	removeSocketOnCleanup(t, refIf)
	ref := tunnel(refIf, 0)
	refConfig := filepath.Join(dir, "ref.json")
	writeJSON(t, refConfig, helperConfigFile{Tunnels: []policy.Tunnel{ref}})
	rh := startHelper(t, refNs, refConfig, os.DevNull, "")
	rh.wait("applied")
	key, err := LoadOrCreatePrivateKey(ref.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "[Interface]\nPrivateKey = %s\nListenPort = 51820\n", key)
	for _, p := range tunnel(refIf, n).Peers {
		fmt.Fprintf(&conf, "\n[Peer]\nPublicKey = %s\nEndpoint = %s\nAllowedIPs = %s\n", wgtypes.Key(p.PublicKey), p.Endpoint, p.AllowedIPs[0])
	}
	confPath := filepath.Join(dir, "ref.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, err := exec.Command("ip", "netns", "exec", refNs, "wg", "setconf", refIf, confPath).CombinedOutput(); err != nil {
		t.Fatalf("wg setconf: %v\n%s", err, out)
	}
	t.Logf("reference: wg setconf of %d peers (no routes) on a userspace interface: %v", n, time.Since(start).Round(time.Millisecond))
	rh.stop()
}
