package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// dropInMetrics is a drop-in adding one rule.
const dropInMetrics = `version: 1
rules:
  - name: dropin-metrics
    direction: input
    ports: [{protocol: tcp, port: 9100}]
    action: accept
`

// TestPolicyWatchSeesChangesBeforeRun: once OpenPolicyWatch returns, a
// drop-in directory and file created before the watch's loop runs (as
// right after READY, while the loop's goroutine is not scheduled yet) are
// still seen and applied.
func TestPolicyWatchSeesChangesBeforeRun(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	pw, err := d.OpenPolicyWatch()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(filepath.Dir(h.policy), "policy.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "50-metrics.yaml"), []byte(dropInMetrics), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pw.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the drop-in's rule", func() bool {
		for _, r := range d.Rules() {
			if r.Name == "dropin-metrics" {
				return true
			}
		}
		return false
	})
}

// TestWatchSkipsUnchangedFiles: the policy watch's reload of files that
// hash the same as the running policy's applies nothing (an edit followed
// by `edgefwctl reload` is seen by both), but any real change, a set
// file's included, is applied; other triggers always apply, and so does
// the watch after a failed apply, even of the same files.
func TestWatchSkipsUnchangedFiles(t *testing.T) {
	h := newHarness(t)
	setFile := filepath.Join(h.dir, "block.txt")
	writeSet := func(content string) {
		t.Helper()
		if err := os.WriteFile(setFile, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeSet("192.0.2.0/24\n198.51.100.7\n")
	withSet := policyA + "sets:\n  block: {file: block.txt}\n"
	h.write(t, withSet)
	d := h.run(t)
	last := func() *ApplyInfo {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.lastApply
	}
	applied := func(trigger string) bool {
		t.Helper()
		before := last()
		d.Reload(context.Background(), trigger)
		return last() != before
	}
	if applied(triggerFileChange) {
		t.Error("the watch applied unchanged files")
	}
	h.write(t, withSet) // written again, the same bytes
	if applied(triggerFileChange) {
		t.Error("the watch applied files rewritten unchanged")
	}
	if !applied("reload") {
		t.Error("edgefwctl reload of unchanged files applied nothing")
	}
	writeSet("192.0.2.0/24\n198.51.100.8\n")
	if !applied(triggerFileChange) || !last().OK {
		t.Fatalf("the watch did not apply a changed set file: %+v", last())
	}
	if got := d.cur.pol.Sets[0].Prefixes; len(got) != 2 || got[1].String() != "198.51.100.8/32" {
		t.Errorf("running set %v, want the changed line", got)
	}
	h.write(t, "version: 2\n")
	if !applied(triggerFileChange) || last().OK {
		t.Fatalf("a broken edit was not tried: %+v", last())
	}
	h.write(t, withSet) // back to the running files
	if !applied(triggerFileChange) || !last().OK {
		t.Errorf("after a failed apply, the watch did not apply the files: %+v", last())
	}
	if applied(triggerFileChange) {
		t.Error("the watch applied unchanged files after the fix")
	}
}
