package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/edgefw/edgefw/nft"
)

// logRecorder is a slog.Handler that keeps every record's level and
// message, for tests that count what the daemon logged.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

// count returns how many records at level or above carry msg.
func (r *logRecorder) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.records {
		if rec.Level >= level && rec.Message == msg {
			n++
		}
	}
	return n
}

// atLeast returns how many records are at level or above.
func (r *logRecorder) atLeast(level slog.Level) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.records {
		if rec.Level >= level {
			n++
		}
	}
	return n
}

// countingFirewall counts the comparisons and applies the daemon asks of
// its firewall, failed ones included.
type countingFirewall struct {
	Firewall
	mu             sync.Mutex
	equals, writes int
}

func (c *countingFirewall) Equal(rs *nft.Ruleset) (bool, error) {
	c.mu.Lock()
	c.equals++
	c.mu.Unlock()
	return c.Firewall.Equal(rs)
}

func (c *countingFirewall) Apply(rs *nft.Ruleset) (nft.Result, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Firewall.Apply(rs)
}

func (c *countingFirewall) counts() (equals, writes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.equals, c.writes
}

// runCountedLoop starts a daemon and its loop, with the real clock, on a
// fake firewall that counts what it is asked, a drift tick of 5 ms, and a
// log that keeps every record. The loop stops when the test ends.
func runCountedLoop(t *testing.T) (*harness, *countingFirewall, *logRecorder, *Daemon) {
	t.Helper()
	h := newHarness(t)
	fw := &countingFirewall{Firewall: h.fw}
	logs := &logRecorder{}
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: fw, Logger: slog.New(logs),
		DriftInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.loop(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h, fw, logs, d
}

// TestDriftFloodRepairsAreBounded flushes the table a thousand times in
// a second, each time notifying the loop as nftables would: the loop
// repairs at most once per MinRepairInterval, logs the burst's start once,
// and the table is restored when the flood stops.
func TestDriftFloodRepairsAreBounded(t *testing.T) {
	h, fw, logs, d := runCountedLoop(t)
	equals0, writes0 := fw.counts()

	start := time.Now()
	flushes := 0
	for time.Since(start) < time.Second {
		h.flush(t)
		d.askDriftCheck()
		flushes++
		time.Sleep(time.Millisecond)
	}
	flood := time.Since(start)
	waitFor(t, "the table to be restored after the flood", func() bool { return h.holds(t, policyA) })

	equals, writes := fw.counts()
	equals, writes = equals-equals0, writes-writes0
	repairs := d.Status(context.Background()).DriftRepairs
	// One check right away, one per MinRepairInterval during the flood,
	// one after its last flush.
	bound := int(flood/MinRepairInterval) + 2
	t.Logf("%d flushes in %s: %d comparisons, %d writes, %d repairs (bound %d)", flushes, flood, equals, writes, repairs, bound)
	if writes > bound || int(repairs) > bound {
		t.Errorf("%d writes, %d repairs for %d flushes in %s; want at most %d", writes, repairs, flushes, flood, bound)
	}
	if equals > bound {
		t.Errorf("%d comparisons of the whole table for %d flushes in %s; want at most %d", equals, flushes, flood, bound)
	}
	if n := logs.atLeast(slog.LevelWarn); n > 1 || logs.count(slog.LevelWarn, burstStartLog) != 1 {
		t.Errorf("%d warnings during the flood, want one for the burst's start", n)
	}
}

// TestFailingRepairBacksOff makes every write fail after a flush: the loop
// retries after 1 s, 2 s, … rather than at every drift tick, logs the
// failure once, and repairs as soon as writes work again.
func TestFailingRepairBacksOff(t *testing.T) {
	h, fw, logs, d := runCountedLoop(t)
	_, writes0 := fw.counts()

	h.kernel.FailCommits(errors.New("kernel says no"))
	h.flush(t)
	d.askDriftCheck()
	waitFor(t, "a first repair attempt", func() bool { _, w := fw.counts(); return w > writes0 })
	const watch = 2500 * time.Millisecond
	time.Sleep(watch)
	_, writes := fw.counts()
	attempts := writes - writes0
	// Attempts at 0, 1 s and 3 s: at most three in the time the first
	// took to be seen and 2.5 s more, however slow the machine.
	t.Logf("%d repair attempts in %s while writes fail", attempts, watch)
	if attempts > 3 {
		t.Errorf("%d repair attempts in %s while writes fail, want at most 3 (backoff 1 s, 2 s, …)", attempts, watch)
	}
	if n := logs.atLeast(slog.LevelWarn); n != 1 || logs.count(slog.LevelError, burstFailingLog) != 1 {
		t.Errorf("%d warnings and errors for one failing repair, want 1: %q", n, burstFailingLog)
	}

	h.kernel.FailCommits(nil)
	waitFor(t, "the table to be restored once writes work", func() bool { return h.holds(t, policyA) })
	// The kernel holds the table as soon as the repair commits; the
	// daemon counts the repair once its write returns.
	waitFor(t, "the repair to be counted", func() bool { return d.Status(context.Background()).DriftRepairs > 0 })
	if d.Status(context.Background()).DriftRepairs != 1 {
		t.Errorf("driftRepairs = %d, want 1", d.Status(context.Background()).DriftRepairs)
	}
}
