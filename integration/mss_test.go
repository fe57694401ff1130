package integration

// End-to-end test of MSS clamping on a tunnel: a LAN client behind the site
// router connects through the tunnel to a server behind the cluster
// gateway, both routers running edgefwd, and tcpdump inside the namespaces
// reads the MSS option of the SYN and of the SYN-ACK where they cross.

import (
	"bufio"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// Addresses and MTUs of the MSS test. The site's tunnel has a smaller MTU
// than the cluster's (a site on a mobile uplink, say), so what the client
// receives shows the site's own clamp rather than the cluster's.
const (
	mssClientAddr  = "10.98.10.2/24"
	mssRouterAddr  = "10.98.10.1/24"
	mssGatewayAddr = "10.97.0.1/24"
	mssServerAddr  = "10.97.0.2/24"
	mssServerPort  = 8080
	mssSiteMTU     = 1380
	mssClusterMTU  = 1420
	mssLinkMTU     = 1500 // a veth's default MTU
	// mssIPv4Headers is what an MSS leaves out of an IPv4 packet: the IPv4
	// and TCP headers without options (RFC 879, RFC 6691). nft's `rt mtu`
	// (net/netfilter/nft_rt.c, get_tcpmss) subtracts the same.
	mssIPv4Headers = 20 + 20
)

// tcpdump -v prints a TCP segment as "… Flags [S.], … options [mss 1380,…]".
var mssSegment = regexp.MustCompile(`Flags \[(S\.?)\].*options \[mss (\d+)`)

// mssCapture is tcpdump printing the TCP segments with SYN set, to or
// from the server port, that cross one interface.
type mssCapture struct {
	where string
	out   *lockedBuffer
}

// mssStartCapture starts tcpdump on iface in ns and waits until it listens.
// It is stopped when the test ends.
func mssStartCapture(t *testing.T, ns *netnstest.NS, iface, where string) *mssCapture {
	t.Helper()
	c := &mssCapture{where: where, out: &lockedBuffer{}}
	stderr := &lockedBuffer{}
	cmd := ns.Command("tcpdump", "-i", iface, "-nn", "-v", "-l", "--immediate-mode",
		fmt.Sprintf("tcp port %d and tcp[tcpflags] & tcp-syn != 0", mssServerPort))
	cmd.Stdout, cmd.Stderr = c.out, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcpdump on %s: %v", where, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	daemonPoll(t, daemonReadyTimeout, "tcpdump to listen on "+where, func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("tcpdump on %s exited: %s", where, stderr.String())
		default:
		}
		return strings.Contains(stderr.String(), "listening on "+iface), stderr.String()
	})
	return c
}

// mss waits until the capture holds at least one segment with the flags
// ("S" a SYN, "S." a SYN-ACK) and returns the MSS of each one seen.
func (c *mssCapture) mss(t *testing.T, flags string) []int {
	t.Helper()
	var found []int
	daemonPoll(t, daemonReadyTimeout, fmt.Sprintf("a [%s] segment %s", flags, c.where), func() (bool, string) {
		found = nil
		for _, m := range mssSegment.FindAllStringSubmatch(c.out.String(), -1) {
			if m[1] == flags {
				n, _ := strconv.Atoi(m[2])
				found = append(found, n)
			}
		}
		return len(found) > 0, c.out.String()
	})
	return found
}

