package daemon

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// policyA2 is policyA with the web rule moved to another port: the policy
// files changed.
var policyA2 = strings.Replace(policyA, "443", "444", 1)

var alice = &Caller{UID: 1000, User: "alice"}

// applyAs applies content through the loop as the control socket does,
// confirmed: without a timeout, or with one and then a confirm.
func applyAs(t *testing.T, d *Daemon, content string, timeout time.Duration) {
	t.Helper()
	resp := d.send(context.Background(), event{kind: "apply", apply: applyReq(t, content, timeout), caller: alice})
	if !resp.OK {
		t.Fatalf("apply: %+v", resp)
	}
	if timeout > 0 {
		if resp := d.send(context.Background(), event{kind: "confirm", caller: alice}); !resp.OK {
			t.Fatalf("confirm: %+v", resp)
		}
	}
}

func reloadAs(t *testing.T, d *Daemon, trigger string) {
	t.Helper()
	if resp := d.Reload(context.Background(), trigger); !resp.OK {
		t.Fatalf("reload %s: %+v", trigger, resp)
	}
}

// checkApplied checks that policyB, applied by alice, runs and that
// status says it is not the policy files.
func checkApplied(t *testing.T, h *harness, d *Daemon, when string) {
	t.Helper()
	if !h.holds(t, policyB) {
		t.Fatalf("%s: the applied policy is not in force: %+v", when, h.kernel.Snapshot())
	}
	st := d.Status(context.Background())
	if !st.Policy.Applied || st.Policy.AppliedBy == nil || *st.Policy.AppliedBy != *alice || st.Policy.AppliedAt.IsZero() {
		t.Errorf("%s: status policy %+v, want applied by alice with a time", when, st.Policy)
	}
	if st.PolicyFiles == nil || !st.PolicyFiles.Differs || st.PolicyFiles.Path != h.policy {
		t.Errorf("%s: status policyFiles %+v, want the files named and differing", when, st.PolicyFiles)
	}
	warnings := strings.Join(st.Warnings, "\n")
	for _, want := range []string{"the running policy is not the policy files", "by alice (uid 1000) at ", "differs from " + h.policy, "edgefwctl reload --from-files"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("%s: status warnings lack %q:\n%s", when, want, warnings)
		}
	}
}

func checkFiles(t *testing.T, h *harness, d *Daemon, port, when string) {
	t.Helper()
	if !h.holds(t, strings.Replace(policyA, "443", port, 1)) {
		t.Fatalf("%s: want the policy files (web on %s) in force: %+v", when, port, h.kernel.Snapshot())
	}
	st := d.Status(context.Background())
	if st.Policy.Applied || st.PolicyFiles != nil || strings.Contains(strings.Join(st.Warnings, "\n"), "not the policy files") {
		t.Errorf("%s: status still says the policy was applied: %+v %+v %q", when, st.Policy, st.PolicyFiles, st.Warnings)
	}
}

// TestConfirmedApplyLasts: a confirmed apply stays the running policy
// across reloads and a restart, until the policy files change.
func TestConfirmedApplyLasts(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	applyAs(t, d, policyB, time.Hour)
	checkApplied(t, h, d, "after the confirm")
	for _, trigger := range []string{"signal", "reload", "rollback"} {
		reloadAs(t, d, trigger)
		checkApplied(t, h, d, "after a reload ("+trigger+")")
	}
	// The same contents written again are no change.
	h.write(t, policyA)
	reloadAs(t, d, "file-change")
	checkApplied(t, h, d, "after the files were rewritten unchanged")

	d2 := h.run(t) // a restart on the same state directory
	checkApplied(t, h, d2, "after a restart")

	h.write(t, policyA2)
	reloadAs(t, d2, "file-change")
	checkFiles(t, h, d2, "444", "after the policy files changed")
	d3 := h.run(t)
	checkFiles(t, h, d3, "444", "after a restart that followed")
}

