package integration

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
)

// examplesDir holds the example policies that the packages ship.
const examplesDir = "../packaging/examples"

// policyFileLine matches the file:line:column that every policy error names.
var policyFileLine = regexp.MustCompile(`policy\.yaml:\d+:\d+`)

// edgeDefaultPolicy is the shipped edge-default example, or base.yaml
// when the examples are not in the tree, with its name and one of its rules.
func edgeDefaultPolicy(t *testing.T) (policy, name, rule string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir, "edge-default.yaml"))
	if err != nil {
		t.Logf("no shipped edge-default example (%v): using testdata/base.yaml", err)
		return daemonTestdata(t, "base.yaml"), "testdata/base.yaml", "web"
	}
	return string(data), "packaging/examples/edge-default.yaml", "kube-api"
}

// TestDaemonReadyOnlyWithTable checks that READY=1 means protected: when
// systemd hears it, table inet edgefw is in the kernel with the whole
// policy; and that SIGHUP is announced as RELOADING=1 with MONOTONIC_USEC,
// then READY=1.
func TestDaemonReadyOnlyWithTable(t *testing.T) {
	netnstest.RequireRoot(t)
	pol, polName, rule := edgeDefaultPolicy(t)
	p := startEdgefwd(t, edgefwdSetup{Policy: pol})

	for {
		m := p.NextNotify(t)
		// Checked before anything else, as soon as the message is read:
		// READY must never precede the table.
		table, ok := p.Table()
		if !m.Has("READY=1") {
			t.Logf("notification before READY: %q", m.Text)
			continue
		}
		if !ok {
			t.Fatalf("READY=1 arrived but table inet edgefw does not exist:\n%s", table)
		}
		if !strings.Contains(table, "counter "+rule+" ") {
			t.Fatalf("READY=1 arrived before the policy's rule %q was installed:\n%s", rule, table)
		}
		t.Logf("start → READY=1 with %s: %s", polName, m.At.Sub(p.Started))
		break
	}

	before := monotonicUsec(t)
	p.Signal(t, syscall.SIGHUP)
	reloading := p.WaitNotify(t, "RELOADING=1")
	after := monotonicUsec(t)
	v, ok := reloading.Value("MONOTONIC_USEC")
	if !ok {
		t.Fatalf("RELOADING=1 without MONOTONIC_USEC: %q", reloading.Text)
	}
	usec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("MONOTONIC_USEC=%q: %v", v, err)
	}
	// CLOCK_MONOTONIC is system-wide: the daemon's reading must fall
	// between the test's readings around the signal.
	if usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d is not CLOCK_MONOTONIC at the reload (between %d and %d)", usec, before, after)
	}
	for {
		m := p.NextNotify(t)
		if m.Has("RELOADING=1") {
			t.Fatalf("a second RELOADING=1 before READY=1: %q", m.Text)
		}
		if m.Has("READY=1") {
			break
		}
	}
	if _, ok := p.Table(); !ok {
		t.Fatal("table inet edgefw missing after the reload")
	}
	if st := p.Status(t); st.LastApply == nil || !st.LastApply.OK || st.LastApply.Trigger != "signal" {
		t.Errorf("after SIGHUP, lastApply = %+v, want ok with trigger signal", st.LastApply)
	}
}

