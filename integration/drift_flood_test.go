package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
)

// Log messages of a drift burst (daemon/repair.go).
const (
	burstStartLog = "table inet edgefw was changed outside edgefw: restored"
	burstEndLog   = "table inet edgefw is no longer being changed outside edgefw"
)

// TestDaemonDriftFlood deletes table inet edgefw 100 times a second for a
// few seconds, as a neighbour stuck in a loop would. The daemon repairs at
// most once per minimum interval (not once per deletion), logs the burst
// once when it starts and once when it ends, stays well below a core, and
// the table is back, as the policy says, once the loop stops.
func TestDaemonDriftFlood(t *testing.T) {
	netnstest.RequireRoot(t)
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "base.yaml")})
	want, ok := p.Table()
	if !ok || !strings.Contains(want, "counter web ") {
		t.Fatalf("the policy is not in force before the flood:\n%s", want)
	}
	pid := p.cmd.Process.Pid
	repairsBefore := p.Status(t).DriftRepairs

	const (
		floodFor   = 4 * time.Second
		floodEvery = 10 * time.Millisecond
	)
	cpuBefore := processCPUTime(t, pid)
	deleted, flood := floodDeleteTable(t, p.NS, floodFor, floodEvery)
	cpu := processCPUTime(t, pid) - cpuBefore
	floodEnd := time.Now()
	t.Logf("flood: %d deletions of table inet edgefw in %s", deleted, flood)

	// Generous: a repair that failed under the flood is retried after its
	// backoff, which reaches a minute at most.
	daemonPoll(t, 90*time.Second, "table inet edgefw to be restored after the flood", func() (bool, string) {
		table, ok := p.Table()
		return ok && table == want, table
	})
	t.Logf("restored as the policy says %s after the flood", time.Since(floodEnd).Round(time.Millisecond))

	repairs := p.Status(t).DriftRepairs - repairsBefore
	// Repairs are at least daemon.MinRepairInterval apart: those during the
	// flood, the one after its last deletion, and one for the clocks of
	// the test and the daemon not starting together.
	bound := uint64(flood/daemon.MinRepairInterval) + 3
	t.Logf("daemon: %d repairs for %d deletions (bound %d); CPU %s in %s (%.0f%% of one core)",
		repairs, deleted, bound, cpu, flood, 100*cpu.Seconds()/flood.Seconds())
	if repairs < 1 {
		t.Errorf("no repair counted after the flood")
	}
	if repairs > bound {
		t.Errorf("%d repairs during a %s flood of %d deletions, want at most %d (one per %s)",
			repairs, flood.Round(time.Millisecond), deleted, bound, daemon.MinRepairInterval)
	}
	// Generous: these machines are shared and noisy.
	if share := cpu.Seconds() / flood.Seconds(); share > 0.6 {
		t.Errorf("the daemon used %s of CPU during a %s flood (%.0f%% of one core), want below 60%%", cpu, flood, 100*share)
	}

	if n := strings.Count(p.Log(), burstStartLog); n != 1 {
		t.Errorf("%q logged %d times during the flood, want once for the burst", burstStartLog, n)
	}
	p.WaitLog(t, burstEndLog)
	log := p.Log()
	if n := strings.Count(log, burstEndLog); n != 1 {
		t.Errorf("%q logged %d times, want once", burstEndLog, n)
	}
	if lines := strings.Count(log, "\n"); lines > 30 {
		t.Errorf("the daemon logged %d lines for one burst, want a few", lines)
	}
	// The flood comes from this test's process: the burst's log names it
	// by its command name (which the kernel cuts at 15 bytes) and its
	// process id (not the id of the thread that committed).
	flooder := filepath.Base(os.Args[0])
	flooder = flooder[:min(len(flooder), 15)] + "[" + strconv.Itoa(os.Getpid()) + "]"
	if !strings.Contains(lineWith(log, burstStartLog)+lineWith(log, burstEndLog), flooder) {
		t.Errorf("neither the burst's warning nor its summary names the process that changed the table (%s):\n%s", flooder, log)
	}
	summary := lineWith(log, burstEndLog)
	t.Logf("summary: %s", summary)
	// The summary counts the commits of others that nftables notified: the
	// daemon's own repairs are not changes.
	if changes, ok := logValue(summary, "changes"); !ok {
		t.Errorf("the summary does not say how many changes there were: %s", summary)
	} else if n, err := strconv.Atoi(changes); err != nil || n < 1 || n > deleted {
		t.Errorf("the summary counts %s changes for %d deletions by this test, want 1 to %d", changes, deleted, deleted)
	}

	// After the burst, a single change is repaired at once again, and
	// logged as a burst of its own.
	repairsBefore = p.Status(t).DriftRepairs
	start := time.Now()
	deleteTableOnce(t, p.NS)
	daemonPoll(t, daemonReadyTimeout, "a single deletion after the burst to be repaired", func() (bool, string) {
		table, ok := p.Table()
		return ok && table == want, table
	})
	t.Logf("a single deletion after the burst: restored within %s (polled with nft)", time.Since(start).Round(time.Millisecond))
	if got := p.Status(t).DriftRepairs - repairsBefore; got != 1 {
		t.Errorf("%d repairs for a single deletion after the burst, want 1", got)
	}
	// Logged just after the repair: wait for it.
	daemonPoll(t, daemonReadyTimeout, "the second burst's warning", func() (bool, string) {
		return strings.Count(p.Log(), burstStartLog) == 2, p.Log()
	})
}

