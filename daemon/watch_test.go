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