func monotonicUsec(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// TestDaemonStatusCounters sends traffic from a second namespace and reads
// the counters back with `edgefwctl status -o json`.
func TestDaemonStatusCounters(t *testing.T) {
	netnstest.RequireRoot(t)
	host := netnstest.New(t, "host")
	client := netnstest.New(t, "cli")
	netnstest.Link(t, host, []string{"192.0.2.1/24"}, client, []string{"192.0.2.2/24"})
	p := startEdgefwdReady(t, edgefwdSetup{NS: host, Policy: daemonTestdata(t, "base.yaml")})

	// web (8080) is accepted; 9100 has a listener too but falls to the
	// default drop.
	for _, port := range []string{"8080", "9100"} {
		var ln net.Listener
		if err := host.Do(func() (err error) { ln, err = net.Listen("tcp", "192.0.2.1:"+port); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			}
		}()
	}
	dial := func(port string, timeout time.Duration) (net.Conn, error) {
		var c net.Conn
		err := client.Do(func() (err error) { c, err = net.DialTimeout("tcp", "192.0.2.1:"+port, timeout); return err })
		return c, err
	}
	c, err := dial("8080", 5*time.Second)
	if err != nil {
		t.Fatalf("connect to the accepted port 8080: %v", err)
	}
	if _, err := c.Write([]byte("hello edgefw\n")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c, err := dial("9100", time.Second); err == nil {
		c.Close()
		t.Fatal("connected to port 9100, which the default policy drops")
	}

	st := p.CtlStatus(t)
	rules := map[string]daemon.RuleStatus{}
	for _, r := range st.Rules {
		rules[r.Name] = r
	}
	web, ok := rules["web"]
	if !ok {
		t.Fatalf("status lists no rule web: %+v", st.Rules)
	}
	if web.Packets == 0 || web.Bytes == 0 || web.Kind != "user" || web.Action != "accept" || web.Direction != "input" {
		t.Errorf("web = %+v, want a user input accept rule with packets and bytes counted", web)
	}
	if d := rules["edgefw-default-input"]; d.Packets == 0 {
		t.Errorf("edgefw-default-input = %+v, want the dropped SYNs to port 9100 counted", d)
	}
	for _, name := range []string{"edgefw-failsafe", "edgefw-established-input", "edgefw-loopback-input"} {
		if _, ok := rules[name]; !ok {
			t.Errorf("status lists no implicit rule %s", name)
		}
	}
	if st.LastApply == nil || !st.LastApply.OK || st.Policy.Path != p.PolicyPath {
		t.Errorf("status policy %+v, lastApply %+v: want %s applied", st.Policy, st.LastApply, p.PolicyPath)
	}
	t.Logf("web: %d packets, %d bytes; edgefw-default-input: %d packets", web.Packets, web.Bytes, rules["edgefw-default-input"].Packets)
}

// TestDaemonPolicyFileWatch edits the policy file as editors do (write a
// temporary file, rename it over) and expects the daemon to apply it
// without a signal; a broken edit changes nothing and a fix is applied.
func TestDaemonPolicyFileWatch(t *testing.T) {
	netnstest.RequireRoot(t)
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "base.yaml")})

	daemonWriteAtomic(t, p.PolicyPath, daemonTestdata(t, "extra.yaml"))
	waitTable(t, p, "the edited policy's rule node-exporter", func(table string) bool {
		return strings.Contains(table, "counter node-exporter ")
	})
	if st := p.Status(t); st.LastApply == nil || !st.LastApply.OK || st.LastApply.Trigger != "file-change" {
		t.Errorf("lastApply = %+v, want ok with trigger file-change", st.LastApply)
	}

	before := p.Nft(t, "list", "ruleset")
	okTime := p.Status(t).LastApply.Time
	daemonWriteAtomic(t, p.PolicyPath, daemonTestdata(t, "broken-yaml.yaml"))
	var st *daemon.Status
	daemonPoll(t, daemonReadyTimeout, "the broken edit to be rejected", func() (bool, string) {
		st = p.Status(t)
		return st.LastApply != nil && st.LastApply.Time.After(okTime), p.Log()
	})
	if st.LastApply.OK || st.LastApply.Trigger != "file-change" {
		t.Errorf("after a broken edit, lastApply = %+v, want a failed file-change apply", st.LastApply)
	}
	if !policyFileLine.MatchString(st.LastApply.Error) {
		t.Errorf("the error does not name file:line:column: %q", st.LastApply.Error)
	}
	t.Logf("broken edit rejected: %s", st.LastApply.Error)
	if after := p.Nft(t, "list", "ruleset"); after != before {
		t.Errorf("a rejected edit changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if p.Exited() {
		t.Fatalf("edgefwd exited after a broken edit\n%s", p.Log())
	}
	if !strings.Contains(p.Log(), "policy not applied; the previous ruleset stays in force") {
		t.Error("the log does not report the rejected edit")
	}

	daemonWriteAtomic(t, p.PolicyPath, daemonTestdata(t, "base.yaml"))
	waitTable(t, p, "the fixed policy (without node-exporter)", func(table string) bool {
		return !strings.Contains(table, "node-exporter") && strings.Contains(table, "counter web ")
	})
	daemonPoll(t, daemonReadyTimeout, "status to show the fix applied", func() (bool, string) {
		st = p.Status(t)
		return st.LastApply != nil && st.LastApply.OK, p.Log()
	})
}

