package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// demoTimeout bounds one run of demo/demo.sh; the tour takes about 30 s.
const demoTimeout = 3 * time.Minute

// demoHostState is what of the machine's own namespace the demo must leave
// as it found it, read without changing anything.
type demoHostState struct {
	ruleset    string
	namespaces []string
	links      []string
	wgSockets  []string
}

func demoReadHost(t *testing.T) demoHostState {
	t.Helper()
	ruleset, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, ruleset)
	}
	ns, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link show: %v", err)
	}
	var st demoHostState
	st.ruleset = string(ruleset)
	for _, l := range strings.Split(string(ns), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			st.namespaces = append(st.namespaces, f[0])
		}
	}
	for _, l := range strings.Split(string(links), "\n") {
		// "3: name@peer: <...": the name is the second field.
		if f := strings.Fields(l); len(f) > 1 {
			st.links = append(st.links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	socks, _ := filepath.Glob("/var/run/wireguard/*.sock")
	for _, s := range socks {
		st.wgSockets = append(st.wgSockets, filepath.Base(s))
	}
	return st
}

// demoScript returns the demo script's path and an environment that points
// it at freshly built binaries.
func demoScript(t *testing.T) (script string, env []string) {
	t.Helper()
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft", "bash", "timeout", "socat", "wg", "ping")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		netnstest.Unavailable(t, "demo: needs /dev/net/tun for the userspace tunnel: %v", err)
	}
	edgefwd, _ := buildBinaries(t)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "demo", "demo.sh"), append(os.Environ(), "EDGEFW_BIN="+filepath.Dir(edgefwd))
}

// demoRun is one run of the demo script.
type demoRun struct {
	cmd *exec.Cmd
	out *lockedBuffer
	id  string // the lab's number: the script's PID
}

func demoStart(t *testing.T, script string, env []string, args ...string) *demoRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	t.Cleanup(cancel)
	r := &demoRun{out: &lockedBuffer{}}
	r.cmd = exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	r.cmd.Dir = filepath.Dir(filepath.Dir(script))
	r.cmd.Env = env
	r.cmd.Stdin = nil
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	// Its own process group, so a test can interrupt it as Ctrl-C would.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.cmd.Cancel = func() error { return syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM) }
	r.cmd.WaitDelay = 20 * time.Second
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	r.id = strconv.Itoa(r.cmd.Process.Pid)
	// Whatever happens to the test, the lab goes.
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "--down", r.id).CombinedOutput(); err != nil {
			t.Logf("demo.sh --down %s: %v\n%s", r.id, err, out)
		}
	})
	return r
}

// wait returns the script's exit code.
func (r *demoRun) wait(t *testing.T) int {
	t.Helper()
	err := r.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("demo: %v\n%s", err, r.out.String())
	}
	return r.cmd.ProcessState.ExitCode()
}

// demoCheckGone fails the test if anything of lab id is left, or if the
// machine's own namespace differs from before.
func demoCheckGone(t *testing.T, id string, before demoHostState) {
	t.Helper()
	after := demoReadHost(t)
	if after.ruleset != before.ruleset {
		t.Errorf("the host's nftables ruleset changed:\nbefore:\n%s\nafter:\n%s", before.ruleset, after.ruleset)
	}
	for _, ns := range after.namespaces {
		if strings.HasPrefix(ns, "efwdemo-"+id+"-") || (strings.HasPrefix(ns, "efwdemo-") && !slices.Contains(before.namespaces, ns)) {
			t.Errorf("namespace %s is left", ns)
		}
	}
	for _, l := range after.links {
		if strings.HasPrefix(l, "efd"+id+"-") {
			t.Errorf("link %s is left in the host's namespace", l)
		}
	}
	for _, s := range after.wgSockets {
		if strings.HasPrefix(s, "efd"+id+"-") {
			t.Errorf("/var/run/wireguard/%s is left", s)
		}
	}
	// The daemons carry the lab directory in their arguments.
	if out, err := exec.Command("pgrep", "-af", "edgefwd").Output(); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.Contains(l, "efwdemo-"+id+".") {
				t.Errorf("edgefwd of the demo still runs: %s", l)
			}
		}
	}
	if dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "efwdemo-"+id+".*")); len(dirs) > 0 {
		t.Errorf("temporary directories left: %v", dirs)
	}
}

