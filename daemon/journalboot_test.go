package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/policy"
)

// start starts a new daemon of the harness, without its loop.
func (h *harness) start(t *testing.T) *Daemon { return h.startWith(t, nil) }

// startWith starts a new daemon of the harness, its configuration
// adjusted by setup, without its loop; its journal is closed when the
// test ends.
func (h *harness) startWith(t *testing.T, setup func(*Config)) *Daemon {
	t.Helper()
	cfg := Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Version: "test"}
	if setup != nil {
		setup(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.closeJournal)
	return d
}

// loop runs a started daemon's loop until the test ends.
func loop(t *testing.T, d *Daemon) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.loop(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// crashPending has d apply policyB awaiting confirmation, as by, and
// die with its timer: it returns the unconfirmed policy's hash and the
// journal's length at the crash.
func (h *harness) crashPending(t *testing.T, d *Daemon, req *ApplyRequest, by *Caller) (unconfirmed string, n int) {
	t.Helper()
	if resp := d.applyRequest(context.Background(), req, by); !resp.OK {
		t.Fatalf("apply: %+v", resp)
	}
	unconfirmed = runningHash(d)
	d.stopPendingTimer()
	d.closeJournal()
	return unconfirmed, len(h.entries(t))
}

func TestJournalBoot(t *testing.T) {
	h := newHarness(t)
	d := h.start(t)
	files := runningHash(d)
	e := only(t, h.entries(t), journal.KindBoot)
	wantBy(t, e, nil)
	if e.Trigger != "policy-files" || e.Version != "test" || e.Source != h.policy || e.PolicyBefore != "" || e.PolicyAfter != files {
		t.Errorf("first boot %s: want policy-files, version test, policy none→%.12s", e, files)
	}
	if c := e.Changes; c == nil || !slices.Contains(c.Added, "web") || c.ElementsAdded+c.RulesRemoved != 0 {
		t.Errorf("first boot changes %+v, want web added", e.Changes)
	}

	// A restart: the last good ruleset, then the files, change nothing.
	h.start(t)
	e = only(t, h.since(t, 1), journal.KindBoot)
	if e.Trigger != "policy-files" || e.PolicyBefore != files || e.PolicyAfter != files || e.Changes != nil {
		t.Errorf("restart %s: want policy-files, policy %.12s unchanged, no changes", e, files)
	}

	// A reboot with a broken policy file: the last good ruleset, and the
	// files' failure journaled before the boot.
	h.flush(t)
	h.write(t, "version: 2\n")
	h.start(t)
	es := h.since(t, 2)
	if len(es) != 2 || es[0].Kind != journal.KindApplyFailed || es[1].Kind != journal.KindBoot {
		t.Fatalf("reboot with a broken policy: %s; want apply-failed, boot", entryLines(es))
	}
	if f := es[0]; f.Trigger != "start" || !strings.Contains(f.Error, "policy.yaml") {
		t.Errorf("failed apply at boot %s: want trigger start and the file named", f)
	}
	if e := es[1]; e.Trigger != "last-good" || e.PolicyBefore != files || e.PolicyAfter != files || e.Changes == nil || e.Changes.RulesAdded == 0 {
		t.Errorf("boot from last good %s: want last-good, policy %.12s, rules added again", e, files)
	}
	if v, err := journal.Verify(filepath.Join(h.state, JournalDir)); err != nil || !v.OK() || v.Entries != 4 {
		t.Errorf("verify after three starts: %v, %v", v, err)
	}
}

func TestJournalSafeFallback(t *testing.T) {
	h := newHarness(t)
	h.write(t, "version: 1\nbogus: true\nfailsafe: [{protocol: tcp, port: 2222}]\n")
	ports, err := policy.ParsePorts("tcp/22")
	if err != nil {
		t.Fatal(err)
	}
	h.startWith(t, func(c *Config) { c.Failsafe = ports })
	es := h.entries(t)
	kinds := kindsOf(es)
	if want := []journal.Kind{journal.KindApplyFailed, journal.KindSafeFallback, journal.KindBoot}; !slices.Equal(kinds, want) {
		t.Fatalf("entries %s; want %v", entryLines(es), want)
	}
	if e := es[1]; !slices.Equal(e.Failsafe, []string{"tcp/22", "tcp/2222"}) || e.Trigger != triggerSafeFallback || !strings.Contains(e.Source, "safe minimal ruleset") {
		t.Errorf("safe fallback %s: want failsafe tcp/22,tcp/2222", e)
	}
	if e := es[2]; e.Trigger != "safe-fallback" || e.Version != "test" {
		t.Errorf("boot %s: want from safe-fallback", e)
	}
}

func TestJournalRestartRollback(t *testing.T) {
	h := newHarness(t)
	d1 := h.start(t)
	files := runningHash(d1)
	req := applyReq(t, policyB, time.Hour)
	unconfirmed, n := h.crashPending(t, d1, req, alice)
	h.start(t)
	es := h.since(t, n)
	if want := []journal.Kind{journal.KindRollback, journal.KindBoot}; !slices.Equal(kindsOf(es), want) {
		t.Fatalf("restart with an unconfirmed apply: %s; want %v", entryLines(es), want)
	}
	rb, boot := es[0], es[1]
	wantBy(t, rb, nil)
	if rb.Trigger != triggerRestart || rb.PolicyBefore != unconfirmed || rb.PolicyAfter != files || !strings.Contains(rb.Detail, req.Path) {
		t.Errorf("restart rollback %s: want trigger restart, policy %.12s→%.12s, naming %s", rb, unconfirmed, files, req.Path)
	}
	if c := rb.Changes; c == nil || !slices.Equal(c.Removed, []string{"metrics"}) {
		t.Errorf("restart rollback changes %+v, want metrics removed", rb.Changes)
	}
	if boot.Trigger != "restart-rollback" || boot.PolicyBefore != unconfirmed || boot.PolicyAfter != files {
		t.Errorf("boot %s: want from restart-rollback", boot)
	}
}

// TestJournalRestartRollbackToFiles: an unconfirmed apply with nothing
// before it is replaced by the policy files at restart, a rollback too.
func TestJournalRestartRollbackToFiles(t *testing.T) {
	h := newHarness(t)
	d1 := h.start(t)
	files := runningHash(d1)
	d1.remove()
	unconfirmed, n := h.crashPending(t, d1, applyReq(t, policyB, time.Hour), nil)
	h.start(t)
	es := h.since(t, n)
	if want := []journal.Kind{journal.KindRollback, journal.KindBoot}; !slices.Equal(kindsOf(es), want) {
		t.Fatalf("restart: %s; want %v", entryLines(es), want)
	}
	if rb := es[0]; rb.Trigger != triggerRestart || rb.PolicyBefore != unconfirmed || rb.PolicyAfter != files || !strings.Contains(rb.Detail, "nothing before it") {
		t.Errorf("rollback %s: want restart, policy %.12s→%.12s", rb, unconfirmed, files)
	}
	if boot := es[1]; boot.Trigger != "policy-files" {
		t.Errorf("boot %s: want policy-files", boot)
	}
}

func kindsOf(es []journal.Entry) []journal.Kind {
	out := make([]journal.Kind, len(es))
	for i, e := range es {
		out[i] = e.Kind
	}
	return out
}
