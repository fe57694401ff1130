package wg

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/policy"
	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// The namespace tests run real userspace WireGuard devices in network
// namespaces they create. The Manager must run inside the namespace (its
// TUN device and UDP sockets are created in the namespace of the calling
// thread), so the test binary runs itself again under `ip netns exec NS`,
// as TestHelperProcess, which plays edgefwd's tunnel part.

// Environment of the helper process.
const (
	helperEnv      = "EDGEFW_WG_TEST_HELPER" // "1" in the helper
	helperConfig   = "EDGEFW_WG_TEST_CONFIG" // JSON file: helperConfigFile
	helperHosts    = "EDGEFW_WG_TEST_HOSTS"  // hosts(5)-like file for hostsFileResolver
	helperEchoAddr = "EDGEFW_WG_TEST_ECHO"   // TCP echo listener address, optional
)

// helperConfigFile is what the helper applies.
type helperConfigFile struct {
	Tunnels []policy.Tunnel
}

// helperEvent is one line the helper prints on stdout.
type helperEvent struct {
	Event    string        // "applied", "refreshed", "closed"
	Seq      int           // counts applies and refreshes
	Duration time.Duration // of the Apply or Refresh
	Error    string
}

// TestHelperProcess is not a test. Run inside a namespace with helperEnv
// set, it applies the configuration file, re-reads and applies it on
// SIGHUP, calls Refresh on SIGUSR1 and closes the Manager on SIGTERM.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process of the namespace tests")
	}
	os.Exit(runHelper())
}

func runHelper() int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	out := json.NewEncoder(os.Stdout)
	m, err := New(WithDeviceLogger(log), WithResolver(hostsFileResolver{path: os.Getenv(helperHosts)}))
	if err != nil {
		log.Error("new manager", "error", err)
		return 2
	}
	if addr := os.Getenv(helperEchoAddr); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Error("echo listener", "error", err)
			return 2
		}
		go serveEcho(ln)
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	seq := 0
	apply := func() {
		seq++
		ev := helperEvent{Event: "applied", Seq: seq}
		var cfg helperConfigFile
		data, err := os.ReadFile(os.Getenv(helperConfig))
		if err == nil {
			err = json.Unmarshal(data, &cfg)
		}
		if err == nil {
			start := time.Now()
			var rep Report
			rep, err = m.Apply(context.Background(), cfg.Tunnels)
			ev.Duration = time.Since(start)
			logReport(log, rep)
		}
		if err != nil {
			ev.Error = err.Error()
		}
		out.Encode(ev)
	}
	apply()
	for sig := range signals {
		switch sig {
		case syscall.SIGHUP:
			apply()
		case syscall.SIGUSR1:
			seq++
			start := time.Now()
			rep, err := m.Refresh(context.Background())
			ev := helperEvent{Event: "refreshed", Seq: seq, Duration: time.Since(start)}
			logReport(log, rep)
			if err != nil {
				ev.Error = err.Error()
			}
			out.Encode(ev)
		default:
			err := m.Close()
			ev := helperEvent{Event: "closed"}
			if err != nil {
				ev.Error = err.Error()
			}
			out.Encode(ev)
			return 0
		}
	}
	return 0
}

// logReport logs every change of rep in full, so that the tests that read
// the helper's log (for key material, too) see them: what changed the host
// at info level, as the daemon does, a device found up to date at debug.
func logReport(log *slog.Logger, rep Report) {
	for _, c := range rep.Changes {
		level := slog.LevelInfo
		if c.Kind == DeviceUpToDate {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "change", "change", fmt.Sprintf("%+v", c))
	}
}

func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// hostsFileResolver answers from a file of "ADDRESS NAME…" lines, re-read
// on every lookup, so that a test can move a name.
type hostsFileResolver struct{ path string }

func (r hostsFileResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	data, err := os.ReadFile(r.path)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: host}
	}
	var addrs []netip.Addr
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && slices.Contains(f[1:], host) {
			if a, err := netip.ParseAddr(f[0]); err == nil {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

// requireNetnsLab skips unless the test can build namespaces and run
// userspace WireGuard in them.
func requireNetnsLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("namespace test skipped in -short mode")
	}
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "wg")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		netnstest.Unavailable(t, "needs /dev/net/tun for userspace WireGuard: %v", err)
	}
}

