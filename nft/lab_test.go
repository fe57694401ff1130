package nft

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// A lab is two namespaces joined by a veth pair: host, whose firewall the
// test applies, and client, which sends traffic to it. Addresses are from
// the documentation ranges (RFC 5737, RFC 3849) and exist only inside the
// lab's namespaces.
type lab struct {
	host, client *netnstest.NS
	hostIf       string // the host's end of the veth pair
	fw           *Applier
}

const (
	hostV4 = "192.0.2.1"
	hostV6 = "2001:db8::1"
)

// newLab builds a lab. The client holds every address in clientAddrs (all
// inside 192.0.2.0/24 or 2001:db8::/64), so cases can choose their source.
func newLab(t *testing.T, clientAddrs ...string) *lab {
	t.Helper()
	l := &lab{host: netnstest.New(t, "host"), client: netnstest.New(t, "client")}
	var cidrs []string
	for _, a := range clientAddrs {
		if strings.Contains(a, ":") {
			cidrs = append(cidrs, a+"/64")
		} else {
			cidrs = append(cidrs, a+"/24")
		}
	}
	l.hostIf, _ = netnstest.Link(t, l.host, []string{hostV4 + "/24", hostV6 + "/64"}, l.client, cidrs)
	l.fw = NewApplier(WithNetNS(l.host.FD))
	return l
}

func (l *lab) apply(t *testing.T, rs *Ruleset) Result {
	t.Helper()
	res, err := l.fw.Apply(rs)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

func (l *lab) counters(t *testing.T) map[string]Counter {
	t.Helper()
	c, err := l.fw.Counters()
	if err != nil {
		t.Fatalf("read counters: %v", err)
	}
	return c
}

// outcome is what a client sees of one connection attempt.
type outcome string

const (
	accepted outcome = "accepted" // connected and exchanged data
	timedOut outcome = "timed out"
	refused  outcome = "refused" // a TCP reset or an ICMP port unreachable
	denied   outcome = "denied"  // the sender's own output hook dropped it (EPERM)
)

// Timeouts. A dropped packet is dropped for sure, so waiting briefly for
// what will never come is enough; what should succeed gets much longer, so
// a slow machine cannot turn an accept into a false "timed out".
const (
	dropTimeout   = time.Second
	acceptTimeout = 10 * time.Second
)

func classify(err error) (outcome, error) {
	var ne net.Error
	switch {
	case err == nil:
		return accepted, nil
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return refused, nil
	case errors.Is(err, syscall.EPERM):
		return denied, nil
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return timedOut, nil
	}
	return "", err
}

// server answers TCP connections and UDP datagrams on a port in its
// namespace, on every address of both families. Each TCP connection is
// echoed one byte and closed once the peer has closed; closed then gets a
// value, after which no packet of that connection is left in flight.
type server struct {
	closed chan struct{}
}

func serve(t *testing.T, ns *netnstest.NS, proto string, ports ...int) *server {
	t.Helper()
	s := &server{closed: make(chan struct{}, 16)}
	for _, port := range ports {
		addr := fmt.Sprintf(":%d", port)
		err := ns.Do(func() error {
			if proto == "udp" {
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					return err
				}
				t.Cleanup(func() { pc.Close() })
				go echoUDP(pc)
				return nil
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close() })
			go s.acceptTCP(ln)
			return nil
		})
		if err != nil {
			t.Fatalf("listen %s%s in %s: %v", proto, addr, ns.Name, err)
		}
	}
	return s
}

func (s *server) acceptTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			_ = c.SetDeadline(time.Now().Add(acceptTimeout))
			if _, err := io.Copy(c, io.LimitReader(c, 1)); err == nil {
				_, _ = io.Copy(io.Discard, c)
			}
			c.Close()
			s.closed <- struct{}{}
		}()
	}
}

func echoUDP(pc net.PacketConn) {
	buf := make([]byte, 64)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// flow is one connection attempt from a namespace to a server.
type flow struct {
	proto    string // tcp or udp
	from, to string // addresses
	port     int
}

func (f flow) String() string {
	return fmt.Sprintf("%s %s -> %s", f.proto, f.from, net.JoinHostPort(f.to, fmt.Sprint(f.port)))
}

// try makes the attempt from ns and reports what the client saw. For an
// accepted TCP connection it waits until the server has closed it too, so
// that counters read afterwards include every packet of it.
func (f flow) try(t *testing.T, ns *netnstest.NS, srv *server, want outcome) outcome {
	t.Helper()
	timeout := acceptTimeout
	if want != accepted {
		timeout = dropTimeout
	}
	var got outcome
	err := ns.Do(func() error {
		var err error
		got, err = f.attempt(timeout)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	if got == accepted && f.proto == "tcp" && srv != nil {
		select {
		case <-srv.closed:
		case <-time.After(acceptTimeout):
			t.Fatalf("%s: the server did not see the connection close", f)
		}
	}
	return got
}

func (f flow) attempt(timeout time.Duration) (outcome, error) {
	src := netip.MustParseAddr(f.from)
	dst := net.JoinHostPort(f.to, fmt.Sprint(f.port))
	d := net.Dialer{Timeout: timeout}
	if f.proto == "udp" {
		d.LocalAddr = &net.UDPAddr{IP: src.AsSlice()}
	} else {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	c, err := d.Dial(f.proto, dst)
	if err != nil {
		return classify(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte{'x'}); err != nil {
		return classify(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		return classify(err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.CloseWrite(); err != nil {
			return "", err
		}
		if _, err := io.Copy(io.Discard, tc); err != nil {
			return "", err
		}
	}
	return accepted, nil
}

// background counters may move at any time in a namespace with IPv6:
// neighbour discovery and MLD reports come when the kernel wants.
func background(name string) bool {
	return name == implicitName("icmpv6-nd", "input") || name == implicitName("icmpv6-nd", "output")
}

// moved lists the counters whose packet count changed, leaving out the
// background ones.
func moved(before, after map[string]Counter) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(after)) {
		if after[name].Packets != before[name].Packets && !background(name) {
			out = append(out, name)
		}
	}
	return out
}