// TestDaemonDropInDirectory creates policy.d/ after the daemon started, as
// configuration management does on a host that had none, and expects the
// drop-ins put there to be applied and their removal too.
func TestDaemonDropInDirectory(t *testing.T) {
	netnstest.RequireRoot(t)
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "base.yaml")})
	dropIns := filepath.Join(filepath.Dir(p.PolicyPath), "policy.d")
	if err := os.Mkdir(dropIns, 0o755); err != nil {
		t.Fatal(err)
	}
	dropIn := filepath.Join(dropIns, "50-metrics.yaml")
	daemonWriteAtomic(t, dropIn, daemonTestdata(t, "dropin-metrics.yaml"))
	waitTable(t, p, "the drop-in's rule dropin-metrics", func(table string) bool {
		return strings.Contains(table, "counter dropin-metrics ") && strings.Contains(table, "counter web ")
	})
	if err := os.Remove(dropIn); err != nil {
		t.Fatal(err)
	}
	waitTable(t, p, "the removed drop-in's rule to go", func(table string) bool {
		return !strings.Contains(table, "dropin-metrics") && strings.Contains(table, "counter web ")
	})

	// Removing the directory drops its watch; a new one is watched again.
	// Each step waits for its reload, so the last drop-in is seen only
	// through the new directory's watch.
	reloads := func() int { return strings.Count(p.Log(), "trigger=file-change") }
	for _, step := range []func() error{
		func() error { return os.Remove(dropIns) },
		func() error { return os.Mkdir(dropIns, 0o755) },
	} {
		n := reloads()
		if err := step(); err != nil {
			t.Fatal(err)
		}
		daemonPoll(t, daemonReadyTimeout, "a reload after a change of policy.d", func() (bool, string) {
			return reloads() > n, p.Log()
		})
	}
	daemonWriteAtomic(t, dropIn, daemonTestdata(t, "dropin-metrics.yaml"))
	waitTable(t, p, "the drop-in in the re-created policy.d", func(table string) bool {
		return strings.Contains(table, "counter dropin-metrics ")
	})
}

// waitTable waits until table inet edgefw exists and satisfies ok.
func waitTable(t *testing.T, p *edgefwdProcess, what string, ok func(table string) bool) string {
	t.Helper()
	var table string
	daemonPoll(t, daemonReadyTimeout, what, func() (bool, string) {
		var exists bool
		table, exists = p.Table()
		return exists && ok(table), table + "\n--- edgefwd log:\n" + p.Log()
	})
	return table
}

// TestDaemonDriftRepair flushes the whole ruleset, and then adds a stray
// rule, behind the daemon's back; both are repaired, counted and logged.
func TestDaemonDriftRepair(t *testing.T) {
	netnstest.RequireRoot(t)
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "base.yaml")})
	want, _ := p.Table()

	p.Nft(t, "flush", "ruleset")
	daemonPoll(t, 5*time.Second, "table inet edgefw to be restored after nft flush ruleset", func() (bool, string) {
		table, ok := p.Table()
		return ok && table == want, table
	})
	// The table is restored by the repair's commit; the count follows it.
	daemonPoll(t, daemonReadyTimeout, "the first repair to be counted", func() (bool, string) {
		st := p.Status(t)
		return st.DriftRepairs >= 1, strconv.FormatUint(st.DriftRepairs, 10)
	})
	p.WaitLog(t, "table inet edgefw was changed outside edgefw: restored")

	p.Nft(t, "insert", "rule", "inet", "edgefw", "input", "accept")
	daemonPoll(t, 5*time.Second, "a stray accept-all rule to be removed", func() (bool, string) {
		table, ok := p.Table()
		return ok && table == want, table
	})
	daemonPoll(t, daemonReadyTimeout, "the second repair to be counted", func() (bool, string) {
		st := p.Status(t)
		return st.DriftRepairs >= 2, strconv.FormatUint(st.DriftRepairs, 10)
	})
}

