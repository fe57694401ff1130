package integration

// End-to-end tests of edgefwd's WireGuard tunnels: two (real) daemons in two
// namespaces joined by a veth pair, each with its own policy, the embedded
// userspace WireGuard, real handshakes and real traffic through the tunnel.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/wg"
)

// Addresses and ports of the tunnel tests. The underlay is TEST-NET-1
// (RFC 5737) on a veth pair; the overlay lives only on the tunnel links.
const (
	tunSiteVeth      = "192.0.2.1/24"
	tunClusterVeth   = "192.0.2.2/24"
	tunClusterMoved  = "192.0.2.3/24"
	tunSiteAddr      = "10.99.0.1"
	tunClusterAddr   = "10.99.0.2"
	tunListenPort    = 51820
	tunOpenPort      = 7070 // accepted from the tunnel by the site's policy
	tunClosedPort    = 7071 // dropped by the site's default input policy
	tunHandshakeWait = 20 * time.Second
	tunIOTimeout     = 5 * time.Second
)

// tunIfName is a tunnel interface name unique to this test process: the
// userspace control sockets in /var/run/wireguard are shared by every
// namespace, so two tunnels must never share a name.
func tunIfName(suffix string) string {
	return fmt.Sprintf("efwt%04d%s", os.Getpid()%10000, suffix)
}

// tunPeer and tunPolicy fill testdata/tunnel/*.tmpl.
type tunPeer struct {
	Name, PublicKey, PSKFile, Endpoint, Keepalive string
	AllowedIPs                                    []string
}

type tunPolicy struct {
	Iface, KeyFile, Address string
	ListenPort, OpenPort    int
	// MTU is the tunnel's MTU; 0 is the templates' 1420.
	MTU   int
	Peers []tunPeer
}