// TestReloadFromFiles: the operator returns to the unchanged files.
func TestReloadFromFiles(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	applyAs(t, d, policyB, 0)
	checkApplied(t, h, d, "after an apply without confirmation timeout")
	reloadAs(t, d, triggerFromFiles)
	checkFiles(t, h, d, "443", "after reload --from-files")
	reloadAs(t, d, "signal")
	checkFiles(t, h, d, "443", "after a reload that followed")
}

// TestFilesChangedWhileStopped: a restart after the policy files changed
// runs the files, not the policy applied before.
func TestFilesChangedWhileStopped(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	applyAs(t, d, policyB, 0)
	checkApplied(t, h, d, "after the apply")
	h.write(t, policyA2)
	d2 := h.run(t)
	checkFiles(t, h, d2, "444", "after a restart with changed files")
}

// TestUnconfirmedApplyGivesWayToReload keeps the rule that a reload while
// an apply awaits confirmation makes the files the truth again.
func TestUnconfirmedApplyGivesWayToReload(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	if resp := d.send(context.Background(), event{kind: "apply", apply: applyReq(t, policyB, time.Hour), caller: alice}); !resp.OK {
		t.Fatalf("apply: %+v", resp)
	}
	reloadAs(t, d, "signal")
	checkFiles(t, h, d, "443", "after a reload of an unconfirmed apply")
	if st := d.Status(context.Background()); st.Pending != nil {
		t.Errorf("the reload left the apply pending: %+v", st.Pending)
	}
}

// TestAppliedPolicyWithBrokenFiles: status says the files do not load.
func TestAppliedPolicyWithBrokenFiles(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	h.write(t, "version: 1\nrules: [\n")
	applyAs(t, d, policyB, 0)
	st := d.Status(context.Background())
	if st.PolicyFiles == nil || st.PolicyFiles.Error == "" || !strings.Contains(strings.Join(st.Warnings, "\n"), h.policy+" does not load") {
		t.Errorf("status %+v %q: want the files' error", st.PolicyFiles, st.Warnings)
	}
	if err := os.WriteFile(h.policy, []byte("version: 1\nrules: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reloadAs(t, d, "signal")
	if st := d.Status(context.Background()); !st.Policy.Applied || !h.holds(t, policyB) {
		t.Errorf("after a reload with the files still broken and unchanged, the applied policy gave way: %+v", st.Policy)
	}
}

// TestReloadSourceIsTheFiles: a reload describes its policy by the files
// it loaded, as a fresh read of them does, set files included.
func TestReloadSourceIsTheFiles(t *testing.T) {
	h := newHarness(t)
	setFile := h.dir + "/blocklist.txt"
	if err := os.WriteFile(setFile, []byte("192.0.2.0/24\n198.51.100.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.write(t, strings.Replace(policyA, "rules:", "sets:\n  blocklist: {file: blocklist.txt}\nrules:", 1))
	d := h.daemon(t)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(setFile, []byte("192.0.2.0/24\n203.0.113.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	got := d.cur.source
	if len(got.Files) != 2 || got.Hash != filesFingerprint(h.policy) {
		t.Errorf("source %+v, want the hashes of the policy and its set file, %s", got, filesFingerprint(h.policy))
	}
}

// TestPolicyLoaderHashesAsRead: the loader's hashes, reused for files
// whose bytes did not change, are those of the files as read now.
func TestPolicyLoaderHashesAsRead(t *testing.T) {
	h := newHarness(t)
	setFile := filepath.Join(h.dir, "block.txt")
	h.write(t, policyA+"sets:\n  block: {file: block.txt}\n")
	var pl policyLoader
	for i, set := range []string{"192.0.2.0/24\n", "192.0.2.0/24\n", "192.0.2.0/24\n198.51.100.7\n", "198.51.100.7\n"} {
		if err := os.WriteFile(setFile, []byte(set), 0o644); err != nil {
			t.Fatal(err)
		}
		pol, src, err := pl.load(h.policy)
		if err != nil {
			t.Fatal(err)
		}
		if want := sourceOf(h.policy, pol, false); !reflect.DeepEqual(src, want) {
			t.Errorf("load %d: source %+v, want %+v", i, src, want)
		}
	}
}
