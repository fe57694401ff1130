package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/journal"
)

// journalGroup is the control socket's group in TestJournalEndToEnd:
// nogroup's gid, which every Linux host has and nobody (65534) belongs
// to, so that no user or group need be created on the host.
const journalGroup = "65534"

// nobodyInGroup is an unprivileged caller, a member of journalGroup.
var nobodyInGroup = &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{65534}}

// journalEntries runs `edgefwctl journal -o json` and decodes it.
func journalEntries(t *testing.T, p *edgefwdProcess) []journal.Entry {
	t.Helper()
	var es []journal.Entry
	out := p.MustCtl(t, "journal", "-o", "json")
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("journal -o json: %v\n%s", err, out)
	}
	return es
}

// waitJournal waits until an entry after the first n satisfies match, and
// returns it.
func waitJournal(t *testing.T, p *edgefwdProcess, n int, what string, match func(journal.Entry) bool) journal.Entry {
	t.Helper()
	var found journal.Entry
	daemonPoll(t, daemonReadyTimeout, what, func() (bool, string) {
		es := journalEntries(t, p)
		for _, e := range es[min(n, len(es)):] {
			if match(e) {
				found = e
				return true, ""
			}
		}
		return false, journalText(es) + "\n--- edgefwd log:\n" + p.Log()
	})
	return found
}

func journalText(es []journal.Entry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.String() + "\n")
	}
	return b.String()
}

func isKind(kind journal.Kind, trigger string) func(journal.Entry) bool {
	return func(e journal.Entry) bool { return e.Kind == kind && (trigger == "" || e.Trigger == trigger) }
}