// TestTunnelMSSClamp: a forwarded connection into the tunnel gets the
// tunnel's MSS in both directions. The site router clamps the client's
// SYN on its way into the tunnel and the server's SYN-ACK on its way out
// of it, so neither end sends segments the tunnel cannot carry. Without
// the SYN-ACK clamp the client would learn the server's MSS, derived from
// the server's 1500-byte link, and rely on path MTU discovery.
func TestTunnelMSSClamp(t *testing.T) {
	t.Parallel()
	l := newTunLab(t)
	netnstest.RequireTool(t, "tcpdump")
	lan := netnstest.New(t, "lan")
	site := netnstest.New(t, "site")
	cluster := netnstest.New(t, "clus")
	srv := netnstest.New(t, "srv")
	clientIf, _ := netnstest.Link(t, lan, []string{mssClientAddr}, site, []string{mssRouterAddr})
	netnstest.Link(t, site, []string{tunSiteVeth}, cluster, []string{tunClusterVeth})
	_, serverIf := netnstest.Link(t, cluster, []string{mssGatewayAddr}, srv, []string{mssServerAddr})
	addr := func(cidr string) string { return netip.MustParsePrefix(cidr).Addr().String() }
	subnet := func(cidr string) string { return netip.MustParsePrefix(cidr).Masked().String() }
	lan.MustRun(t, "ip", "route", "add", "default", "via", addr(mssRouterAddr))
	srv.MustRun(t, "ip", "route", "add", "default", "via", addr(mssGatewayAddr))
	for _, router := range []*netnstest.NS{site, cluster} {
		router.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	siteIf, clusterIf := tunIfName("m"), tunIfName("n")

	siteKey, sitePub := l.keygen("site")
	clusterKey, clusterPub := l.keygen("cluster")
	sitePolicy := tunRender(t, "site.yaml.tmpl", tunPolicy{
		Iface: siteIf, KeyFile: siteKey, Address: tunSiteAddr + "/24", ListenPort: tunListenPort, OpenPort: tunOpenPort,
		MTU: mssSiteMTU,
		Peers: []tunPeer{{Name: "cluster-gw", PublicKey: clusterPub,
			Endpoint:   fmt.Sprintf("%s:%d", addr(tunClusterVeth), tunListenPort),
			AllowedIPs: []string{"10.99.0.0/24", subnet(mssServerAddr)}, Keepalive: "25s"}},
	})
	clusterPolicy := tunRender(t, "cluster.yaml.tmpl", tunPolicy{
		Iface: clusterIf, KeyFile: clusterKey, Address: tunClusterAddr + "/24", ListenPort: tunListenPort,
		MTU: mssClusterMTU,
		Peers: []tunPeer{{Name: "site", PublicKey: sitePub,
			AllowedIPs: []string{tunSiteAddr + "/32", subnet(mssClientAddr)}}},
	})
	l.start(edgefwdSetup{NS: cluster, Policy: clusterPolicy})
	l.start(edgefwdSetup{NS: site, Policy: sitePolicy})
	tunWaitHandshake(t, site, siteIf, clusterPub, 0, tunHandshakeWait)

	atClient := mssStartCapture(t, lan, clientIf, "on the client's link")
	atServer := mssStartCapture(t, srv, serverIf, "on the server's link")
	inSiteTunnel := mssStartCapture(t, site, siteIf, "in the site's tunnel")

	accepted := tunEchoServer(t, srv, fmt.Sprintf(":%d", mssServerPort))
	c, err := tunDial(lan, fmt.Sprintf("%s:%d", addr(mssServerAddr), mssServerPort), tunIOTimeout)
	if err != nil {
		t.Fatalf("TCP client → server through the tunnel: %v", err)
	}
	defer c.Close()
	(&tunConn{c: c, r: bufio.NewReader(c)}).exchange(t, "hello across the tunnel")
	if accepted.Load() != 1 {
		t.Errorf("the server accepted %d connections, want 1", accepted.Load())
	}

	// Each end announces the MSS of its own 1500-byte link; each router
	// clamps what it forwards into or out of its tunnel to the tunnel's
	// MTU, minus the headers, and only ever lowers it.
	unclamped := mssLinkMTU - mssIPv4Headers
	bySite := mssSiteMTU - mssIPv4Headers
	byCluster := mssClusterMTU - mssIPv4Headers
	checks := []struct {
		what  string
		capt  *mssCapture
		flags string
		want  int
	}{
		{"SYN the client sent", atClient, "S", unclamped},
		{"SYN that entered the site's tunnel", inSiteTunnel, "S", bySite},
		{"SYN the server received", atServer, "S", bySite},
		{"SYN-ACK the server sent", atServer, "S.", unclamped},
		{"SYN-ACK that left the cluster's tunnel into the site's", inSiteTunnel, "S.", byCluster},
		{"SYN-ACK the client received", atClient, "S.", bySite},
	}
	for _, ck := range checks {
		got := ck.capt.mss(t, ck.flags)
		if slices.ContainsFunc(got, func(mss int) bool { return mss != ck.want }) {
			t.Errorf("%s (%s): MSS %v, want %d", ck.what, ck.capt.where, got, ck.want)
		} else {
			t.Logf("%s: MSS %v", ck.what, got)
		}
	}
}