// TestDaemonCommitConfirmed applies with a confirmation timeout: without
// confirm the change is rolled back; with confirm it stays; and a daemon
// killed while a change awaits confirmation rolls it back when it starts.
func TestDaemonCommitConfirmed(t *testing.T) {
	netnstest.RequireRoot(t)
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "base.yaml")})
	candidate := filepath.Join(t.TempDir(), "candidate.yaml")
	if err := os.WriteFile(candidate, []byte(daemonTestdata(t, "extra.yaml")), 0o644); err != nil {
		t.Fatal(err)
	}
	baseline, _ := p.Table()
	hasCandidate := func(table string) bool { return strings.Contains(table, "counter node-exporter ") }

	// Unconfirmed: in force at once, rolled back after the timeout.
	p.MustCtl(t, "apply", candidate, "--confirm-timeout", "3s")
	if table, _ := p.Table(); !hasCandidate(table) {
		t.Fatalf("the applied rule is not in force:\n%s", table)
	}
	if st := p.Status(t); st.Pending == nil || st.Pending.Path == "" {
		t.Errorf("status shows no pending confirmation: %+v", st.Pending)
	}
	waitTable(t, p, "the unconfirmed apply to be rolled back", func(table string) bool { return !hasCandidate(table) })
	if table, _ := p.Table(); table != baseline {
		t.Errorf("after the rollback the table differs from before the apply:\nbefore:\n%s\nafter:\n%s", baseline, table)
	}
	if st := p.Status(t); st.Pending != nil {
		t.Errorf("still pending after the rollback: %+v", st.Pending)
	}
	p.WaitLog(t, "unconfirmed apply rolled back")

	// Confirmed: stays after the deadline has passed.
	p.MustCtl(t, "apply", candidate, "--confirm-timeout", "3s")
	st := p.Status(t)
	if st.Pending == nil {
		t.Fatal("status shows no pending confirmation after apply --confirm-timeout")
	}
	deadline := st.Pending.Deadline
	p.MustCtl(t, "confirm")
	if st := p.Status(t); st.Pending != nil {
		t.Errorf("still pending after confirm: %+v", st.Pending)
	}
	time.Sleep(time.Until(deadline) + 1500*time.Millisecond)
	if table, _ := p.Table(); !hasCandidate(table) {
		t.Fatalf("a confirmed apply was rolled back:\n%s", table)
	}
	if n := strings.Count(p.Log(), "unconfirmed apply rolled back"); n != 1 {
		t.Errorf("%d rollbacks logged, want only the first", n)
	}

	// Killed while pending: the next start restores what ran before. (A
	// confirmed apply outlives plain reloads: leave it for the files.)
	p.MustCtl(t, "reload", "--from-files")
	waitTable(t, p, "the policy file to be in force again", func(table string) bool { return table == baseline })
	p.MustCtl(t, "apply", candidate, "--confirm-timeout", "60s")
	if table, _ := p.Table(); !hasCandidate(table) {
		t.Fatalf("the applied rule is not in force:\n%s", table)
	}
	pendingFile := filepath.Join(p.StateDir, "pending-confirm.json")
	if _, err := os.Stat(pendingFile); err != nil {
		t.Fatalf("the pending confirmation is not persisted: %v", err)
	}
	p.Signal(t, syscall.SIGKILL)
	p.WaitExit(t)
	if table, _ := p.Table(); !hasCandidate(table) {
		t.Fatal("the unconfirmed rule vanished with the daemon; the restart would prove nothing")
	}

	if _, err := os.Stat(p.Socket); err != nil {
		t.Fatalf("a killed daemon should leave its socket behind: %v", err)
	}
	restarted := startEdgefwd(t, edgefwdSetup{NS: p.NS, PolicyPath: p.PolicyPath, StateDir: p.StateDir, Socket: p.Socket})
	restarted.WaitNotify(t, "READY=1")
	if table, _ := restarted.Table(); table != baseline {
		t.Errorf("after a restart the unconfirmed apply is still in force:\nwant:\n%s\ngot:\n%s", baseline, table)
	}
	if _, err := os.Stat(pendingFile); !os.IsNotExist(err) {
		t.Errorf("pending state not cleared after the restart: %v", err)
	}
	if st := restarted.Status(t); st.Pending != nil {
		t.Errorf("status still shows a pending confirmation after the restart: %+v", st.Pending)
	}
	restarted.WaitLog(t, "daemon restarted while an apply awaited confirmation")
	restarted.MustCtl(t, "status") // the stale socket was replaced
}

