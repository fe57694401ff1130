package integration

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/nft"
)

// onceUnchangedLog is what edgefwd --once logs when the state directory's
// record proves that nothing was committed since its last commit of the
// same ruleset, and it reads nothing back.
const onceUnchangedLog = "policy applied: unchanged since our last commit"

// onceFilesUnchangedLog is what it logs when, moreover, the record was
// left by an --once of the same policy files, which still read the same:
// then it does not even load the policy.
const onceFilesUnchangedLog = "policy applied: its files and the ruleset are unchanged since our last commit"

// onceGeneration is the generation such a --once names.
var onceGeneration = regexp.MustCompile(`generation=(\d+) messages=0 `)

// TestOnceUnchangedSinceLastCommit runs edgefwd --once again and again on
// a policy with a set of 3,000 CIDRs. When nothing was committed since its
// last commit, it says so and commits nothing; after a change to its table
// from outside (an element, a rule, a flushed ruleset) it repairs the
// table; after a commit to another table it reads, finds nothing to write
// and writes nothing. A running daemon's commits count as its own. While
// the policy's files read the same, it does not load them; a changed set
// file line is applied, and an edit that changes no rule is recognised by
// the ruleset it compiles to.
func TestOnceUnchangedSinceLastCommit(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	bin, _ := buildBinaries(t)
	dir := daemonShortDir(t, "once")
	writeBlocklist(t, filepath.Join(dir, "blocklist.txt"), 3000)
	policyPath := filepath.Join(dir, "policy.yaml")
	daemonWriteAtomic(t, policyPath, daemonTestdata(t, "blocklist.yaml"))
	state := filepath.Join(dir, "state")
	ns := netnstest.New(t, "once")

	out, code, _ := runOnce(t, ns, bin, policyPath, state)
	if code != 0 || !strings.Contains(out, `msg="policy applied"`) || strings.Contains(out, "messages=0") {
		t.Fatalf("first --once: exit %d, want 0 and a commit:\n%s", code, out)
	}
	want := statelessTable(t, ns)
	gen := nsGeneration(t, ns)
	onceUnchanged(t, ns, bin, policyPath, state, gen, onceFilesUnchangedLog)
	onceUnchanged(t, ns, bin, policyPath, state, gen, onceFilesUnchangedLog)

	// A set file's line changed, and changed back: each is applied.
	for _, n := range []int{2999, 3000} {
		writeBlocklist(t, filepath.Join(dir, "blocklist.txt"), n)
		out, code, _ := runOnce(t, ns, bin, policyPath, state)
		if code != 0 || strings.Contains(out, "unchanged since") || strings.Contains(out, "messages=0") {
			t.Fatalf("--once after the set file changed to %d lines: exit %d, want a commit:\n%s", n, code, out)
		}
		onceUnchanged(t, ns, bin, policyPath, state, nsGeneration(t, ns), onceFilesUnchangedLog)
	}
	if got := statelessTable(t, ns); got != want {
		t.Fatalf("after the set file changed back, the table is\n%s\nwant\n%s", got, want)
	}
	// A comment added: other files, the same ruleset.
	daemonWriteAtomic(t, policyPath, "# reviewed\n"+daemonTestdata(t, "blocklist.yaml"))
	onceUnchanged(t, ns, bin, policyPath, state, nsGeneration(t, ns), onceUnchangedLog)
	onceUnchanged(t, ns, bin, policyPath, state, nsGeneration(t, ns), onceFilesUnchangedLog)

	for _, change := range [][]string{
		{"add", "element", "inet", "edgefw", "blocklist-v4", "{ 192.0.2.99 }"},
		{"add", "rule", "inet", "edgefw", "input", "tcp", "dport", "23", "accept"},
		{"flush", "ruleset"},
	} {
		ns.MustRun(t, append([]string{"nft"}, change...)...)
		out, code, _ := runOnce(t, ns, bin, policyPath, state)
		if code != 0 || strings.Contains(out, onceUnchangedLog) || strings.Contains(out, "messages=0") {
			t.Fatalf("--once after nft %s: exit %d, want a repair:\n%s", strings.Join(change, " "), code, out)
		}
		if got := statelessTable(t, ns); got != want {
			t.Fatalf("after nft %s and --once, the table is\n%s\nwant\n%s", strings.Join(change, " "), got, want)
		}
		onceUnchanged(t, ns, bin, policyPath, state, nsGeneration(t, ns), onceFilesUnchangedLog)
	}

	ns.MustRun(t, "nft", "add", "table", "ip", "other")
	gen = nsGeneration(t, ns)
	out, code, _ = runOnce(t, ns, bin, policyPath, state)
	if code != 0 || strings.Contains(out, onceUnchangedLog) || !strings.Contains(out, "messages=0") {
		t.Fatalf("--once after a commit to another table: exit %d, want a full check that writes nothing:\n%s", code, out)
	}
	if now := nsGeneration(t, ns); now != gen {
		t.Fatalf("--once after a commit to another table committed: generation %d -> %d", gen, now)
	}
	onceUnchanged(t, ns, bin, policyPath, state, gen, onceFilesUnchangedLog)

	// A daemon sharing the state directory: after its repair, --once
	// trusts the daemon's commit.
	p := startEdgefwdReady(t, edgefwdSetup{NS: ns, PolicyPath: policyPath, StateDir: state})
	ns.MustRun(t, "nft", "delete", "table", "inet", "edgefw")
	daemonPoll(t, daemonReadyTimeout, "the daemon to restore table inet edgefw", func() (bool, string) {
		got := statelessTable(t, ns)
		return got == want, got
	})
	p.Signal(t, syscall.SIGTERM)
	p.WaitExit(t)
	onceUnchanged(t, ns, bin, policyPath, state, nsGeneration(t, ns), onceUnchangedLog)
	onceUnchanged(t, ns, bin, policyPath, state, nsGeneration(t, ns), onceFilesUnchangedLog)
}

// onceUnchanged runs edgefwd --once and checks that it took the record's
// word, at generation gen, saying log, and committed nothing.
func onceUnchanged(t *testing.T, ns *netnstest.NS, bin, policyPath, state string, gen uint32, log string) {
	t.Helper()
	out, code, took := runOnce(t, ns, bin, policyPath, state)
	m := onceGeneration.FindStringSubmatch(out)
	if code != 0 || !strings.Contains(out, `msg="`+log+`"`) || m == nil || m[1] != fmt.Sprint(gen) {
		t.Fatalf("--once: exit %d, want 0 and %q at generation %d:\n%s", code, log, gen, out)
	}
	if now := nsGeneration(t, ns); now != gen {
		t.Fatalf("--once unchanged, yet the generation moved from %d to %d:\n%s", gen, now, out)
	}
	t.Logf("--once unchanged since generation %d: %s", gen, took)
}

// nsGeneration reads the namespace's nftables ruleset generation.
func nsGeneration(t *testing.T, ns *netnstest.NS) uint32 {
	t.Helper()
	g, err := nft.NewApplier(nft.WithNetNS(ns.FD)).Generation()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// statelessTable lists table inet edgefw without counter values.
func statelessTable(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	out, err := ns.Run("nft", "-s", "list", "table", "inet", "edgefw")
	if err != nil {
		return "(no table) " + out
	}
	return out
}