// TestJournalEndToEnd runs the real edgefwd in a namespace: an apply and
// a confirm by a non-root member of the socket's group, an unconfirmed
// apply rolled back by its timeout, a drift repair after `nft flush
// ruleset`, and a restart while an apply awaits confirmation all appear in
// `edgefwctl journal -o json` with their time, caller and policy hashes.
// Then a torn last line is skipped and the chain still holds, and one
// byte edited in an old entry makes `journal verify` name it and fail.
func TestJournalEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	args := []string{"--socket-group", journalGroup}
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "base.yaml"), Args: args})
	dir := daemonShortDir(t, "cand")
	candidate, other := filepath.Join(dir, "candidate.yaml"), filepath.Join(dir, "other.yaml")
	daemonWriteAtomic(t, candidate, daemonTestdata(t, "extra.yaml"))
	daemonWriteAtomic(t, other, strings.Replace(daemonTestdata(t, "extra.yaml"), "9100", "9200", 1))

	for _, cmd := range [][]string{{"apply", candidate, "--confirm-timeout", "10m"}, {"confirm"}} {
		if r := p.Ctl(t, nobodyInGroup, cmd...); r.Code != 0 {
			t.Fatalf("edgefwctl %s as uid 65534 in group %s: exit %d\n%s%s", cmd[0], journalGroup, r.Code, r.Stdout, r.Stderr)
		}
	}
	n := len(journalEntries(t, p))
	p.MustCtl(t, "apply", other, "--confirm-timeout", "2s")
	waitJournal(t, p, n, "the rollback of the unconfirmed apply", isKind(journal.KindRollback, "confirm-timeout"))
	n = len(journalEntries(t, p))
	p.Nft(t, "flush", "ruleset")
	waitJournal(t, p, n, "the drift repair", isKind(journal.KindDriftRepair, ""))

	// Killed while an apply awaits confirmation: the restart rolls it back.
	p.MustCtl(t, "apply", other, "--confirm-timeout", "1h")
	p.Signal(t, syscall.SIGKILL)
	p.WaitExit(t)
	p = startEdgefwdReady(t, edgefwdSetup{NS: p.NS, PolicyPath: p.PolicyPath, StateDir: p.StateDir, Socket: p.Socket, Args: args})
	es := journalEntries(t, p)
	checkJournalStory(t, es)
	t.Logf("journal:\n%s", journalText(es))

	// A torn last line, as a crash in the middle of an append leaves.
	file := filepath.Join(p.StateDir, daemon.JournalDir, "journal.jsonl")
	p.Signal(t, syscall.SIGTERM)
	p.WaitExit(t)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":999,"time":"2026-03-01T12:0`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p = startEdgefwdReady(t, edgefwdSetup{NS: p.NS, PolicyPath: p.PolicyPath, StateDir: p.StateDir, Socket: p.Socket, Args: args})
	after := journalEntries(t, p)
	if last := after[len(after)-1]; last.Kind != journal.KindBoot || last.Seq != es[len(es)-1].Seq+1 {
		t.Errorf("after the torn line the journal ends with %s; want the boot, entry %d", last, es[len(es)-1].Seq+1)
	}
	var v journal.Verification
	if err := json.Unmarshal([]byte(p.MustCtl(t, "journal", "verify", "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if !v.OK() || len(v.Torn) != 1 || v.LastSeq != after[len(after)-1].Seq {
		t.Errorf("verify after a torn line: %s (%+v); want the chain to hold, one torn line", v.String(), v)
	}
	t.Logf("journal verify: %s", v.String())

	// One byte of an old entry edited while the daemon is stopped.
	p.Signal(t, syscall.SIGTERM)
	p.WaitExit(t)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines[1] = bytes.Replace(lines[1], []byte(`"user":"nobody"`), []byte(`"user":"nobodY"`), 1)
	if err := os.WriteFile(file, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	p = startEdgefwdReady(t, edgefwdSetup{NS: p.NS, PolicyPath: p.PolicyPath, StateDir: p.StateDir, Socket: p.Socket, Args: args})
	r := p.Ctl(t, nil, "journal", "verify")
	if r.Code != 1 || !strings.Contains(r.Stdout, "broken at entry 2 (journal.jsonl:2)") {
		t.Errorf("verify after editing entry 2: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("journal verify after the edit: %s", strings.TrimSpace(r.Stdout))
}

// checkJournalStory checks the entries of TestJournalEndToEnd up to the
// restart, in order.
func checkJournalStory(t *testing.T, es []journal.Entry) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("journal:\n%s", journalText(es))
		}
	}()
	next := 0
	find := func(what string, match func(journal.Entry) bool) journal.Entry {
		t.Helper()
		for i := next; i < len(es); i++ {
			if match(es[i]) {
				next = i + 1
				if es[i].Time.IsZero() {
					t.Errorf("%s has no time", what)
				}
				return es[i]
			}
		}
		t.Fatalf("no %s after entry %d", what, next)
		return journal.Entry{}
	}
	nobody := func(e journal.Entry) bool { return e.By != nil && e.By.UID == 65534 && e.By.User == "nobody" }
	root := func(e journal.Entry) bool { return e.By != nil && e.By.UID == 0 && e.By.User == "root" }

	boot := find("first boot", isKind(journal.KindBoot, "policy-files"))
	if boot.Version == "" || boot.PolicyAfter == "" {
		t.Errorf("boot %s: want the version and the policy's hash", boot)
	}
	apply := find("apply by nobody", isKind(journal.KindApply, "apply"))
	if !nobody(apply) || apply.PolicyBefore != boot.PolicyAfter || apply.PolicyAfter == "" || apply.PolicyAfter == apply.PolicyBefore ||
		apply.Changes == nil || len(apply.Changes.Added) != 1 || apply.Changes.Added[0] != "node-exporter" {
		t.Errorf("apply %s: want nobody's, policy %.12s→new, node-exporter added", apply, boot.PolicyAfter)
	}
	confirmed := find("confirm by nobody", isKind(journal.KindConfirm, ""))
	if !nobody(confirmed) || confirmed.PolicyAfter != apply.PolicyAfter {
		t.Errorf("confirm %s: want nobody's, of policy %.12s", confirmed, apply.PolicyAfter)
	}
	unconfirmed := find("unconfirmed apply by root", isKind(journal.KindApply, "apply"))
	if !root(unconfirmed) || unconfirmed.PolicyBefore != apply.PolicyAfter {
		t.Errorf("unconfirmed apply %s: want root's, from %.12s", unconfirmed, apply.PolicyAfter)
	}
	timeout := find("rollback by timeout", isKind(journal.KindRollback, "confirm-timeout"))
	if timeout.By != nil || timeout.PolicyBefore != unconfirmed.PolicyAfter || timeout.PolicyAfter != apply.PolicyAfter {
		t.Errorf("timeout rollback %s: want edgefwd's, %.12s→%.12s", timeout, unconfirmed.PolicyAfter, apply.PolicyAfter)
	}
	drift := find("drift repair", isKind(journal.KindDriftRepair, "drift"))
	if !strings.Contains(drift.ChangedBy, "nft") || drift.PolicyAfter != apply.PolicyAfter || drift.Drift == nil || drift.Drift.Repairs < 1 ||
		drift.Changes == nil || drift.Changes.RulesAdded == 0 {
		t.Errorf("drift repair %s: want changed_by nft, the running policy, rules added again", drift)
	}
	pending := find("apply before the kill", isKind(journal.KindApply, "apply"))
	restart := find("rollback at restart", isKind(journal.KindRollback, "restart"))
	if restart.PolicyBefore != pending.PolicyAfter || restart.PolicyAfter != apply.PolicyAfter {
		t.Errorf("restart rollback %s: want %.12s→%.12s", restart, pending.PolicyAfter, apply.PolicyAfter)
	}
	reboot := find("boot after the restart", isKind(journal.KindBoot, "restart-rollback"))
	if reboot.PolicyAfter != apply.PolicyAfter {
		t.Errorf("boot %s: want policy %.12s", reboot, apply.PolicyAfter)
	}
}