// TestDaemonStopLeavesRuleset checks fail-closed: SIGTERM ends the daemon
// cleanly and the ruleset stays.
func TestDaemonStopLeavesRuleset(t *testing.T) {
	netnstest.RequireRoot(t)
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "base.yaml")})
	before, _ := p.Table()
	p.Signal(t, syscall.SIGTERM)
	if code := p.WaitExit(t); code != 0 {
		t.Fatalf("edgefwd exited %d on SIGTERM, want 0\n%s", code, p.Log())
	}
	after, ok := p.Table()
	if !ok || after != before {
		t.Errorf("the ruleset did not survive the stop:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if !strings.Contains(p.Log(), "the ruleset stays in the kernel") {
		t.Error("the stop is not logged")
	}
}

// TestDaemonBootSafety starts with a broken policy file: with the state of
// an earlier run, in a fresh namespace (a reboot), the last good ruleset
// is installed; with no state, the safe minimal ruleset.
func TestDaemonBootSafety(t *testing.T) {
	netnstest.RequireRoot(t)
	broken := daemonTestdata(t, "broken-yaml.yaml")

	t.Run("LastGood", func(t *testing.T) {
		first := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "extra.yaml")})
		want, _ := first.Table()
		first.Signal(t, syscall.SIGTERM)
		if code := first.WaitExit(t); code != 0 {
			t.Fatalf("first run exited %d", code)
		}

		daemonWriteAtomic(t, first.PolicyPath, broken)
		p := startEdgefwd(t, edgefwdSetup{PolicyPath: first.PolicyPath, StateDir: first.StateDir})
		p.WaitNotify(t, "READY=1")
		table, ok := p.Table()
		if !ok || table != want {
			t.Fatalf("at READY, want the last good ruleset:\n%s\ngot (exists=%v):\n%s", want, ok, table)
		}
		st := p.Status(t)
		if st.LastApply == nil || st.LastApply.OK || !policyFileLine.MatchString(st.LastApply.Error) {
			t.Errorf("lastApply = %+v, want the failed apply of the broken file, naming file:line", st.LastApply)
		}
		if st.LastSuccess == nil || st.LastSuccess.Trigger != "boot-ruleset" {
			t.Errorf("lastSuccess = %+v, want the boot ruleset", st.LastSuccess)
		}
		if !strings.Contains(strings.Join(st.Warnings, "\n"), "last apply failed") {
			t.Errorf("no warning about the failed apply: %q", st.Warnings)
		}
	})

	t.Run("NoState", func(t *testing.T) {
		p := startEdgefwd(t, edgefwdSetup{Policy: broken})
		p.WaitNotify(t, "READY=1")
		table, ok := p.Table()
		if !ok {
			t.Fatal("no table at READY with a broken policy and no state")
		}
		input := p.Nft(t, "list", "chain", "inet", "edgefw", "input")
		for _, want := range []string{
			`tcp dport 22 counter name "edgefw-failsafe" accept`,
			`counter name "edgefw-default-input" drop`,
		} {
			if !strings.Contains(input, want) {
				t.Errorf("the safe ruleset's input chain lacks %q:\n%s", want, input)
			}
		}
		if strings.Contains(table, "web") {
			t.Errorf("the safe ruleset holds a rule of the broken policy:\n%s", table)
		}
		st := p.Status(t)
		if st.LastApply == nil || st.LastApply.OK || !policyFileLine.MatchString(st.LastApply.Error) {
			t.Errorf("lastApply = %+v, want the failed apply of the broken file, naming file:line", st.LastApply)
		}
		if st.LastSuccess == nil || st.LastSuccess.Trigger != "safe-fallback" {
			t.Errorf("lastSuccess = %+v, want the safe fallback", st.LastSuccess)
		}
	})
}

