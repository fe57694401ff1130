package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgefw/edgefw/bench"
)

// serveWG is the reference's WireGuard device: this program started again
// as `edgefw-bench -serve-wg NAME` inside a namespace runs wireguard-go
// (the userspace implementation edgefwd embeds) with its control socket
// /var/run/wireguard/NAME.sock, which wg(8) configures, until SIGTERM.
func serveWG(name string) int {
	tunDev, err := tun.CreateTUN(name, 1420)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve-wg:", err)
		return 1
	}
	uapiFile, err := ipc.UAPIOpen(name)
	if err != nil {
		tunDev.Close()
		fmt.Fprintln(os.Stderr, "serve-wg:", err)
		return 1
	}
	dev := device.NewDevice(tunDev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, "serve-wg: "))
	uapi, err := ipc.UAPIListen(name, uapiFile)
	uapiFile.Close()
	if err != nil {
		dev.Close()
		fmt.Fprintln(os.Stderr, "serve-wg:", err)
		return 1
	}
	go func() {
		for {
			c, err := uapi.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("ready")
	<-sigs
	uapi.Close()
	dev.Close()
	return 0
}

// wgSocketDir holds the userspace WireGuard control sockets, shared by
// every namespace.
const wgSocketDir = "/var/run/wireguard"

// startRefDevice starts the reference device in ns and waits until it
// serves its control socket.
func (e *env) startRefDevice(ns *bench.NS, name string) (stop func(), err error) {
	cmd := exec.Command(e.self, "-serve-wg", name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := ns.Start(cmd); err != nil {
		return nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = os.Remove(filepath.Join(wgSocketDir, name+".sock"))
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		stop()
		return nil, fmt.Errorf("reference WireGuard device %s did not start: %q %v", name, line, err)
	}
	return stop, nil
}

// setconf renders a wg(8) configuration with the interface's key and the
// peers.
func setconf(key wgtypes.Key, peers []bench.Peer) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "[Interface]\nPrivateKey = %s\nListenPort = 51820\n", key)
	for _, p := range peers {
		fmt.Fprintf(&b, "\n[Peer]\nPublicKey = %s\nAllowedIPs = %s\n", p.PublicKey, p.AllowedIP)
	}
	return []byte(b.String())
}

// peerCount is how many peers wg(8) shows on a device.
func peerCount(ns *bench.NS, iface string) (int, error) {
	out, err := ns.Output("wg", "show", iface, "peers")
	if err != nil {
		return 0, err
	}
	return len(strings.Fields(out)), nil
}

// runPeers measures configuring N peers on an existing userspace device:
// edgefwd reloading a policy whose tunnel grew from 1 to N peers (timed
// until `edgefwctl reload` returns) against `wg setconf` of the same
// peers on a wireguard-go device; and one peer added to 10k (reload
// against `wg set IFACE peer`).
func runPeers(e *env) ([]bench.Row, error) {
	reps := map[int]int{1000: 3, 10_000: 1} // 10k: ~25 s a round trip on each side
	addReps := 2
	if e.quick {
		reps, addReps = map[int]int{1000: 1, 10_000: 1}, 1
	}
	rows := []bench.Row{
		{Scenario: "configure N peers on an existing device", Size: "1k", N: 1000, Unit: "s",
			Edgefw: bench.Side{Tool: "edgefwctl reload"}, Reference: bench.Side{Tool: "wg setconf"}, Target: "≤ 1.0× wg setconf"},
		{Scenario: "configure N peers on an existing device", Size: "10k", N: 10_000, Unit: "s",
			Edgefw: bench.Side{Tool: "edgefwctl reload"}, Reference: bench.Side{Tool: "wg setconf"}},
		{Scenario: "one peer added to N", Size: "10k", N: 10_000, Unit: "ms",
			Edgefw: bench.Side{Tool: "edgefwctl reload"}, Reference: bench.Side{Tool: "wg set peer"}, Target: "≤ 10 ms"},
	}
	err := e.peers(reps, addReps, rows)
	for i := range rows {
		if err != nil && len(rows[i].Edgefw.Samples) < 1 {
			rows[i].Error = err.Error()
		}
		rows[i].Note = "both sides start from a device with 1 peer and end with N (the daemon's tunnel exists before; the time to create a device is left out); " +
			"edgefw's reload also installs a route per allowed IP and re-checks the firewall, wg setconf only configures the device"
	}
	rows[0].Met = metRatio(rows[0], 1.0, true)
	if len(rows[2].Edgefw.Samples) > 0 {
		rows[2].Met = yesNo(rows[2].Edgefw.Median() <= 10)
	}
	if err != nil {
		return rows, err
	}
	return rows, nil
}

// peerLab is the scenario's two devices: edgefwd's tunnel in one
// namespace, the reference wireguard-go device in another.
type peerLab struct {
	e        *env
	all      []bench.Peer
	tunnel   *bench.TunnelSpec
	d        *edgefwdProc
	ens, rns *bench.NS
	refName  string
	confs    map[int]string
}

