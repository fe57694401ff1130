// Package integration drives the real edgefwd and edgefwctl binaries
// against the kernel, each daemon in a network namespace of its own.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
)

// Bounds of the waits in these tests: generous, so a slow CI machine does
// not fail them, and never asserted as durations.
const (
	daemonReadyTimeout = 15 * time.Second
	daemonExitTimeout  = 10 * time.Second
	daemonPollInterval = 50 * time.Millisecond
)

// builtBinaries holds the binaries built once per run of the test binary.
var builtBinaries struct {
	once      sync.Once
	edgefwd   string
	edgefwctl string
	err       error
}

// builtBinariesPrefix names the directory the binaries are built into. The
// test binary has no hook that runs after its last test (and a TestMain
// here would collide with other files of the package), so the directory
// carries the test binary's PID and the next run removes the directories
// of runs that have ended.
const builtBinariesPrefix = "edgefw-integration-bin-"

// buildBinaries builds edgefwd and edgefwctl once per run of the test
// binary and returns their paths. The directory is world-readable so that
// tests can run edgefwctl as an unprivileged user. edgefwctl is "" when
// either does not build, every test that needs them fails: a test that
// fell back to something else would test less and still pass.
func buildBinaries(t testing.TB) (edgefwd, edgefwctl string) {
	t.Helper()
	b := &builtBinaries
	b.once.Do(func() {
		removeStaleBinaryDirs()
		root, err := moduleRoot()
		if err != nil {
			b.err = err
			return
		}
		dir := filepath.Join(os.TempDir(), builtBinariesPrefix+strconv.Itoa(os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.err = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			b.err = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			// go test does not put the toolchain on PATH; this is where
			// the Go image installs it.
			goTool = "/usr/local/go/bin/go"
		}
		build := func(name string) (string, error) {
			out := filepath.Join(dir, name)
			cmd := exec.Command(goTool, "build", "-o", out, "./cmd/"+name)
			cmd.Dir = root
			if msg, err := cmd.CombinedOutput(); err != nil {
				return "", fmt.Errorf("go build ./cmd/%s: %v\n%s", name, err, msg)
			}
			return out, nil
		}
		if b.edgefwd, b.err = build("edgefwd"); b.err != nil {
			return
		}
		b.edgefwctl, b.err = build("edgefwctl")
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.edgefwd, b.edgefwctl
}

// removeStaleBinaryDirs removes the binaries of earlier runs whose test
// binary is gone.
func removeStaleBinaryDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), builtBinariesPrefix+"*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), builtBinariesPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
}

// moduleRoot is the directory holding go.mod, above the package directory
// that `go test` runs in.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// daemonShortDir makes a directory with a short path (Unix socket paths
// are limited to 108 bytes, and t.TempDir's follow the test's name) that
// every user may traverse, removed when the test ends.
func daemonShortDir(t testing.TB, label string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "efw-"+label+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// edgefwdSetup says where and how startEdgefwd runs the daemon. Zero
// fields get fresh defaults.
type edgefwdSetup struct {
	// NS is the namespace to run in; nil creates a new one.
	NS *netnstest.NS
	// Policy is written to PolicyPath before the start, unless empty.
	Policy string
	// PolicyPath is the policy file; "" means policy.yaml in a new directory
	// (the daemon watches that directory, so each daemon gets its own).
	PolicyPath string
	// StateDir is the state directory; "" means a new one. Reusing one
	// emulates a restart or, in a new namespace, a reboot.
	StateDir string
	// Socket is the control socket; "" means one in a new directory.
	// Reusing a killed daemon's leaves it a stale socket to replace.
	Socket string
	// Args are more flags, e.g. --metrics-address; later flags win.
	Args []string
}

// edgefwdProcess is one edgefwd running in a namespace, with its log, its
// sd_notify messages and its control socket.
type edgefwdProcess struct {
	NS         *netnstest.NS
	PolicyPath string
	StateDir   string
	Socket     string
	// Edgefwctl is the CLI binary, "" if it did not build.
	Edgefwctl string
	// Started is when the process was started.
	Started time.Time

	cmd      *exec.Cmd
	log      *lockedBuffer
	notes    chan notifyMessage
	exited   chan struct{}
	exitCode int
}

// notifyMessage is one sd_notify datagram and when the test read it.
type notifyMessage struct {
	Text string
	At   time.Time
}

// Has reports whether the message carries the assignment line, e.g. "READY=1".
func (m notifyMessage) Has(line string) bool {
	for l := range strings.SplitSeq(m.Text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// Value returns the value of a KEY=value line.
func (m notifyMessage) Value(key string) (string, bool) {
	for l := range strings.SplitSeq(m.Text, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// startEdgefwd starts edgefwd as the setup says, with NOTIFY_SOCKET set
// to a socket the test reads, and returns without waiting for READY. The
// process is stopped, and its log printed if the test failed, when the
// test ends.
func startEdgefwd(t testing.TB, setup edgefwdSetup) *edgefwdProcess {
	t.Helper()
	bin, ctl := buildBinaries(t)
	if setup.NS == nil {
		setup.NS = netnstest.New(t, "d")
	}
	if setup.PolicyPath == "" {
		setup.PolicyPath = filepath.Join(daemonShortDir(t, "pol"), "policy.yaml")
	}
	if setup.Policy != "" {
		daemonWriteAtomic(t, setup.PolicyPath, setup.Policy)
	}
	if setup.StateDir == "" {
		setup.StateDir = filepath.Join(daemonShortDir(t, "state"), "state")
	}
	run := daemonShortDir(t, "run")
	if setup.Socket == "" {
		setup.Socket = filepath.Join(run, "edgefwd.sock")
	}
	p := &edgefwdProcess{
		NS: setup.NS, PolicyPath: setup.PolicyPath, StateDir: setup.StateDir,
		Socket: setup.Socket, Edgefwctl: ctl,
		log: &lockedBuffer{}, notes: make(chan notifyMessage, 64), exited: make(chan struct{}),
	}
	notifyPath := filepath.Join(run, "notify.sock")
	notifyConn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := notifyConn.Read(buf)
			if err != nil {
				close(p.notes)
				return
			}
			select {
			case p.notes <- notifyMessage{Text: string(buf[:n]), At: time.Now()}:
			default: // a test that does not read them must not block the daemon
			}
		}
	}()

	args := append([]string{"--policy", p.PolicyPath, "--socket", p.Socket, "--state-dir", p.StateDir,
		"--metrics-address", ""}, setup.Args...)
	p.cmd = p.NS.Command(bin, args...)
	p.cmd.Env = append(daemonEnv(), "NOTIFY_SOCKET="+notifyPath)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.Started = time.Now()
	if err := p.cmd.Start(); err != nil {
		notifyConn.Close()
		t.Fatalf("start edgefwd: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.exitCode = p.cmd.ProcessState.ExitCode()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(daemonExitTimeout):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		notifyConn.Close()
		if t.Failed() {
			t.Logf("edgefwd log (%s):\n%s", p.NS.Name, p.Log())
		}
	})
	return p
}

// daemonEnv is the test's environment without what systemd may have given
// the test itself: the daemon must talk to the test's notify socket only.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// startEdgefwdReady starts edgefwd and waits for READY=1.
func startEdgefwdReady(t testing.TB, setup edgefwdSetup) *edgefwdProcess {
	t.Helper()
	p := startEdgefwd(t, setup)
	p.WaitNotify(t, "READY=1")
	return p
}

// Log returns what the daemon has logged so far.
func (p *edgefwdProcess) Log() string { return p.log.String() }

// NextNotify returns the next sd_notify message, failing the test if none
// comes in time or the daemon exits first.
func (p *edgefwdProcess) NextNotify(t testing.TB) notifyMessage {
	t.Helper()
	timer := time.NewTimer(daemonReadyTimeout)
	defer timer.Stop()
	select {
	case m, ok := <-p.notes:
		if !ok {
			t.Fatal("notify socket closed")
		}
		return m
	case <-p.exited:
		// A message sent just before exiting may still be queued.
		select {
		case m, ok := <-p.notes:
			if ok {
				return m
			}
		default:
		}
		t.Fatalf("edgefwd exited (code %d) before sending a notification\n%s", p.exitCode, p.Log())
	case <-timer.C:
		t.Fatalf("no sd_notify message within %s\n%s", daemonReadyTimeout, p.Log())
	}
	panic("unreachable")
}

// WaitNotify skips messages until one carries line (e.g. "READY=1"), and
// returns it. WATCHDOG=1 and STATUS-only messages are skipped too.
func (p *edgefwdProcess) WaitNotify(t testing.TB, line string) notifyMessage {
	t.Helper()
	for {
		if m := p.NextNotify(t); m.Has(line) {
			return m
		}
	}
}

// Exited reports whether the process has ended.
func (p *edgefwdProcess) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Signal sends sig to edgefwd (`ip netns exec` execs it: same process).
func (p *edgefwdProcess) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// WaitExit waits for the process to end and returns its exit code (-1
// when killed by a signal).
func (p *edgefwdProcess) WaitExit(t testing.TB) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.exitCode
	case <-time.After(daemonExitTimeout):
		t.Fatalf("edgefwd did not exit within %s\n%s", daemonExitTimeout, p.Log())
	}
	return 0
}

// Nft runs nft in the daemon's namespace and fails the test on error.
func (p *edgefwdProcess) Nft(t testing.TB, args ...string) string {
	t.Helper()
	return p.NS.MustRun(t, append([]string{"nft"}, args...)...)
}

// Table lists table inet edgefw, and reports whether it exists.
func (p *edgefwdProcess) Table() (string, bool) {
	out, err := p.NS.Run("nft", "list", "table", "inet", "edgefw")
	return out, err == nil
}

// Client returns a control API client for the daemon.
func (p *edgefwdProcess) Client() *daemon.Client { return daemon.NewClient(p.Socket) }

// Status asks the daemon for its status through the API.
func (p *edgefwdProcess) Status(t testing.TB) *daemon.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), daemonReadyTimeout)
	defer cancel()
	st, err := p.Client().Status(ctx)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, p.Log())
	}
	return st
}