// tunRender renders testdata/tunnel/NAME with the shared tunnel template.
func tunRender(t *testing.T, name string, data tunPolicy) string {
	t.Helper()
	dir := filepath.Join("testdata", "tunnel")
	tmpl, err := template.New(name).Option("missingkey=error").
		Funcs(template.FuncMap{"join": strings.Join}).
		ParseFiles(filepath.Join(dir, name), filepath.Join(dir, "tunnel.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// tunLab runs the daemons and edgefwctl of one test and keeps everything
// they printed, so that the test can check that no key material leaked.
type tunLab struct {
	t      *testing.T
	ctl    string // edgefwctl, "" if it did not build
	keyDir string

	mu      sync.Mutex
	outputs []string // every edgefwctl stdout and stderr
	daemons []*edgefwdProcess
	secrets []string // files holding private or preshared keys
}

func newTunLab(t *testing.T) *tunLab {
	t.Helper()
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "wg", "ping", "nft")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		netnstest.Unavailable(t, "tunnel test: userspace WireGuard needs /dev/net/tun: %v", err)
	}
	_, ctl := buildBinaries(t)
	return &tunLab{t: t, ctl: ctl, keyDir: daemonShortDir(t, "keys")}
}

// record keeps output for the key-leak check.
func (l *tunLab) record(out ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outputs = append(l.outputs, out...)
}

// run runs edgefwctl (with --socket unless socket is "") and returns its
// standard output, failing the test unless it exits 0.
func (l *tunLab) run(socket string, args ...string) string {
	l.t.Helper()
	if l.ctl == "" {
		l.t.Fatalf("edgefwctl is not built; cannot run edgefwctl %s", strings.Join(args, " "))
	}
	if socket != "" {
		args = append([]string{"--socket", socket}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.ctl, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	l.record(stdout.String(), stderr.String())
	if err != nil {
		l.t.Fatalf("edgefwctl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// keygen creates a private key file with `edgefwctl keygen` and returns its
// path and public key.
func (l *tunLab) keygen(name string) (path, public string) {
	l.t.Helper()
	path = filepath.Join(l.keyDir, name+".key")
	if l.ctl == "" {
		pub, err := wg.GenerateKeyFile(path)
		if err != nil {
			l.t.Fatal(err)
		}
		public = pub
	} else {
		public = strings.TrimSpace(l.run("", "keygen", path))
	}
	if _, err := wgtypes.ParseKey(public); err != nil {
		l.t.Fatalf("keygen printed %q, not a public key: %v", public, err)
	}
	l.mu.Lock()
	l.secrets = append(l.secrets, path)
	l.mu.Unlock()
	return path, public
}

// psk writes a preshared key file, mode 0600, and returns its path.
func (l *tunLab) psk(name string) string {
	l.t.Helper()
	key, err := wgtypes.GenerateKey()
	if err != nil {
		l.t.Fatal(err)
	}
	path := filepath.Join(l.keyDir, name+".psk")
	if err := os.WriteFile(path, []byte(key.String()+"\n"), 0o600); err != nil {
		l.t.Fatal(err)
	}
	l.mu.Lock()
	l.secrets = append(l.secrets, path)
	l.mu.Unlock()
	return path
}

// start runs edgefwd (debug logging, so that the leak check also covers
// wireguard-go's verbose log) in ns, waits for READY=1 and checks that the
// whole policy, tunnels included, applied.
func (l *tunLab) start(setup edgefwdSetup) *edgefwdProcess {
	l.t.Helper()
	setup.Args = append(setup.Args, "--log-level", "debug")
	p := startEdgefwdReady(l.t, setup)
	l.mu.Lock()
	l.daemons = append(l.daemons, p)
	l.mu.Unlock()
	if st := l.status(p); st.LastApply == nil || !st.LastApply.OK {
		l.t.Fatalf("edgefwd in %s: policy not fully applied: %+v\n%s", p.NS.Name, st.LastApply, p.Log())
	}
	return p
}

// status is `edgefwctl status -o json`.
func (l *tunLab) status(p *edgefwdProcess) *daemon.Status {
	l.t.Helper()
	if l.ctl == "" {
		return p.Status(l.t)
	}
	out := l.run(p.Socket, "status", "-o", "json")
	var st daemon.Status
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		l.t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return &st
}

// counter is the packet count of the named rule in `status -o json`.
func (l *tunLab) counter(p *edgefwdProcess, rule string) uint64 {
	l.t.Helper()
	st := l.status(p)
	for _, r := range st.Rules {
		if r.Name == rule {
			return r.Packets
		}
	}
	l.t.Fatalf("edgefwd in %s: no counter %q in status", p.NS.Name, rule)
	return 0
}

// peers is `edgefwctl peers -o json`.
func (l *tunLab) peers(p *edgefwdProcess) []wg.TunnelStatus {
	l.t.Helper()
	var tunnels []wg.TunnelStatus
	if l.ctl == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if tunnels, err = p.Client().Peers(ctx); err != nil {
			l.t.Fatal(err)
		}
		return tunnels
	}
	out := l.run(p.Socket, "peers", "-o", "json")
	if err := json.Unmarshal([]byte(out), &tunnels); err != nil {
		l.t.Fatalf("peers -o json: %v\n%s", err, out)
	}
	return tunnels
}

// peer is one peer of one tunnel as `edgefwctl peers -o json` reports it.
func (l *tunLab) peer(p *edgefwdProcess, iface, name string) wg.PeerStatus {
	l.t.Helper()
	tunnels := l.peers(p)
	for _, tun := range tunnels {
		if tun.Name != iface {
			continue
		}
		if tun.Backend != "userspace" {
			l.t.Errorf("tunnel %s: backend %q, want userspace (no WireGuard module here)", iface, tun.Backend)
		}
		for _, ps := range tun.Peers {
			if ps.Name == name {
				return ps
			}
		}
	}
	l.t.Fatalf("edgefwd in %s: no peer %q on %s in %+v", p.NS.Name, name, iface, tunnels)
	return wg.PeerStatus{}
}

// reload rewrites the daemon's policy file (which the daemon also sees by
// inotify) and runs `edgefwctl reload`, which returns once it applied.
func (l *tunLab) reload(p *edgefwdProcess, policy string) {
	l.t.Helper()
	daemonWriteAtomic(l.t, p.PolicyPath, policy)
	l.run(p.Socket, "reload")
	if st := l.status(p); st.LastApply == nil || !st.LastApply.OK {
		l.t.Fatalf("edgefwd in %s: reload not fully applied: %+v\n%s", p.NS.Name, st.LastApply, p.Log())
	}
}

// stopAll stops every daemon still running, so that their logs are complete.
func (l *tunLab) stopAll() {
	l.t.Helper()
	for _, p := range l.daemons {
		if !p.Exited() {
			p.Signal(l.t, syscall.SIGTERM)
			if code := p.WaitExit(l.t); code != 0 {
				l.t.Errorf("edgefwd in %s exited %d\n%s", p.NS.Name, code, p.Log())
			}
		}
	}
}

// checkNoSecrets asserts that no private or preshared key of the test, in
// base64 as stored or in hex as WireGuard's control protocol spells it,
// appears in any daemon log or edgefwctl output.
func (l *tunLab) checkNoSecrets() {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	texts := map[string]string{}
	for i, out := range l.outputs {
		texts[fmt.Sprintf("edgefwctl output #%d", i)] = out
	}
	for i, p := range l.daemons {
		texts[fmt.Sprintf("edgefwd log #%d (%s)", i, p.NS.Name)] = p.Log()
	}
	for _, file := range l.secrets {
		data, err := os.ReadFile(file)
		if err != nil {
			l.t.Fatal(err)
		}
		b64 := strings.TrimSpace(string(data))
		key, err := wgtypes.ParseKey(b64)
		if err != nil {
			l.t.Fatalf("%s: %v", file, err)
		}
		forms := []string{b64, strings.TrimRight(b64, "="), fmt.Sprintf("%x", key[:])}
		for what, text := range texts {
			for _, f := range forms {
				if strings.Contains(text, f) {
					l.t.Errorf("the key in %s appears in %s", file, what)
				}
			}
		}
	}
	l.t.Logf("no key material in %d texts (%d edgefwctl outputs, %d daemon logs) for %d key files",
		len(texts), len(l.outputs), len(l.daemons), len(l.secrets))
}

// tunWgShow runs `wg show IFACE WHAT` in ns and returns its lines as
// public key → rest of the line.
func tunWgShow(t *testing.T, ns *netnstest.NS, iface, what string) map[string]string {
	t.Helper()
	out := ns.MustRun(t, "wg", "show", iface, what)
	m := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		key, rest, _ := strings.Cut(line, "\t")
		m[key] = rest
	}
	return m
}

// tunWaitHandshake polls `wg show IFACE latest-handshakes` until the peer's
// handshake is later than after (a Unix time; 0 waits for the first one)
// and returns when it saw it.
func tunWaitHandshake(t *testing.T, ns *netnstest.NS, iface, peerKey string, after int64, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := tunWgShow(t, ns, iface, "latest-handshakes")[peerKey]
		var sec int64
		fmt.Sscan(v, &sec)
		if sec > after {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no handshake of %s on %s (after %d) within %s; wg show:\n%s",
				peerKey, iface, after, timeout, ns.MustRun(t, "wg", "show", iface))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tunPing pings addr once from ns and reports whether a reply came.
func tunPing(ns *netnstest.NS, addr string) (bool, string) {
	out, err := ns.Run("ping", "-n", "-c1", "-W2", addr)
	return err == nil, out
}

// tunEchoServer listens on addr in ns and echoes every line back; the
// returned counter counts accepted connections.
func tunEchoServer(t *testing.T, ns *netnstest.NS, addr string) *atomic.Int32 {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return &accepted
}

// tunDial opens a TCP connection from ns.
func tunDial(ns *netnstest.NS, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, timeout)
		return err
	})
	return c, err
}

// tunConn is a TCP session kept open across reloads.
type tunConn struct {
	c net.Conn
	r *bufio.Reader
}

// exchange sends a line and expects it echoed.
func (c *tunConn) exchange(t *testing.T, line string) {
	t.Helper()
	_ = c.c.SetDeadline(time.Now().Add(tunIOTimeout))
	if _, err := fmt.Fprintf(c.c, "%s\n", line); err != nil {
		t.Fatalf("long-lived TCP session: write %q: %v", line, err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("long-lived TCP session: read %q, %v; want %q echoed", got, err, line)
	}
}

// tunHostsFile makes `ip netns exec ns.Name …` see content as /etc/hosts:
// ip(8) bind-mounts /etc/netns/NAME/hosts over /etc/hosts for the commands
// it runs. This is the one place the tests write under /etc; the directory
// is named after the test's own namespace and removed afterwards.
func tunHostsFile(t *testing.T, ns *netnstest.NS, content string) string {
	t.Helper()
	_, err := os.Stat("/etc/netns")
	createdParent := errors.Is(err, os.ErrNotExist)
	dir := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.RemoveAll(dir)
		if createdParent {
			_ = os.Remove("/etc/netns") // only if empty: another test may use it
		}
	})
	path := filepath.Join(dir, "hosts")
	tunWriteInPlace(t, path, content)
	return path
}

// tunWriteInPlace rewrites a file keeping its inode: the bind mount that
// ip netns exec made shows the old inode, so a rename would not be seen.
func tunWriteInPlace(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTunnelSiteCluster runs the site and cluster daemons: handshake, ping
// and TCP through the tunnel, the site's input policy applied to tunnel
// traffic, the implicit listen-port rule, then peers added, changed and
// removed on the cluster by reloads that leave the site's session, and a
// TCP connection through it, untouched.
func TestTunnelSiteCluster(t *testing.T) {
	t.Parallel()
	l := newTunLab(t)
	site := netnstest.New(t, "site")
	cluster := netnstest.New(t, "clus")
	netnstest.Link(t, site, []string{tunSiteVeth}, cluster, []string{tunClusterVeth})
	siteIf, clusterIf := tunIfName("a"), tunIfName("b")

	siteKey, sitePub := l.keygen("site")
	clusterKey, clusterPub := l.keygen("cluster")
	psk := l.psk("site-cluster")
	_, site2Pub := l.keygen("site2")
	clusterHost := strings.Split(tunClusterVeth, "/")[0]

	sitePolicy := tunRender(t, "site.yaml.tmpl", tunPolicy{
		Iface: siteIf, KeyFile: siteKey, Address: tunSiteAddr + "/24", ListenPort: tunListenPort, OpenPort: tunOpenPort,
		Peers: []tunPeer{{Name: "cluster-gw", PublicKey: clusterPub, PSKFile: psk,
			Endpoint:   fmt.Sprintf("%s:%d", clusterHost, tunListenPort),
			AllowedIPs: []string{"10.99.0.0/24"}, Keepalive: "25s"}},
	})
	sitePeer := tunPeer{Name: "site", PublicKey: sitePub, PSKFile: psk, AllowedIPs: []string{tunSiteAddr + "/32"}}
	clusterPolicy := func(extra ...tunPeer) string {
		return tunRender(t, "cluster.yaml.tmpl", tunPolicy{
			Iface: clusterIf, KeyFile: clusterKey, Address: tunClusterAddr + "/24", ListenPort: tunListenPort,
			Peers: append([]tunPeer{sitePeer}, extra...),
		})
	}

	// The cluster gateway first (it waits for sites), then the site, which
	// initiates the handshake at once (persistent keepalive).
	cd := l.start(edgefwdSetup{NS: cluster, Policy: clusterPolicy()})
	tunnelRule := "edgefw-tunnel-" + clusterIf
	portBefore := l.counter(cd, tunnelRule)
	sd := l.start(edgefwdSetup{NS: site, Policy: sitePolicy})
	ready := time.Now()
	seen := tunWaitHandshake(t, site, siteIf, clusterPub, 0, tunHandshakeWait)
	hs := l.peer(sd, siteIf, "cluster-gw").LastHandshake
	t.Logf("time to first handshake (second daemon, the site): %s from edgefwd start by the handshake's own timestamp, "+
		"%s until `wg show` showed it; READY=1 after %s",
		hs.Sub(sd.Started).Round(time.Millisecond), seen.Sub(sd.Started).Round(time.Millisecond),
		ready.Sub(sd.Started).Round(time.Millisecond))

	t.Run("handshake", func(t *testing.T) {
		if ep := tunWgShow(t, site, siteIf, "endpoints")[clusterPub]; ep != fmt.Sprintf("%s:%d", clusterHost, tunListenPort) {
			t.Errorf("site's endpoint of the cluster = %q", ep)
		}
		if ps := l.peer(cd, clusterIf, "site"); !ps.Up || ps.LastHandshake.IsZero() {
			t.Errorf("cluster's view of the site: %+v", ps)
		}
		// The site's initiation reached the cluster's listen port through
		// its default-drop input policy: by the implicit rule.
		if after := l.counter(cd, tunnelRule); after <= portBefore {
			t.Errorf("counter %s on the cluster: %d before the handshake, %d after; the listen port was not reached through its rule",
				tunnelRule, portBefore, after)
		}
	})

	t.Run("ping", func(t *testing.T) {
		if ok, out := tunPing(site, tunClusterAddr); !ok {
			t.Errorf("ping site → cluster through the tunnel failed:\n%s", out)
		}
		before := l.counter(sd, "tunnel-ping")
		if ok, out := tunPing(cluster, tunSiteAddr); !ok {
			t.Errorf("ping cluster → site through the tunnel failed:\n%s", out)
		}
		if after := l.counter(sd, "tunnel-ping"); after <= before {
			t.Errorf("site's tunnel-ping counter %d → %d", before, after)
		}
	})

	openAccepted := tunEchoServer(t, site, fmt.Sprintf(":%d", tunOpenPort))
	closedAccepted := tunEchoServer(t, site, fmt.Sprintf(":%d", tunClosedPort))
	var session *tunConn
	t.Cleanup(func() {
		if session != nil {
			session.c.Close()
		}
	})

	t.Run("site input policy on tunnel traffic", func(t *testing.T) {
		appBefore := l.counter(sd, "tunnel-app")
		c, err := tunDial(cluster, fmt.Sprintf("%s:%d", tunSiteAddr, tunOpenPort), tunIOTimeout)
		if err != nil {
			t.Fatalf("TCP cluster → site port %d (accepted by tunnel-app): %v", tunOpenPort, err)
		}
		session = &tunConn{c: c, r: bufio.NewReader(c)}
		session.exchange(t, "hello through the tunnel")
		if after := l.counter(sd, "tunnel-app"); after <= appBefore {
			t.Errorf("site's tunnel-app counter %d → %d", appBefore, after)
		}
		if openAccepted.Load() != 1 {
			t.Errorf("port %d accepted %d connections, want 1", tunOpenPort, openAccepted.Load())
		}

		dropBefore := l.counter(sd, "edgefw-default-input")
		c2, err := tunDial(cluster, fmt.Sprintf("%s:%d", tunSiteAddr, tunClosedPort), 1500*time.Millisecond)
		if err == nil {
			c2.Close()
			t.Fatalf("TCP cluster → site port %d connected; the site's policy drops it", tunClosedPort)
		}
		if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
			t.Errorf("TCP to the dropped port failed with %v, want a timeout (dropped, not refused)", err)
		}
		if dropAfter := l.counter(sd, "edgefw-default-input"); dropAfter <= dropBefore {
			t.Errorf("site's edgefw-default-input counter %d → %d after a dropped connection attempt", dropBefore, dropAfter)
		}
		if closedAccepted.Load() != 0 {
			t.Errorf("the listener behind the dropped port accepted %d connections", closedAccepted.Load())
		}
	})
	if session == nil {
		t.Fatal("no TCP session through the tunnel; cannot test reloads")
	}

	// What must survive every reload below: the handshake on both sides
	// (to the nanosecond) and the TCP session.
	siteHS := l.peer(sd, siteIf, "cluster-gw").LastHandshake
	clusterHS := l.peer(cd, clusterIf, "site").LastHandshake
	siteHSSec := tunWgShow(t, site, siteIf, "latest-handshakes")[clusterPub]
	untouched := func(t *testing.T, step string) {
		t.Helper()
		if got := l.peer(sd, siteIf, "cluster-gw").LastHandshake; !got.Equal(siteHS) {
			t.Errorf("%s: site's handshake with the cluster moved from %s to %s", step, siteHS, got)
		}
		if got := l.peer(cd, clusterIf, "site").LastHandshake; !got.Equal(clusterHS) {
			t.Errorf("%s: cluster's handshake with the site moved from %s to %s", step, clusterHS, got)
		}
		if got := tunWgShow(t, site, siteIf, "latest-handshakes")[clusterPub]; got != siteHSSec {
			t.Errorf("%s: wg show latest-handshakes %s → %s", step, siteHSSec, got)
		}
		session.exchange(t, "still here after "+step)
		if ok, out := tunPing(site, tunClusterAddr); !ok {
			t.Errorf("%s: ping through the tunnel failed:\n%s", step, out)
		}
	}
	routes := func(t *testing.T) string {
		t.Helper()
		return cluster.MustRun(t, "ip", "-4", "route", "show", "dev", clusterIf)
	}
	peerKeys := func(t *testing.T) []string {
		t.Helper()
		return slices.Sorted(func(yield func(string) bool) {
			for k := range tunWgShow(t, cluster, clusterIf, "peers") {
				if !yield(k) {
					return
				}
			}
		})
	}
	site2 := func(allowed ...string) tunPeer {
		// A second site whose endpoint does not exist on the veth: the
		// cluster configures it and never reaches it.
		return tunPeer{Name: "site2", PublicKey: site2Pub, Endpoint: fmt.Sprintf("192.0.2.9:%d", tunListenPort),
			AllowedIPs: allowed}
	}

	t.Run("add peer", func(t *testing.T) {
		l.reload(cd, clusterPolicy(site2("10.99.0.3/32", "10.98.1.0/24")))
		if got, want := peerKeys(t), slices.Sorted(slices.Values([]string{sitePub, site2Pub})); !slices.Equal(got, want) {
			t.Errorf("cluster's peers = %v, want %v", got, want)
		}
		if r := routes(t); !strings.Contains(r, "10.98.1.0/24") {
			t.Errorf("no route for site2's 10.98.1.0/24 via %s:\n%s", clusterIf, r)
		}
		untouched(t, "adding site2")
	})

	t.Run("change allowedIPs", func(t *testing.T) {
		l.reload(cd, clusterPolicy(site2("10.99.0.3/32", "10.98.2.0/24")))
		r := routes(t)
		if !strings.Contains(r, "10.98.2.0/24") || strings.Contains(r, "10.98.1.0/24") {
			t.Errorf("routes via %s after changing site2's allowedIPs to 10.98.2.0/24:\n%s", clusterIf, r)
		}
		ips := strings.Fields(tunWgShow(t, cluster, clusterIf, "allowed-ips")[site2Pub])
		slices.Sort(ips)
		if want := []string{"10.98.2.0/24", "10.99.0.3/32"}; !slices.Equal(ips, want) {
			t.Errorf("site2's allowed IPs = %v, want %v", ips, want)
		}
		untouched(t, "changing site2's allowedIPs")
	})

	t.Run("remove peer", func(t *testing.T) {
		l.reload(cd, clusterPolicy())
		if got := peerKeys(t); !slices.Equal(got, []string{sitePub}) {
			t.Errorf("cluster's peers after removing site2 = %v, want only the site %s", got, sitePub)
		}
		if r := routes(t); strings.Contains(r, "10.98.") {
			t.Errorf("site2's route left behind:\n%s", r)
		}
		untouched(t, "removing site2")
	})

	// Everything the operator would look at, then the leak check over all
	// of it and the complete logs.
	l.run(sd.Socket, "peers")
	l.run(cd.Socket, "peers")
	l.run(sd.Socket, "status")
	session.c.Close()
	l.stopAll()
	l.checkNoSecrets()
}

// TestTunnelEndpointNameFollowed: the site reaches the cluster gateway by a
// host name. The gateway is replaced by one at a new address (same key, a
// fresh WireGuard device that knows no endpoint for the site, so it cannot
// roam back to it) and the name is changed; `edgefwctl reload` re-resolves
// the name, the site's endpoint follows and a new handshake completes.
func TestTunnelEndpointNameFollowed(t *testing.T) {
	t.Parallel()
	l := newTunLab(t)
	site := netnstest.New(t, "site")
	cluster := netnstest.New(t, "clus")
	_, clusterVeth := netnstest.Link(t, site, []string{tunSiteVeth}, cluster, []string{tunClusterVeth})
	siteIf, clusterIf := tunIfName("c"), tunIfName("d")
	oldHost := strings.Split(tunClusterVeth, "/")[0]
	newHost := strings.Split(tunClusterMoved, "/")[0]
	const name = "gw.cluster.test"
	hosts := tunHostsFile(t, site, fmt.Sprintf("# tunnel test %s\n%s %s\n", t.Name(), oldHost, name))

	siteKey, sitePub := l.keygen("site")
	clusterKey, clusterPub := l.keygen("cluster")
	psk := l.psk("site-cluster")
	sitePolicy := tunRender(t, "site.yaml.tmpl", tunPolicy{
		Iface: siteIf, KeyFile: siteKey, Address: tunSiteAddr + "/24", ListenPort: tunListenPort, OpenPort: tunOpenPort,
		Peers: []tunPeer{{Name: "cluster-gw", PublicKey: clusterPub, PSKFile: psk,
			Endpoint:   fmt.Sprintf("%s:%d", name, tunListenPort),
			AllowedIPs: []string{"10.99.0.0/24"}, Keepalive: "25s"}},
	})
	clusterPolicy := tunRender(t, "cluster.yaml.tmpl", tunPolicy{
		Iface: clusterIf, KeyFile: clusterKey, Address: tunClusterAddr + "/24", ListenPort: tunListenPort,
		Peers: []tunPeer{{Name: "site", PublicKey: sitePub, PSKFile: psk, AllowedIPs: []string{tunSiteAddr + "/32"}}},
	})

	cd := l.start(edgefwdSetup{NS: cluster, Policy: clusterPolicy})
	sd := l.start(edgefwdSetup{NS: site, Policy: sitePolicy})
	tunWaitHandshake(t, site, siteIf, clusterPub, 0, tunHandshakeWait)
	oldEndpoint := fmt.Sprintf("%s:%d", oldHost, tunListenPort)
	if ep := tunWgShow(t, site, siteIf, "endpoints")[clusterPub]; ep != oldEndpoint {
		t.Fatalf("site's endpoint of %s:%d = %q, want %s (from %s)", name, tunListenPort, ep, oldEndpoint, hosts)
	}
	if ok, out := tunPing(site, tunClusterAddr); !ok {
		t.Fatalf("ping through the tunnel failed:\n%s", out)
	}
	firstHS := l.peer(sd, siteIf, "cluster-gw").LastHandshake

	// The gateway goes away; one ping into the dead session starts the
	// site's WireGuard timer for a new handshake (15 s after unanswered
	// data), which then goes wherever the endpoint points.
	cd.Signal(t, syscall.SIGTERM)
	if code := cd.WaitExit(t); code != 0 {
		t.Fatalf("cluster edgefwd exited %d", code)
	}
	moved := time.Now()
	if ok, _ := tunPing(site, tunClusterAddr); ok {
		t.Fatal("ping through the tunnel succeeded with the gateway stopped")
	}
	cluster.MustRun(t, "ip", "addr", "del", tunClusterVeth, "dev", clusterVeth)
	cluster.MustRun(t, "ip", "addr", "add", tunClusterMoved, "dev", clusterVeth)
	cd2 := l.start(edgefwdSetup{NS: cluster, PolicyPath: cd.PolicyPath, StateDir: cd.StateDir})
	tunWriteInPlace(t, hosts, fmt.Sprintf("# tunnel test %s, gateway moved\n%s %s\n", t.Name(), newHost, name))

	// Go's resolver re-reads /etc/hosts at most every 5 s: reload until the
	// answer changes.
	newEndpoint := fmt.Sprintf("%s:%d", newHost, tunListenPort)
	deadline := time.Now().Add(15 * time.Second)
	reloads := 0
	for {
		l.run(sd.Socket, "reload")
		reloads++
		if tunWgShow(t, site, siteIf, "endpoints")[clusterPub] == newEndpoint {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d reloads in 15 s the site's endpoint is still %q, want %s\nsite log:\n%s",
				reloads, tunWgShow(t, site, siteIf, "endpoints")[clusterPub], newEndpoint, sd.Log())
		}
		time.Sleep(time.Second)
	}
	t.Logf("endpoint followed the name after %d reload(s), %s after the move", reloads, time.Since(moved).Round(time.Millisecond))
	if !strings.Contains(sd.Log(), "peer endpoint address changed") {
		t.Errorf("the site's log does not say that the endpoint's address changed:\n%s", sd.Log())
	}
	if ps := l.peer(sd, siteIf, "cluster-gw"); ps.Endpoint != newEndpoint {
		t.Errorf("edgefwctl peers: endpoint %q, want %s", ps.Endpoint, newEndpoint)
	}

	// A new handshake with the new gateway; traffic flows again.
	deadline = time.Now().Add(40 * time.Second)
	for {
		if ok, _ := tunPing(site, tunClusterAddr); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no traffic through the tunnel to the moved gateway within 40 s\nsite:\n%s\ncluster:\n%s",
				site.MustRun(t, "wg", "show", siteIf), cluster.MustRun(t, "wg", "show", clusterIf))
		}
	}
	newHS := l.peer(sd, siteIf, "cluster-gw").LastHandshake
	if !newHS.After(firstHS) {
		t.Errorf("site's handshake %s is not newer than the first one %s", newHS, firstHS)
	}
	if ps := l.peer(cd2, clusterIf, "site"); !ps.Up || ps.Endpoint != fmt.Sprintf("%s:%d", strings.Split(tunSiteVeth, "/")[0], tunListenPort) {
		t.Errorf("new gateway's view of the site: %+v", ps)
	}
	if ep := tunWgShow(t, site, siteIf, "endpoints")[clusterPub]; ep != newEndpoint {
		t.Errorf("site's endpoint after the handshake = %q, want %s", ep, newEndpoint)
	}
	t.Logf("new handshake %s after the gateway moved", newHS.Sub(moved).Round(time.Millisecond))

	l.stopAll()
	l.checkNoSecrets()
}