// TestSocketPermissions checks both defences of the control socket: its
// mode keeps other users out, and behind it the daemon checks the peer's
// credentials.
func TestSocketPermissions(t *testing.T) {
	netnstest.RequireRoot(t)
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "base.yaml")})
	fi, err := os.Stat(p.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("control socket mode %v, want a socket with 0660", fi.Mode())
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}

	r := p.Ctl(t, nobody, "status")
	if r.Code != 1 || !strings.Contains(r.Stderr, "permission denied on "+p.Socket) {
		t.Errorf("as uid 65534 with mode 0660: exit %d, stderr %q; want exit 1 and the socket's EACCES", r.Code, r.Stderr)
	}
	if strings.Contains(p.Log(), "control request refused") {
		t.Error("the daemon saw a request that the socket's mode should have stopped")
	}

	if err := os.Chmod(p.Socket, 0o666); err != nil {
		t.Fatal(err)
	}
	r = p.Ctl(t, nobody, "status")
	if r.Code != 1 || !strings.Contains(r.Stderr, "permission denied: only root and members of group edgefw") {
		t.Errorf("as uid 65534 with mode 0666: exit %d, stderr %q; want exit 1 and the daemon's 403", r.Code, r.Stderr)
	}
	p.WaitLog(t, `msg="control request refused" component=control uid=65534`)
	r = p.Ctl(t, nobody, "apply", filepath.Join("testdata", "extra.yaml"))
	if r.Code != 1 {
		t.Errorf("as uid 65534, apply exited %d", r.Code)
	}
	if table, _ := p.Table(); strings.Contains(table, "node-exporter") {
		t.Error("an unprivileged user changed the ruleset")
	}
	p.MustCtl(t, "status") // root still may
}