// TestDemo runs `demo/demo.sh` as `make demo` does, unattended: it must
// exit 0, print the tour's checked claims (handshake, a drop counted, the
// tunnel up in /metrics, drift restored, the unconfirmed apply rolled back)
// and leave nothing behind: no namespace, link, process, WireGuard socket,
// temporary directory or change to the host's ruleset.
func TestDemo(t *testing.T) {
	script, env := demoScript(t)
	before := demoReadHost(t)
	start := time.Now()
	r := demoStart(t, script, env)
	code := r.wait(t)
	out := r.out.String()
	t.Logf("demo took %s", time.Since(start).Round(time.Second))
	if code != 0 {
		t.Fatalf("demo/demo.sh exited %d:\n%s", code, out)
	}
	for _, want := range []string{
		"ok: handshake completed: both peers are up",
		"ok: dropped by edgefw-default-input, counted",
		"ok: accepted by edgefw-failsafe, counted",
		"ok: accepted by kubelet-from-cluster, counted",
		"ok: the scan found only SSH and the API",
		`edgefw_wireguard_peer_up{interface="efd` + r.id + `-wg0",peer="cluster-gw"} 1`,
		"ok: drift restored: table inet edgefw is back and edgefw_drift_repairs_total went 0 -> 1",
		"ok: rolled back: no apply pending, the last apply's trigger is confirm-timeout",
		"every claim above was checked against the edge's counters",
		"removed namespaces efwdemo-" + r.id + "-*",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if strings.Contains(out, "UNEXPECTED") {
		t.Errorf("the demo printed a claim its counters did not support")
	}
	demoCheckGone(t, r.id, before)
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
}

// TestDemoInterrupted interrupts the demo mid-tour as Ctrl-C does (SIGINT
// to its process group) and checks that it still removes everything.
func TestDemoInterrupted(t *testing.T) {
	script, env := demoScript(t)
	before := demoReadHost(t)
	r := demoStart(t, script, env)
	daemonPoll(t, time.Minute, "the demo to reach its traffic section", func() (bool, string) {
		return strings.Contains(r.out.String(), "== 3. "), r.out.String()
	})
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t); code != 130 {
		t.Errorf("interrupted demo exited %d, want 130\n%s", code, r.out.String())
	}
	if !strings.Contains(r.out.String(), "removed namespaces efwdemo-"+r.id+"-*") {
		t.Errorf("the interrupted demo did not report its cleanup:\n%s", r.out.String())
	}
	demoCheckGone(t, r.id, before)
}

// TestDemoShellDown leaves the lab up with --shell, checks that the tunnel
// is up and the lab reachable, then removes it with --down.
func TestDemoShellDown(t *testing.T) {
	script, env := demoScript(t)
	before := demoReadHost(t)
	r := demoStart(t, script, env, "--shell")
	if code := r.wait(t); code != 0 {
		t.Fatalf("demo.sh --shell exited %d:\n%s", code, r.out.String())
	}
	out := r.out.String()
	for _, want := range []string{"ip netns exec efwdemo-" + r.id + "-edge bash", "demo/demo.sh --down"} {
		if !strings.Contains(out, want) {
			t.Errorf("--shell output lacks %q:\n%s", want, out)
		}
	}
	// The lab outlives the script: the client still reaches the edge's SSH.
	probe := exec.Command("ip", "netns", "exec", "efwdemo-"+r.id+"-client",
		"timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/192.0.2.1/22")
	if msg, err := probe.CombinedOutput(); err != nil {
		t.Errorf("after --shell, the client cannot reach the edge's SSH: %v\n%s", err, msg)
	}
	down := exec.Command("bash", script, "--down", r.id)
	var downOut bytes.Buffer
	down.Stdout, down.Stderr = &downOut, &downOut
	if err := down.Run(); err != nil {
		t.Fatalf("demo.sh --down %s: %v\n%s", r.id, err, downOut.String())
	}
	if !strings.Contains(downOut.String(), "lab "+r.id+" removed") {
		t.Errorf("--down did not report the lab removed:\n%s", downOut.String())
	}
	demoCheckGone(t, r.id, before)
}
