package kubetest

import (
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// ProxyInto makes the API server reachable from inside ns at the address
// of URL (127.0.0.1:PORT there too, so kubeconfigs and the serving
// certificate hold): a listener opened inside the namespace, whose
// connections the test process relays to the API server from its own.
// Nothing of the host's namespace is configured. A relay ends when either
// side closes; while the API server is stopped, connections are refused
// by closing them.
func (c *Cluster) ProxyInto(t testing.TB, ns *netnstest.NS) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port))
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("kubetest: listen in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go relay(in, addr)
		}
	}()
}

// relay copies between in and a new connection to addr until either ends.
func relay(in net.Conn, addr string) {
	defer in.Close()
	out, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}