// run runs a command and returns its output; it fails the test on error.
// Every command the tests run names its namespace (ip -n NS, ip netns exec
// NS): the machine's own namespace is never changed.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetns creates a network namespace with its loopback up and deletes it
// when the test ends, whatever the outcome.
func newNetns(t *testing.T, name string) {
	t.Helper()
	// A namespace of this name can only be left by an earlier run of this
	// test with the same process id.
	_ = exec.Command("ip", "netns", "del", name).Run()
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete namespace %s: %v\n%s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
}

// removeSocketOnCleanup deletes the userspace control socket of ifname if a
// killed helper left it: /var/run/wireguard is shared by all namespaces.
func removeSocketOnCleanup(t *testing.T, ifname string) {
	t.Cleanup(func() { os.Remove(filepath.Join("/var/run/wireguard", ifname+".sock")) })
}

// nsHelper is a running TestHelperProcess inside a namespace.
type nsHelper struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	events  chan helperEvent
	logPath string
	started time.Time
}

func startHelper(t *testing.T, ns, configPath, hostsPath, echoAddr string) *nsHelper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), ns+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	// Not /proc/self/exe: ip would resolve that to itself.
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestHelperProcess$", "-test.timeout=0")
	cmd.Env = append(os.Environ(),
		helperEnv+"=1",
		helperConfig+"="+configPath,
		helperHosts+"="+hostsPath,
		helperEchoAddr+"="+echoAddr,
	)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &nsHelper{t: t, name: ns, cmd: cmd, events: make(chan helperEvent, 16), logPath: logPath}
	h.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev helperEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event != "" {
				h.events <- ev
			}
		}
		close(h.events)
		cmd.Wait()
		close(exited)
	}()
	// ip netns exec replaces itself with the helper, so the signal and the
	// kill reach the helper itself.
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			if log, err := os.ReadFile(logPath); err == nil {
				t.Logf("log of the helper in %s (last 4 KiB):\n%s", ns, tail(string(log), 4096))
			}
		}
	})
	return h
}

// tail returns the whole lines within the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// wait returns the next event, which must be want and carry no error.
func (h *nsHelper) wait(want string) helperEvent {
	h.t.Helper()
	select {
	case ev, ok := <-h.events:
		if !ok {
			h.t.Fatalf("helper in %s exited while waiting for %q", h.name, want)
		}
		if ev.Event != want || ev.Error != "" {
			h.t.Fatalf("helper in %s: got %+v, want %q without error", h.name, ev, want)
		}
		return ev
	case <-time.After(60 * time.Second):
		h.t.Fatalf("helper in %s: no %q within 60s", h.name, want)
	}
	return helperEvent{}
}

func (h *nsHelper) signal(sig os.Signal) {
	h.t.Helper()
	if err := h.cmd.Process.Signal(sig); err != nil {
		h.t.Fatalf("signal helper in %s: %v", h.name, err)
	}
}

// stop ends the helper as the daemon would end and returns its log.
func (h *nsHelper) stop() string {
	h.t.Helper()
	h.signal(syscall.SIGTERM)
	h.wait("closed")
	for range h.events {
	}
	log, err := os.ReadFile(h.logPath)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(log)
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// wgShow returns `wg show IF WHAT` inside ns as key → value.
func wgShow(t *testing.T, ns, ifname, what string) map[string]string {
	t.Helper()
	out := run(t, "ip", "netns", "exec", ns, "wg", "show", ifname, what)
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "\t"); ok {
			m[k] = v
		} else if line != "" {
			m[line] = ""
		}
	}
	return m
}

// dialInNetns opens a TCP connection from inside namespace ns. The socket is
// created on a thread switched into ns; once created it stays there.
func dialInNetns(t *testing.T, ns, addr string) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		c, dialErr := net.DialTimeout("tcp", addr, 5*time.Second)
		if err := netns.Set(orig); err == nil {
			// Only a thread back in its own namespace may serve other
			// goroutines; otherwise it dies with this one.
			runtime.UnlockOSThread()
		}
		done <- result{c, dialErr}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("dial %s in %s: %v", addr, ns, r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// echo sends a line over c and expects it back.
func echo(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, line); err != nil {
		t.Fatalf("long-lived TCP connection: write: %v", err)
	}
	got, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != line {
		t.Fatalf("long-lived TCP connection: read %q, %v; want %q", got, err, line)
	}
}