func (e *env) peers(reps map[int]int, addReps int, rows []bench.Row) error {
	l, err := e.newPeerLab()
	if err != nil {
		return err
	}
	for i, n := range []int{1000, 10_000} {
		if err := l.configureN(n, reps[n], &rows[i]); err != nil {
			return err
		}
	}
	return l.addOne(addReps, &rows[2])
}

// newPeerLab starts both devices with one peer. The lab removes them.
func (e *env) newPeerLab() (*peerLab, error) {
	dir, err := e.lab.TempDir("peers")
	if err != nil {
		return nil, err
	}
	l := &peerLab{e: e, confs: map[int]string{}}
	if l.all, err = genPeers(10_001); err != nil {
		return nil, err
	}
	if l.tunnel, err = e.tunnelSpec(dir, 1); err != nil {
		return nil, err
	}
	if l.ens, err = e.lab.NewNS("p"); err != nil {
		return nil, err
	}
	if l.rns, err = e.lab.NewNS("q"); err != nil {
		return nil, err
	}
	if l.d, err = e.startDaemon(l.ens, dir, l.policy(1), ""); err != nil {
		return nil, err
	}
	l.refName = e.lab.Name("r")
	stopRef, err := e.startRefDevice(l.rns, l.refName)
	if err != nil {
		return nil, err
	}
	e.lab.Defer(stopRef)
	refKey, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return nil, err
	}
	for _, n := range []int{1, 1000, 10_000} {
		l.confs[n] = filepath.Join(dir, fmt.Sprintf("wg-%d.conf", n))
		if err := os.WriteFile(l.confs[n], setconf(refKey, l.all[:n]), 0o600); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// policy is the daemon's policy with the first n peers.
func (l *peerLab) policy(n int) []byte {
	t := *l.tunnel
	t.Peers = l.all[:n]
	return bench.Policy(bench.PolicySpec{Tunnel: &t})
}

// edgefwTo reloads the daemon with the first n peers, timing the reload.
func (l *peerLab) edgefwTo(n int) (bench.Usage, error) {
	d := l.d
	if err := os.WriteFile(d.policy+".tmp", l.policy(n), 0o644); err != nil {
		return bench.Usage{}, err
	}
	if err := os.Rename(d.policy+".tmp", d.policy); err != nil {
		return bench.Usage{}, err
	}
	u, resp, err := l.e.reload(d)
	if err == nil && (!resp.OK || resp.Apply == nil || !resp.Apply.OK) {
		err = fmt.Errorf("reload to %d peers: %s %s", n, resp.Error, resp.Message)
	}
	d.waitQuiet()
	if err == nil {
		err = wantPeers(l.ens, l.tunnel.Name, n)
	}
	return u, err
}

// refTo sets the reference device's peers to the first n with wg setconf.
func (l *peerLab) refTo(n int) (bench.Usage, error) {
	u, _, err := l.rns.Measure(nil, "wg", "setconf", l.refName, l.confs[n])
	if err == nil {
		err = wantPeers(l.rns, l.refName, n)
	}
	return u, err
}

// configureN takes both devices from 1 to n peers and back, reps times,
// alternating which goes first.
func (l *peerLab) configureN(n, reps int, row *bench.Row) error {
	for rep := range reps {
		sides := []func() error{
			func() error {
				u, err := l.edgefwTo(n)
				if err != nil {
					return err
				}
				row.Edgefw.AddWall(u, time.Second)
				_, err = l.edgefwTo(1)
				return err
			},
			func() error {
				u, err := l.refTo(n)
				if err != nil {
					return err
				}
				row.Reference.Add(u)
				_, err = l.refTo(1)
				return err
			},
		}
		if rep%2 == 1 {
			slices.Reverse(sides)
		}
		for _, side := range sides {
			if err := side(); err != nil {
				return err
			}
		}
		l.e.logf("peers %s: rep %d: edgefw %.3fs, wg setconf %.3fs", row.Size, rep+1, last(row.Edgefw.Samples), last(row.Reference.Samples))
	}
	return nil
}

// addOne adds a 10,001st peer to both devices (and removes it again),
// reps times.
func (l *peerLab) addOne(reps int, row *bench.Row) error {
	if _, err := l.edgefwTo(10_000); err != nil {
		return err
	}
	if _, err := l.refTo(10_000); err != nil {
		return err
	}
	extra := l.all[10_000]
	for range reps {
		u, err := l.edgefwTo(10_001)
		if err != nil {
			return err
		}
		row.Edgefw.AddWall(u, time.Millisecond)
		if _, err := l.edgefwTo(10_000); err != nil {
			return err
		}
		u, _, err = l.rns.Measure(nil, "wg", "set", l.refName, "peer", extra.PublicKey, "allowed-ips", extra.AllowedIP.String())
		if err != nil {
			return err
		}
		row.Reference.AddScaled(u, time.Millisecond)
		if err := wantPeers(l.rns, l.refName, 10_001); err != nil {
			return err
		}
		if _, _, err := l.rns.Measure(nil, "wg", "set", l.refName, "peer", extra.PublicKey, "remove"); err != nil {
			return err
		}
	}
	return nil
}

func wantPeers(ns *bench.NS, iface string, n int) error {
	got, err := peerCount(ns, iface)
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("%s has %d peers, want %d", iface, got, n)
	}
	return nil
}