// TestOnce runs `edgefwd --once`: it applies, applies nothing the second
// time, and changes nothing when the policy is invalid. It also measures
// --once with each shipped example policy.
func TestOnce(t *testing.T) {
	netnstest.RequireRoot(t)
	bin, _ := buildBinaries(t)
	ns := netnstest.New(t, "once")
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.yaml")
	state := filepath.Join(dir, "state")
	daemonWriteAtomic(t, policyPath, daemonTestdata(t, "base.yaml"))

	out, code, took := runOnce(t, ns, bin, policyPath, state)
	if code != 0 {
		t.Fatalf("--once exited %d:\n%s", code, out)
	}
	t.Logf("--once, first apply of base.yaml: %s", took)
	before := ns.MustRun(t, "nft", "list", "ruleset")
	if !strings.Contains(before, "table inet edgefw") || !strings.Contains(before, "counter web ") {
		t.Fatalf("no table after --once:\n%s", before)
	}
	if _, err := os.Stat(filepath.Join(state, "last-good.json")); err != nil {
		t.Errorf("--once kept no last good ruleset: %v", err)
	}

	mon := startNftMonitor(t, ns)
	mon.mark(t, "efw-probe-a")
	out, code, took = runOnce(t, ns, bin, policyPath, state)
	mon.mark(t, "efw-probe-b")
	if code != 0 {
		t.Fatalf("second --once exited %d:\n%s", code, out)
	}
	t.Logf("--once, second run (nothing to do): %s", took)
	if !strings.Contains(out, "messages=0") {
		t.Errorf("the second --once wrote to the kernel:\n%s", out)
	}
	if between := mon.between("efw-probe-a", "efw-probe-b"); between != "" {
		t.Errorf("the second --once committed to the kernel; nft monitor saw:\n%s", between)
	}
	ns.MustRun(t, "nft", "delete", "table", "inet", "efw-probe-a")
	ns.MustRun(t, "nft", "delete", "table", "inet", "efw-probe-b")
	if after := ns.MustRun(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("the second --once changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	daemonWriteAtomic(t, policyPath, daemonTestdata(t, "broken-yaml.yaml"))
	out, code, _ = runOnce(t, ns, bin, policyPath, state)
	if code != 1 {
		t.Errorf("--once with an invalid policy exited %d, want 1:\n%s", code, out)
	}
	if !strings.Contains(out, "nothing changed") || !policyFileLine.MatchString(out) {
		t.Errorf("--once does not say that nothing changed and where the error is:\n%s", out)
	}
	if after := ns.MustRun(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("--once with an invalid policy changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	examples, _ := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if len(examples) == 0 {
		t.Log("no example policies in " + examplesDir + " to measure")
	}
	for _, ex := range examples {
		exNS := netnstest.New(t, "ex")
		exState := filepath.Join(t.TempDir(), "state")
		out, code, first := runOnce(t, exNS, bin, ex, exState)
		if code != 0 {
			t.Errorf("--once %s exited %d:\n%s", ex, code, out)
			continue
		}
		out, code, second := runOnce(t, exNS, bin, ex, exState)
		if code != 0 || !strings.Contains(out, "messages=0") {
			t.Errorf("second --once %s: exit %d, want 0 and nothing written:\n%s", ex, code, out)
		}
		t.Logf("--once %-28s first apply %-12s again (no change) %s", filepath.Base(ex), first, second)
	}
}

// runOnce runs edgefwd --once in ns and returns its output, exit code and
// wall-clock duration (including `ip netns exec`).
func runOnce(t *testing.T, ns *netnstest.NS, bin, policyPath, state string) (string, int, time.Duration) {
	t.Helper()
	cmd := ns.Command(bin, "--once", "--policy", policyPath, "--state-dir", state)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run edgefwd --once: %v", err)
	}
	return string(out), cmd.ProcessState.ExitCode(), took
}

// nftProbeGeneration is the line nft monitor prints after a commit of the
// nft tool, such as a probe table.
var nftProbeGeneration = regexp.MustCompile(`^# new generation \d+ by process \d+ \(nft\)$`)

// nftMonitor is `nft monitor` running in a namespace.
type nftMonitor struct {
	ns  *netnstest.NS
	out *lockedBuffer
}

func startNftMonitor(t *testing.T, ns *netnstest.NS) *nftMonitor {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &nftMonitor{ns: ns, out: &lockedBuffer{}}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "nft", "monitor")
	cmd.Stdout, cmd.Stderr = m.out, m.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return m
}

// mark adds an empty table named name and waits until the monitor has
// printed it: everything committed before is printed before it.
func (m *nftMonitor) mark(t *testing.T, name string) {
	t.Helper()
	line := "add table inet " + name + "\n"
	// The monitor may not have subscribed yet when the table is added:
	// then add it again; between goes by the last one.
	for attempt := 0; attempt < 20; attempt++ {
		m.ns.MustRun(t, "nft", "add", "table", "inet", name)
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			if strings.Contains(m.out.String(), line) {
				return
			}
			time.Sleep(daemonPollInterval)
		}
		m.ns.MustRun(t, "nft", "delete", "table", "inet", name)
	}
	t.Fatalf("nft monitor never printed %q:\n%s", line, m.out.String())
}

// between returns what the monitor printed between the marks a and b.
func (m *nftMonitor) between(a, b string) string {
	out := m.out.String()
	start := strings.LastIndex(out, "add table inet "+a+"\n")
	end := strings.LastIndex(out, "add table inet "+b+"\n")
	if start < 0 || end < start {
		return "(marks not found)\n" + out
	}
	// The probe's own commit prints its generation line after the table.
	var other []string
	for line := range strings.SplitSeq(out[start+len("add table inet "+a+"\n"):end], "\n") {
		if line != "" && !nftProbeGeneration.MatchString(line) {
			other = append(other, line)
		}
	}
	return strings.Join(other, "\n")
}
