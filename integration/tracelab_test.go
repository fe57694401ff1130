package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/nft"
)

// traceLab is three namespaces: host, whose firewall is traced, between
// client (on the host's interface ifA) and lan (on ifB). The host routes
// between them.
type traceLab struct {
	host, client, lan *netnstest.NS
	ifA, ifB          string
	policyPath        string
	ctl               string
	// servers by namespace name: each answers TCP on its ports.
	servers map[string]*traceServer
}

// Addresses of the lab. The client holds several, each standing for what
// its name says; all are inside trusted but the .100 and ::100 ones
// (trusted is 192.0.2.0/26, 2001:db8::/122).
const (
	traceHostA4, traceHostA6 = "192.0.2.1", "2001:db8::1"
	traceHostB4, traceHostB6 = "198.51.100.1", "2001:db8:1::1"
	traceLAN4, traceLAN6     = "198.51.100.2", "2001:db8:1::2"
	tracePlain4, tracePlain6 = "192.0.2.2", "2001:db8::2"
	traceExcept4, traceExc6  = "192.0.2.3", "2001:db8::3"
	traceBlock4, traceBlock6 = "192.0.2.66", "2001:db8::66"
	traceRefuse4, traceRef6  = "192.0.2.77", "2001:db8::77"
	traceOut4, traceOut6     = "192.0.2.100", "2001:db8::100"
)

func newTraceLab(t *testing.T) *traceLab {
	t.Helper()
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft", "ping", "sysctl")
	bin, ctl := buildBinaries(t)
	l := &traceLab{host: netnstest.New(t, "trhost"), client: netnstest.New(t, "trcli"), lan: netnstest.New(t, "trlan"), ctl: ctl}
	var clientAddrs []string
	for _, a := range []string{tracePlain4, traceExcept4, traceBlock4, traceRefuse4, traceOut4} {
		clientAddrs = append(clientAddrs, a+"/24")
	}
	for _, a := range []string{tracePlain6, traceExc6, traceBlock6, traceRef6, traceOut6} {
		clientAddrs = append(clientAddrs, a+"/64")
	}
	l.ifA, _ = netnstest.Link(t, l.host, []string{traceHostA4 + "/24", traceHostA6 + "/64"}, l.client, clientAddrs)
	l.ifB, _ = netnstest.Link(t, l.host, []string{traceHostB4 + "/24", traceHostB6 + "/64"}, l.lan, []string{traceLAN4 + "/24", traceLAN6 + "/64"})
	l.host.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	l.client.MustRun(t, "ip", "route", "add", "198.51.100.0/24", "via", traceHostA4)
	l.client.MustRun(t, "ip", "-6", "route", "add", "2001:db8:1::/64", "via", traceHostA6)
	l.lan.MustRun(t, "ip", "route", "add", "192.0.2.0/24", "via", traceHostB4)
	l.lan.MustRun(t, "ip", "-6", "route", "add", "2001:db8::/64", "via", traceHostB6)

	doc := strings.NewReplacer("IFA", l.ifA, "IFB", l.ifB).Replace(tracePolicy)
	l.policyPath = filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(l.policyPath, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code, _ := runOnce(t, l.host, bin, l.policyPath, filepath.Join(t.TempDir(), "state")); code != 0 {
		t.Fatalf("edgefwd --once exited %d:\n%s", code, out)
	}
	l.servers = map[string]*traceServer{
		l.host.Name:   traceServe(t, l.host, 22, 25, 80, 81, 8080, 9100),
		l.lan.Name:    traceServe(t, l.lan, 25, 80, 81),
		l.client.Name: traceServe(t, l.client, 80, 7070, 7071),
	}
	return l
}

// traceServer answers TCP connections: it echoes one byte, then reads
// until the client ends the connection. The client ends it with a reset
// (see traceDial), so when done gets a value, every packet of the
// connection has passed the firewall: the reset is the last.
type traceServer struct {
	done chan struct{}
}

func traceServe(t *testing.T, ns *netnstest.NS, ports ...int) *traceServer {
	t.Helper()
	s := &traceServer{done: make(chan struct{}, 8)}
	for _, port := range ports {
		var ln net.Listener
		err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", ":"+strconv.Itoa(port)); return err })
		if err != nil {
			t.Fatalf("listen on %d in %s: %v", port, ns.Name, err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer func() { c.Close(); s.done <- struct{}{} }()
					_ = c.SetDeadline(time.Now().Add(traceAcceptTimeout))
					if _, err := io.Copy(c, io.LimitReader(c, 1)); err == nil {
						_, _ = io.Copy(io.Discard, c)
					}
				}()
			}
		}()
	}
	return s
}

