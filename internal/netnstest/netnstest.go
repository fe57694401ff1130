// Package netnstest gives tests their own network namespaces, joined by
// veth pairs, so kernel tests never touch the machine's own namespace.
package netnstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

var seq atomic.Int64

// NS is a network namespace created for one test and removed after it.
type NS struct {
	Name string
	// FD is an open handle on the namespace, for netlink's NetNS options.
	FD int
}

// RequireRoot stops a kernel test (see Unavailable) unless it runs as
// root with the ip tool.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "kernel test: needs root")
	}
	RequireTool(t, "ip")
}

// New creates a namespace with loopback up; it is deleted when the test ends.
func New(t testing.TB, label string) *NS {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("efw-%s-%d-%d", label, os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, FD: -1}
	t.Cleanup(func() {
		if ns.FD >= 0 {
			_ = closeFD(ns.FD)
		}
		if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, p := range strings.Fields(string(pids)) {
				_ = exec.Command("kill", "-9", p).Run()
			}
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	fd, err := dupFD(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	ns.FD = fd
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Run runs a command inside the namespace and returns its combined output.
func (ns *NS) Run(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// MustRun runs a command inside the namespace and fails the test on error.
func (ns *NS) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.Run(args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Command returns an unstarted command that will run inside the namespace.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Link joins two namespaces with a veth pair and gives each end the
// addresses given (CIDR notation, e.g. "192.0.2.1/24", "2001:db8::1/64").
// IPv6 duplicate address detection is disabled so addresses work at once.
func Link(t testing.TB, a *NS, aAddrs []string, b *NS, bAddrs []string) (aIf, bIf string) {
	t.Helper()
	n := seq.Add(1)
	aIf, bIf = fmt.Sprintf("va%d", n), fmt.Sprintf("vb%d", n)
	if out, err := exec.Command("ip", "link", "add", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("create veth: %v: %s", err, out)
	}
	for _, side := range []struct {
		ns    *NS
		ifc   string
		addrs []string
	}{{a, aIf, aAddrs}, {b, bIf, bAddrs}} {
		side.ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+side.ifc+".accept_dad=0")
		for _, addr := range side.addrs {
			args := []string{"ip", "addr", "add", addr, "dev", side.ifc}
			if strings.Contains(addr, ":") {
				args = append(args, "nodad")
			}
			side.ns.MustRun(t, args...)
		}
		side.ns.MustRun(t, "ip", "link", "set", side.ifc, "up")
	}
	return aIf, bIf
}

// Do runs f on an OS thread that has entered the namespace, and returns
// its error. Sockets that f opens belong to the namespace and keep working
// from any goroutine after f returns, so tests can listen and dial inside
// their namespaces without helper processes.
func (ns *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go ns.enter(f, errc)
	return <-errc
}

func (ns *NS) enter(f func() error, errc chan<- error) {
	runtime.LockOSThread()
	if isMainThread() {
		// Never move the main thread: tools such as `ip netns pids` (which
		// New's cleanup uses to kill what is left in a namespace) go by
		// it and would take the whole test binary for a process inside.
		// While this goroutine holds the main thread, the next one cannot
		// get it.
		done := make(chan struct{})
		go func() {
			defer close(done)
			ns.enter(f, errc)
		}()
		<-done
		runtime.UnlockOSThread()
		return
	}
	// The thread is never unlocked: when this goroutine ends, the runtime
	// retires the thread instead of reusing it in a foreign namespace.
	if err := setns(ns.FD); err != nil {
		errc <- fmt.Errorf("enter namespace %s: %w", ns.Name, err)
		return
	}
	errc <- f()
}
