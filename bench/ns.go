package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Lab owns what a run creates (namespaces, processes, temporary
// directories) and removes it all in Close, also after an error or an
// interrupt. Names carry the run's PID so parallel runs never collide.
type Lab struct {
	prefix string
	seq    atomic.Int64

	mu       sync.Mutex
	cleanups []func()

	launcher     string
	launcherArgs []string
}

// SetLauncher makes Measure start commands through path with args before
// the command's own: a binary that runs Launch on them (edgefw-launch, or
// the bench's own binary with LaunchArg).
func (l *Lab) SetLauncher(path string, args ...string) { l.launcher, l.launcherArgs = path, args }

// NewLab returns an empty lab whose names start with prefix.
func NewLab(prefix string) *Lab {
	return &Lab{prefix: fmt.Sprintf("%s%d", prefix, os.Getpid()%100000)}
}

// Name returns a new name unique to this run, e.g. for an interface.
func (l *Lab) Name(label string) string {
	return fmt.Sprintf("%s%s%d", l.prefix, label, l.seq.Add(1))
}

// Defer registers f to run at Close (last registered, first run).
func (l *Lab) Defer(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cleanups = append(l.cleanups, f)
}

// Close runs every cleanup still pending, newest first.
func (l *Lab) Close() {
	for {
		l.mu.Lock()
		if len(l.cleanups) == 0 {
			l.mu.Unlock()
			return
		}
		f := l.cleanups[len(l.cleanups)-1]
		l.cleanups = l.cleanups[:len(l.cleanups)-1]
		l.mu.Unlock()
		f()
	}
}

// TempDir makes a directory removed at Close. Its path is short: Unix
// socket paths inside it must stay under 108 bytes.
func (l *Lab) TempDir(label string) (string, error) {
	dir, err := os.MkdirTemp("", "efwb-"+label+"-")
	if err != nil {
		return "", err
	}
	l.Defer(func() { _ = os.RemoveAll(dir) })
	return dir, nil
}

// NS is a network namespace of the lab.
type NS struct {
	Name string
	fd   int
	// closed is set once Delete ran.
	once sync.Once
	lab  *Lab
}

// NewNS creates a namespace with loopback up. It is deleted by Delete or
// at the lab's Close, after the processes left in it are killed.
func (l *Lab) NewNS(label string) (*NS, error) {
	name := l.Name(label)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, fd: -1, lab: l}
	l.Defer(ns.Delete)
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", name, err)
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	f.Close()
	if err != nil {
		return nil, err
	}
	ns.fd = fd
	if out, err := ns.Output("ip", "link", "set", "lo", "up"); err != nil {
		return nil, fmt.Errorf("loopback up in %s: %v: %s", name, err, out)
	}
	return ns, nil
}

// FD is an open handle on the namespace, for netlink options.
func (ns *NS) FD() int { return ns.fd }

// Delete kills what runs in the namespace and deletes it. The kernel
// frees a large nftables set of a deleted namespace afterwards, in its
// own threads: see Settle.
func (ns *NS) Delete() {
	ns.once.Do(func() {
		if ns.fd >= 0 {
			_ = unix.Close(ns.fd)
		}
		if pids, err := exec.Command("ip", "netns", "pids", ns.Name).Output(); err == nil {
			for _, p := range strings.Fields(string(pids)) {
				var pid int
				if _, err := fmt.Sscan(p, &pid); err == nil && pid > 1 && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		_ = exec.Command("ip", "netns", "del", ns.Name).Run()
	})
}

// Do runs f on an OS thread that has entered the namespace. Processes
// started and sockets opened by f belong to the namespace. The thread is
// never returned to the runtime's pool: it ends with f's goroutine.
func (ns *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Never move the main thread (ip netns pids goes by it): a
			// goroutine started now gets another thread.
			done := make(chan struct{})
			go func() {
				defer close(done)
				errc <- ns.Do(f)
			}()
			<-done
			runtime.UnlockOSThread()
			return
		}
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Output runs a command inside the namespace and returns its combined
// output.
func (ns *NS) Output(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := ns.Do(cmd.Run)
	if err != nil {
		err = fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(tail(out.String(), 2000)))
	}
	return out.String(), err
}

// Start starts cmd inside the namespace; the lab kills it at Close if it
// still runs.
func (ns *NS) Start(cmd *exec.Cmd) error {
	if err := ns.Do(cmd.Start); err != nil {
		return err
	}
	ns.lab.Defer(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return nil
}

// Measure runs a command inside the namespace and returns what it cost:
// wall time from start to exit, and the rusage of the exited process.
// With a launcher (SetLauncher) the command is started and measured by
// it, so its peak RSS is its own. stdin, when not nil, is its standard
// input. A non-zero exit is an error carrying the end of its output.
func (ns *NS) Measure(stdin []byte, name string, args ...string) (Usage, string, error) {
	cmd := exec.Command(name, args...)
	var report *os.File
	if l := ns.lab.launcher; l != "" {
		cmd = exec.Command(l, append(append(append([]string(nil), ns.lab.launcherArgs...), name), args...)...)
		r, w, err := os.Pipe()
		if err != nil {
			return Usage{}, "", err
		}
		defer r.Close()
		defer w.Close()
		cmd.ExtraFiles = []*os.File{w}
		report = r
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	start := time.Now()
	if err := ns.Do(cmd.Start); err != nil {
		return Usage{}, "", err
	}
	var reportData []byte
	reportDone := make(chan struct{})
	if report != nil {
		cmd.ExtraFiles[0].Close()
		go func() {
			defer close(reportDone)
			reportData, _ = io.ReadAll(report)
		}()
	} else {
		close(reportDone)
	}
	err := cmd.Wait()
	u := usageOf(cmd.ProcessState, time.Since(start))
	<-reportDone
	if report != nil {
		lu, _, lerr := launched(reportData)
		u = lu
		if err == nil {
			err = lerr
		}
	}
	if err != nil {
		return u, out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(tail(out.String(), 2000)))
	}
	return u, out.String(), nil
}

func usageOf(ps *os.ProcessState, wall time.Duration) Usage {
	u := Usage{Wall: wall}
	if ps == nil {
		return u
	}
	u.User, u.Sys = ps.UserTime(), ps.SystemTime()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSS = ru.Maxrss << 10 // KiB on Linux
	}
	return u
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// Veth joins two namespaces with a veth pair and gives each end an IPv4
// address (CIDR notation).
func (l *Lab) Veth(a *NS, aAddr string, b *NS, bAddr string) error {
	aIf, bIf := l.Name("a"), l.Name("b")
	if out, err := exec.Command("ip", "link", "add", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("create veth: %v: %s", err, out)
	}
	for _, side := range []struct {
		ns        *NS
		ifc, addr string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		if _, err := side.ns.Output("ip", "addr", "add", side.addr, "dev", side.ifc); err != nil {
			return err
		}
		if _, err := side.ns.Output("ip", "link", "set", side.ifc, "up"); err != nil {
			return err
		}
	}
	return nil
}