// deleteTableOnce deletes table inet edgefw in ns.
func deleteTableOnce(t *testing.T, ns *netnstest.NS) {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	conn.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "edgefw"})
	if err := conn.Flush(); err != nil {
		t.Fatalf("delete table inet edgefw: %v", err)
	}
}

// logValue returns the value of key in a line of slog's text handler,
// unquoted.
func logValue(line, key string) (string, bool) {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return "", false
	}
	v := line[i+len(key)+2:]
	if q, err := strconv.QuotedPrefix(v); err == nil {
		u, err := strconv.Unquote(q)
		return u, err == nil
	}
	v, _, _ = strings.Cut(v, " ")
	return v, true
}

// floodDeleteTable deletes table inet edgefw in ns every interval for
// about d, over netlink rather than by running nft that often. Each
// deletion is a commit that touches the table, whether the daemon has
// restored it yet or not: adding the table first (a no-op when it
// exists) keeps the deletion from being refused when it is gone. It
// returns the number of deletions and how long the flood lasted.
func floodDeleteTable(t *testing.T, ns *netnstest.NS, d, interval time.Duration) (deleted int, took time.Duration) {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: "edgefw"}
	for time.Since(start) < d {
		conn.AddTable(table)
		conn.DelTable(table)
		if err := conn.Flush(); err != nil {
			t.Fatalf("delete table inet edgefw: %v", err)
		}
		deleted++
		<-tick.C
	}
	return deleted, time.Since(start)
}

// processCPUTime is the user and system CPU time the process has used
// (utime and stime of /proc/PID/stat).
func processCPUTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces and parentheses: fields are counted
	// after its closing one, from the state (field 3).
	i := strings.LastIndex(string(data), ") ")
	if i < 0 {
		t.Fatalf("cannot parse /proc/%d/stat: %q", pid, data)
	}
	fields := strings.Fields(string(data)[i+2:])
	if len(fields) < 13 {
		t.Fatalf("cannot parse /proc/%d/stat: %q", pid, data)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	// USER_HZ is 100 on every Linux architecture Go supports (sysconf
	// _SC_CLK_TCK; the kernel converts to it for /proc).
	return time.Duration(ticks) * time.Second / 100
}

// lineWith returns the first line of log that contains s, or "".
func lineWith(log, s string) string {
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestDaemonHearsChangesAfterLargeRepair deletes the table of a policy
// with a 20,000-element set a few times. Each repair writes the elements
// again, and their notifications overflow the daemon's nftables
// subscription: the daemon must follow notifications again afterwards,
// or it repairs only at its next generation check and cannot say who
// changed the table.
func TestDaemonHearsChangesAfterLargeRepair(t *testing.T) {
	netnstest.RequireRoot(t)
	dir := daemonShortDir(t, "pol")
	writeBlocklist(t, filepath.Join(dir, "blocklist.txt"), 20_000)
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "blocklist.yaml"),
		PolicyPath: filepath.Join(dir, "policy.yaml"), Args: []string{"--log-level", "debug"}})
	want, _ := p.Table()
	flooder := filepath.Base(os.Args[0])
	flooder = flooder[:min(len(flooder), 15)] + "[" + strconv.Itoa(os.Getpid()) + "]"

	var named []string
	for i := range 4 {
		deleteTableOnce(t, p.NS)
		daemonPoll(t, daemonReadyTimeout, "table inet edgefw to be restored", func() (bool, string) {
			table, ok := p.Table()
			return ok && table == want, table
		})
		daemonPoll(t, daemonReadyTimeout, "the repair to be logged", func() (bool, string) {
			return repairsLogged(p.Log()) == i+1, p.Log()
		})
		logged := lastRepairLine(p.Log())
		who, _ := logValue(logged, "changed_by")
		named = append(named, who)
	}
	t.Logf("the repairs named: %q", named)
	// The first deletion is heard by a fresh subscription; the later ones
	// come after the daemon's own large commits. (A deletion that comes
	// while the daemon subscribes again is repaired as quickly, but cannot
	// be named: one named is enough.)
	if !slices.Contains(named[1:], flooder) {
		t.Errorf("no repair after a large repair named %s: the daemon no longer hears nftables notifications", flooder)
	}
}

// isRepairLine matches the log lines of a drift repair, logged as a burst's
// start or, within a burst, at debug.
func isRepairLine(l string) bool {
	return strings.Contains(l, burstStartLog) || strings.Contains(l, `msg="drift repaired again"`)
}

func repairsLogged(log string) int {
	n := 0
	for l := range strings.SplitSeq(log, "\n") {
		if isRepairLine(l) {
			n++
		}
	}
	return n
}

func lastRepairLine(log string) string {
	last := ""
	for l := range strings.SplitSeq(log, "\n") {
		if isRepairLine(l) {
			last = l
		}
	}
	return last
}

// writeBlocklist writes n host addresses of 10.0.0.0/8, none adjacent to
// another (so the set holds n intervals), one a line.
func writeBlocklist(t *testing.T, path string, n int) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		x := 2 * i
		fmt.Fprintf(&b, "10.%d.%d.%d/32\n", x>>16&255, x>>8&255, x&255)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