func TestNetnsTunnelUserspace(t *testing.T) {
	requireNetnsLab(t)
	pid := os.Getpid()
	nsSite, nsCluster := fmt.Sprintf("efwt-%d-a", pid), fmt.Sprintf("efwt-%d-b", pid)
	ifSite, ifCluster := fmt.Sprintf("efa%d", pid), fmt.Sprintf("efb%d", pid)
	newNetns(t, nsSite)
	newNetns(t, nsCluster)
	removeSocketOnCleanup(t, ifSite)
	removeSocketOnCleanup(t, ifCluster)

	// The underlay: a veth pair on TEST-NET-1, only inside our namespaces.
	run(t, "ip", "-n", nsSite, "link", "add", "efv-a", "type", "veth", "peer", "name", "efv-b", "netns", nsCluster)
	run(t, "ip", "-n", nsSite, "addr", "add", "192.0.2.1/24", "dev", "efv-a")
	run(t, "ip", "-n", nsCluster, "addr", "add", "192.0.2.2/24", "dev", "efv-b")
	run(t, "ip", "-n", nsSite, "link", "set", "efv-a", "up")
	run(t, "ip", "-n", nsCluster, "link", "set", "efv-b", "up")

	dir := t.TempDir()
	siteKeyPath, clusterKeyPath := filepath.Join(dir, "keys", "site.key"), filepath.Join(dir, "keys", "cluster.key")
	sitePub, err := GenerateKeyFile(siteKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	clusterPub, err := GenerateKeyFile(clusterKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	psk, _ := wgtypes.GenerateKey()
	pskPath := filepath.Join(dir, "keys", "site-cluster.psk")
	if err := os.WriteFile(pskPath, []byte(psk.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustKey := func(s string) [32]byte {
		k, err := wgtypes.ParseKey(s)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}

	clusterPeer := policy.TunnelPeer{
		Name:                "cluster",
		PublicKey:           mustKey(clusterPub),
		PresharedKeyFile:    pskPath,
		Endpoint:            "cluster.test:51821", // resolved through the hosts file
		AllowedIPs:          prefixes("10.99.0.2/32", "fd00:99::2/128"),
		PersistentKeepalive: 25 * time.Second,
	}
	site := policy.Tunnel{
		Name:           ifSite,
		Backend:        policy.BackendUserspace,
		PrivateKeyFile: siteKeyPath,
		ListenPort:     51820,
		Addresses:      prefixes("10.99.0.1/24", "fd00:99::1/64"),
		MTU:            1420,
		Peers:          []policy.TunnelPeer{clusterPeer},
	}
	cluster := policy.Tunnel{
		Name:           ifCluster,
		Backend:        policy.BackendUserspace,
		PrivateKeyFile: clusterKeyPath,
		ListenPort:     51821,
		Addresses:      prefixes("10.99.0.2/24", "fd00:99::2/64"),
		Peers: []policy.TunnelPeer{{
			Name:             "site",
			PublicKey:        mustKey(sitePub),
			PresharedKeyFile: pskPath,
			Endpoint:         "192.0.2.1:51820",
			AllowedIPs:       prefixes("10.99.0.1/32", "fd00:99::1/128"),
		}},
	}
	siteConfig, clusterConfig := filepath.Join(dir, "site.json"), filepath.Join(dir, "cluster.json")
	siteHosts := filepath.Join(dir, "site.hosts")
	writeJSON(t, siteConfig, helperConfigFile{Tunnels: []policy.Tunnel{site}})
	writeJSON(t, clusterConfig, helperConfigFile{Tunnels: []policy.Tunnel{cluster}})
	if err := os.WriteFile(siteHosts, []byte("192.0.2.2 cluster.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The cluster end first, as in the field: a site that boots while its
	// gateway is unreachable waits for WireGuard's retry (REKEY_TIMEOUT, 5 s).
	clusterHelper := startHelper(t, nsCluster, clusterConfig, os.DevNull, ":7777")
	clusterHelper.wait("applied")
	siteHelper := startHelper(t, nsSite, siteConfig, siteHosts, "")
	ev := siteHelper.wait("applied")
	t.Logf("site: first Apply took %v", ev.Duration.Round(time.Millisecond))

	// The handshake: the site's persistent keepalive starts it.
	var firstHandshake string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if hs := wgShow(t, nsSite, ifSite, "latest-handshakes")[clusterPub]; hs != "" && hs != "0" {
			firstHandshake = hs
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if firstHandshake == "" {
		t.Fatal("no handshake within 20s")
	}
	t.Logf("time from helper process start to first handshake: %v", time.Since(siteHelper.started).Round(time.Millisecond))

	run(t, "ip", "netns", "exec", nsSite, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.99.0.2")
	run(t, "ip", "netns", "exec", nsSite, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd00:99::2")
	conn := dialInNetns(t, nsSite, "10.99.0.2:7777")
	reader := bufio.NewReader(conn)
	echo(t, conn, reader, "before any change")

	// handshakeUnchanged checks that a change to other peers did not reset
	// the cluster peer's session.
	handshakeUnchanged := func(step string) {
		t.Helper()
		if hs := wgShow(t, nsSite, ifSite, "latest-handshakes")[clusterPub]; hs != firstHandshake {
			t.Errorf("%s: cluster peer's latest handshake changed from %s to %s: its session was reset", step, firstHandshake, hs)
		}
	}
	reapply := func(tun policy.Tunnel) {
		t.Helper()
		writeJSON(t, siteConfig, helperConfigFile{Tunnels: []policy.Tunnel{tun}})
		siteHelper.signal(syscall.SIGHUP)
		siteHelper.wait("applied")
	}
	peersOf := func() []string {
		return slices.Sorted(func(yield func(string) bool) {
			for k := range wgShow(t, nsSite, ifSite, "peers") {
				if !yield(k) {
					return
				}
			}
		})
	}

	t.Run("applying the running configuration changes nothing", func(t *testing.T) {
		before, err := os.ReadFile(siteHelper.logPath)
		if err != nil {
			t.Fatal(err)
		}
		reapply(site)
		after, err := os.ReadFile(siteHelper.logPath)
		if err != nil {
			t.Fatal(err)
		}
		// Every change the Manager makes is logged at info level.
		for _, line := range strings.Split(string(after[len(before):]), "\n") {
			if strings.Contains(line, `"level":"INFO"`) {
				t.Errorf("second Apply changed something: %s", line)
			}
		}
		handshakeUnchanged("applying again")
	})

	t.Run("add a second peer", func(t *testing.T) {
		extraKey, _ := wgtypes.GeneratePrivateKey()
		withExtra := site
		withExtra.Peers = []policy.TunnelPeer{clusterPeer, {
			Name:       "extra",
			PublicKey:  extraKey.PublicKey(),
			Endpoint:   "192.0.2.3:51822",
			AllowedIPs: prefixes("10.99.0.3/32"),
		}}
		reapply(withExtra)
		if got, want := peersOf(), slices.Sorted(slices.Values([]string{clusterPub, extraKey.PublicKey().String()})); !slices.Equal(got, want) {
			t.Errorf("peers %v, want %v", got, want)
		}
		handshakeUnchanged("adding a peer")
		echo(t, conn, reader, "after adding a peer")

		reapply(site)
		if got := peersOf(); !slices.Equal(got, []string{clusterPub}) {
			t.Errorf("after removing the extra peer: peers %v, want only the cluster", got)
		}
		handshakeUnchanged("removing a peer")
		echo(t, conn, reader, "after removing a peer")
	})

	t.Run("change allowed IPs updates routes", func(t *testing.T) {
		wider := site
		wider.Peers = []policy.TunnelPeer{clusterPeer}
		wider.Peers[0].AllowedIPs = prefixes("10.99.0.2/32", "fd00:99::2/128", "10.98.0.0/24", "fd00:98::/64")
		reapply(wider)
		routes := run(t, "ip", "-n", nsSite, "route", "show", "dev", ifSite, "proto", strconv.Itoa(RouteProtocol))
		if strings.TrimSpace(routes) != "10.98.0.0/24 scope link" {
			t.Errorf("IPv4 routes of the tunnel:\n%s\nwant exactly 10.98.0.0/24 (10.99.0.2 is inside the interface network)", routes)
		}
		routes6 := run(t, "ip", "-n", nsSite, "-6", "route", "show", "dev", ifSite, "proto", strconv.Itoa(RouteProtocol))
		if !strings.HasPrefix(strings.TrimSpace(routes6), "fd00:98::/64") || strings.Count(routes6, "\n") != 1 {
			t.Errorf("IPv6 routes of the tunnel:\n%s\nwant exactly fd00:98::/64", routes6)
		}
		if !strings.Contains(wgShow(t, nsSite, ifSite, "allowed-ips")[clusterPub], "10.98.0.0/24") {
			t.Error("allowed IPs not updated")
		}
		handshakeUnchanged("changing allowed IPs")

		reapply(site)
		for _, family := range []string{"-4", "-6"} {
			if routes := run(t, "ip", "-n", nsSite, family, "route", "show", "dev", ifSite, "proto", strconv.Itoa(RouteProtocol)); strings.TrimSpace(routes) != "" {
				t.Errorf("routes for removed allowed IPs remain:\n%s", routes)
			}
		}
		echo(t, conn, reader, "after changing allowed IPs")
	})

	t.Run("endpoint name that moves is followed by Refresh", func(t *testing.T) {
		if got := wgShow(t, nsSite, ifSite, "endpoints")[clusterPub]; got != "192.0.2.2:51821" {
			t.Fatalf("endpoint %q, want 192.0.2.2:51821 from the hosts file", got)
		}
		run(t, "ip", "-n", nsCluster, "addr", "add", "192.0.2.12/24", "dev", "efv-b")
		if err := os.WriteFile(siteHosts, []byte("192.0.2.12 cluster.test\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		siteHelper.signal(syscall.SIGUSR1)
		siteHelper.wait("refreshed")
		if got := wgShow(t, nsSite, ifSite, "endpoints")[clusterPub]; got != "192.0.2.12:51821" {
			t.Errorf("endpoint after Refresh %q, want 192.0.2.12:51821", got)
		}
		run(t, "ip", "netns", "exec", nsSite, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.99.0.2")
		echo(t, conn, reader, "after the endpoint moved")
	})

	siteLog, clusterLog := siteHelper.stop(), clusterHelper.stop()
	if _, err := os.Stat(filepath.Join("/var/run/wireguard", ifSite+".sock")); err == nil {
		t.Error("Close left the control socket")
	}
	siteKey, _ := LoadOrCreatePrivateKey(siteKeyPath)
	clusterKey, _ := LoadOrCreatePrivateKey(clusterKeyPath)
	assertNoKeyMaterial(t, []wgtypes.Key{siteKey, clusterKey, psk},
		map[string]string{"site log": siteLog, "cluster log": clusterLog})
}

func TestNetnsThousandPeers(t *testing.T) {
	requireNetnsLab(t)
	const peers = 1000
	pid := os.Getpid()
	ns, ifname := fmt.Sprintf("efwt-%d-k", pid), fmt.Sprintf("efk%d", pid)
	newNetns(t, ns)
	removeSocketOnCleanup(t, ifname)

	dir := t.TempDir()
	tun := policy.Tunnel{
		Name:           ifname,
		Backend:        policy.BackendUserspace,
		PrivateKeyFile: filepath.Join(dir, "hub.key"),
		ListenPort:     51820,
		Addresses:      prefixes("10.200.0.1/16"),
	}
	for i := range peers {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		tun.Peers = append(tun.Peers, policy.TunnelPeer{
			Name:      fmt.Sprintf("site-%d", i),
			PublicKey: k.PublicKey(),
			Endpoint:  fmt.Sprintf("192.0.2.%d:%d", i%250+1, 40000+i),
			// Outside the interface network, so each peer also gets a route.
			AllowedIPs: prefixes(fmt.Sprintf("10.201.%d.%d/32", i/250, i%250+1)),
		})
	}
	config := filepath.Join(dir, "hub.json")
	writeJSON(t, config, helperConfigFile{Tunnels: []policy.Tunnel{tun}})
	h := startHelper(t, ns, config, os.DevNull, "")
	first := h.wait("applied")
	t.Logf("%d peers and %d routes on one userspace interface: first Apply %v (%v from process start)",
		peers, peers, first.Duration.Round(time.Millisecond), time.Since(h.started).Round(time.Millisecond))

	if got := len(wgShow(t, ns, ifname, "peers")); got != peers {
		t.Errorf("wg show peers: %d, want %d", got, peers)
	}
	if got := strings.Count(run(t, "ip", "-n", ns, "route", "show", "proto", strconv.Itoa(RouteProtocol)), "\n"); got != peers {
		t.Errorf("routes: %d, want %d", got, peers)
	}

	h.signal(syscall.SIGHUP)
	again := h.wait("applied")
	t.Logf("%d peers: Apply with nothing to change %v", peers, again.Duration.Round(time.Millisecond))

	tun.Peers[peers/2].AllowedIPs = prefixes("10.202.0.1/32")
	writeJSON(t, config, helperConfigFile{Tunnels: []policy.Tunnel{tun}})
	h.signal(syscall.SIGHUP)
	one := h.wait("applied")
	t.Logf("%d peers: Apply changing one peer's allowed IPs %v", peers, one.Duration.Round(time.Millisecond))
	h.signal(syscall.SIGUSR1)
	refresh := h.wait("refreshed")
	t.Logf("%d peers: Refresh %v", peers, refresh.Duration.Round(time.Millisecond))
	h.stop()
}