// Timeouts. A SYN that is dropped gets no answer at all; 700 ms is far
// more than a veth needs to answer one and less than TCP's first
// retransmission (1 s), so a dropped connection sends exactly one SYN. What
// should get through gets much longer.
const (
	traceDropTimeout   = 700 * time.Millisecond
	traceAcceptTimeout = 10 * time.Second
)

// Outcomes a sender sees.
const (
	traceAccepted = "accepted"
	traceRefused  = "refused"
	traceTimedOut = "timed out"
)

// trace runs `edgefwctl trace --policy FILE -o json ARGS`.
func (l *traceLab) trace(t *testing.T, args []string) nft.Verdict {
	t.Helper()
	cmd := exec.Command(l.ctl, append([]string{"trace", "--policy", l.policyPath, "-o", "json"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("edgefwctl trace %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	var v nft.Verdict
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("edgefwctl trace %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// counters reads the host's counters as `nft -j list counters` lists them.
func (l *traceLab) counters(t *testing.T) map[string]uint64 {
	t.Helper()
	var listing struct {
		Nftables []struct {
			Counter *struct {
				Table   string `json:"table"`
				Name    string `json:"name"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	out := l.host.MustRun(t, "nft", "-j", "list", "counters")
	if err := json.Unmarshal([]byte(out), &listing); err != nil {
		t.Fatalf("nft -j list counters: %v\n%s", err, out)
	}
	c := map[string]uint64{}
	for _, o := range listing.Nftables {
		if o.Counter != nil && o.Counter.Table == nft.TableName {
			c[o.Counter.Name] = o.Counter.Packets
		}
	}
	return c
}

// traceDelta gives the packets each counter counted between two readings.
func traceDelta(before, after map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for name, n := range after {
		if n != before[name] {
			d[name] = n - before[name]
		}
	}
	return d
}

// send makes the cell's attempt and returns what the sender saw.
func (l *traceLab) send(t *testing.T, c traceCell, action string, srcPort int) string {
	t.Helper()
	timeout := traceAcceptTimeout
	if action == "drop" {
		timeout = traceDropTimeout
	}
	if c.proto == "icmp" {
		return tracePing(t, c.from, c.src, c.dst, timeout)
	}
	var got string
	err := c.from.Do(func() (err error) {
		got, err = traceDial(c.src, srcPort, net.JoinHostPort(c.dst, strconv.Itoa(c.port)), timeout)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	if got == traceAccepted {
		select {
		case <-l.servers[c.to.Name].done:
		case <-time.After(traceAcceptTimeout):
			t.Fatalf("%s: the server did not see the connection end", c.name)
		}
	}
	return got
}

// traceDial connects from src:srcPort, exchanges one byte and ends the
// connection with a reset, which the server sees last.
func traceDial(src string, srcPort int, dst string, timeout time.Duration) (string, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src), Port: srcPort}}
	c, err := d.Dial("tcp", dst)
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return traceRefused, nil
	case errors.As(err, &ne) && ne.Timeout():
		return traceTimedOut, nil
	case err != nil:
		return "", err
	}
	tc := c.(*net.TCPConn)
	defer func() { _ = tc.SetLinger(0); tc.Close() }()
	if err := tc.SetDeadline(time.Now().Add(traceAcceptTimeout)); err != nil {
		return "", err
	}
	if _, err := tc.Write([]byte{'x'}); err != nil {
		return "", fmt.Errorf("connected, then write: %w", err)
	}
	if _, err := io.ReadFull(tc, make([]byte, 1)); err != nil {
		return "", fmt.Errorf("connected, then read: %w", err)
	}
	return traceAccepted, nil
}

// tracePing sends one echo request and says whether a reply came.
func tracePing(t *testing.T, ns *netnstest.NS, src, dst string, timeout time.Duration) string {
	t.Helper()
	wait := strconv.Itoa(max(1, int(timeout/time.Second)))
	out, err := ns.Run("ping", "-n", "-c", "1", "-W", wait, "-I", src, dst)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return traceAccepted
	case strings.Contains(out, "Unreachable"):
		return traceRefused
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return traceTimedOut
	}
	t.Fatalf("ping -I %s %s: %v\n%s", src, dst, err, out)
	return ""
}