// ctlResult is the outcome of one edgefwctl run.
type ctlResult struct {
	Stdout, Stderr string
	Code           int
}

// Ctl runs edgefwctl --socket SOCKET args… as the given credential (nil:
// as the test's user). It runs in the test's namespace: edgefwctl only
// reads files and talks to the Unix socket, which no namespace hides.
func (p *edgefwdProcess) Ctl(t testing.TB, cred *syscall.Credential, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.Edgefwctl, append([]string{"--socket", p.Socket}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	}
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run edgefwctl: %v", err)
	}
	return ctlResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// MustCtl runs edgefwctl as the test's user and fails the test unless it
// exits 0.
func (p *edgefwdProcess) MustCtl(t testing.TB, args ...string) string {
	t.Helper()
	r := p.Ctl(t, nil, args...)
	if r.Code != 0 {
		t.Fatalf("edgefwctl %s: exit %d\nstdout:\n%s\nstderr:\n%s\ndaemon log:\n%s",
			strings.Join(args, " "), r.Code, r.Stdout, r.Stderr, p.Log())
	}
	return r.Stdout
}

// CtlStatus runs `edgefwctl status -o json` and decodes it.
func (p *edgefwdProcess) CtlStatus(t testing.TB) *daemon.Status {
	t.Helper()
	out := p.MustCtl(t, "status", "-o", "json")
	var st daemon.Status
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("status -o json does not decode into daemon.Status: %v\n%s", err, out)
	}
	return &st
}

// WaitLog waits until the daemon's log contains s.
func (p *edgefwdProcess) WaitLog(t testing.TB, s string) {
	t.Helper()
	daemonPoll(t, daemonReadyTimeout, "edgefwd to log "+strconv.Quote(s), func() (bool, string) {
		return strings.Contains(p.Log(), s), p.Log()
	})
}

// daemonPoll calls check every daemonPollInterval until it reports done,
// and fails the test with what, and check's last state, after timeout.
func daemonPoll(t testing.TB, timeout time.Duration, what string, check func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state:\n%s", timeout, what, state)
		}
		time.Sleep(daemonPollInterval)
	}
}

// daemonWriteAtomic saves a file the way editors and configuration
// management do: write a temporary file beside it, then rename it over.
func daemonWriteAtomic(t testing.TB, path, data string) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// daemonTestdata reads a file of integration/testdata.
func daemonTestdata(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// lockedBuffer is a bytes.Buffer that a process writes while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
