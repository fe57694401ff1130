package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/edgefw/edgefw/nft"
)

// attr returns the value of key in the last record that carries msg.
func (r *logRecorder) attr(msg, key string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	value, found := "", false
	for _, rec := range r.records {
		if rec.Message != msg {
			continue
		}
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				value, found = a.Value.String(), true
				return false
			}
			return true
		})
	}
	return value, found
}

func TestNoteChange(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  nft.TableChange
		checked bool
		touches uint64
		named   string
	}{
		{"another process", nft.TableChange{Generation: 7, PID: 4242, By: "nft[4242]"}, true, 1, "nft[4242]"},
		{"this process, from any thread", nft.TableChange{Generation: 7, PID: os.Getpid(), By: "edgefwd[1]"}, false, 0, "unknown"},
		{"notifications lost", nft.TableChange{Generation: 7, Lost: true}, true, 0, "unknown"},
		{"a process the kernel did not name", nft.TableChange{Generation: 7}, true, 1, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newHarness(t).daemon(t)
			d.noteChange(tc.change)
			if checked := len(d.foreignCommit) == 1; checked != tc.checked {
				t.Errorf("a drift check asked: %v, want %v", checked, tc.checked)
			}
			if n := d.committers.takeTouches(); n != tc.touches {
				t.Errorf("%d changes counted, want %d", n, tc.touches)
			}
			if who := d.committers.describe(7); who != tc.named {
				t.Errorf("commit 7 described as %q, want %q", who, tc.named)
			}
		})
	}
}

// TestChangesAreRepaired has another process change the table in the fake
// kernel, which notifies it as nftables does (set elements included): the
// loop repairs it at once, without any generation poll, and logs who made
// it; its own commits are not taken for changes.
func TestChangesAreRepaired(t *testing.T) {
	h, fw, logs, d := runCountedLoop(t)
	// The loop takes events only once it has subscribed and checked for
	// commits made before: a change before that would be repaired unnamed.
	d.send(context.Background(), event{kind: "barrier"})
	_, writes0 := fw.counts()
	if err := h.kernel.FlushChain("input"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the table to be restored", func() bool { return h.holds(t, policyA) })
	waitFor(t, "the repair to be logged", func() bool { return logs.count(slog.LevelWarn, burstStartLog) == 1 })
	if who, _ := logs.attr(burstStartLog, "changed_by"); who != "nft[4242]" {
		t.Errorf("the repair names %q as the changer, want nft[4242]", who)
	}
	if _, writes := fw.counts(); writes-writes0 != 1 || d.Status(context.Background()).DriftRepairs != 1 {
		t.Errorf("%d writes, %d repairs; want 1, 1", writes-writes0, d.Status(context.Background()).DriftRepairs)
	}
}

// TestPollsWithoutNotifications checks the fallback: when notifications
// cannot be followed, the loop polls the ruleset generation and repairs
// what moved it.
func TestPollsWithoutNotifications(t *testing.T) {
	h := newHarness(t)
	h.kernel.FailChanges(errors.New("no notifications"))
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, DriftInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.loop(ctx) }()
	defer func() { cancel(); <-done }()
	h.flush(t)
	waitFor(t, "the table to be restored by the generation poll", func() bool { return h.holds(t, policyA) })
}
