package daemon

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/nft"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// drift flushes the table as process nft[4242] and tells the daemon, as
// nftables notifies it.
func (h *harness) drift(t *testing.T, d *Daemon) {
	t.Helper()
	h.flush(t)
	d.noteChange(nft.TableChange{Generation: h.generation(t), PID: 4242, By: "nft[4242]"})
}

// TestJournalDriftBursts drives the drift repairer by hand on a fake
// clock: a burst's first repair gets an entry naming the changer, the
// later ones are summed up when the burst ends, and the entries' repairs
// add up to every repair.
func TestJournalDriftBursts(t *testing.T) {
	h := newHarness(t)
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d := h.startWith(t, func(c *Config) { c.Now = clock.now })
	running, n := runningHash(d), len(h.entries(t))
	r := d.newDriftRepairer()
	defer r.stop()

	h.drift(t, d)
	r.request(true)
	first := only(t, h.since(t, n), journal.KindDriftRepair)
	wantBy(t, first, nil)
	if first.ChangedBy != "nft[4242]" || first.Trigger != "drift" || first.PolicyBefore != running || first.PolicyAfter != running {
		t.Errorf("first repair %s: want changed_by nft[4242], policy %.12s", first, running)
	}
	if dr := first.Drift; dr == nil || dr.Repairs != 1 || dr.Failures != 0 || dr.Ended || !dr.Since.Equal(clock.now()) {
		t.Errorf("first repair counts %+v, want 1 repair, burst since now", first.Drift)
	}
	if c := first.Changes; c == nil || c.RulesAdded == 0 || first.Detail != burstStartLog {
		t.Errorf("first repair %s: want the rules it added again", first)
	}

	// Two more repairs in the burst: no entry each.
	for range 2 {
		clock.add(time.Second)
		h.drift(t, d)
		r.request(true)
	}
	if es := h.since(t, n+1); len(es) != 0 {
		t.Fatalf("repairs inside a burst were journaled one by one: %s", entryLines(es))
	}
	// A failure is journaled at once.
	clock.add(time.Second)
	h.kernel.FailCommits(errors.New("kernel says no"))
	h.drift(t, d)
	r.request(true)
	failed := only(t, h.since(t, n+1), journal.KindDriftRepair)
	if dr := failed.Drift; dr == nil || dr.Repairs != 2 || dr.Failures != 1 || failed.Error == "" {
		t.Errorf("failed repair %s (%+v): want the 2 repairs since the first entry and 1 failure", failed, failed.Drift)
	}
	h.kernel.FailCommits(nil)
	clock.add(2 * time.Second)
	r.wake() // the retry after the backoff
	clock.add(6 * time.Second)
	r.wake() // quiet for longer than Quiet: the burst ends
	end := only(t, h.since(t, n+2), journal.KindDriftRepair)
	if dr := end.Drift; dr == nil || dr.Repairs != 1 || dr.Failures != 0 || !dr.Ended || !dr.Since.Equal(first.Drift.Since) || end.Detail != burstEndLog {
		t.Errorf("burst end %s (%+v): want the retry's repair, ended", end, end.Drift)
	}
	total := 0
	for _, e := range h.since(t, n) {
		total += e.Drift.Repairs
	}
	if repairs := d.Status(context.Background()).DriftRepairs; uint64(total) != repairs || repairs != 4 {
		t.Errorf("the entries count %d repairs, the daemon %d; want 4", total, repairs)
	}
}

// TestJournalDriftThroughTheLoop: a table flushed by another process is
// restored by the loop and journaled with the process, as nftables
// notifies it.
func TestJournalDriftThroughTheLoop(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	// Once the loop takes events, it has subscribed to the changes.
	d.send(context.Background(), event{kind: "barrier"})
	n := len(h.entries(t))
	h.kernel.SetDrifter(4343, "iptables-nft")
	h.flush(t)
	waitFor(t, "the drift repair's entry", func() bool { return len(h.since(t, n)) > 0 })
	e := only(t, h.since(t, n), journal.KindDriftRepair)
	if e.ChangedBy != "iptables-nft[4343]" || e.Drift == nil || e.Drift.Repairs != 1 {
		t.Errorf("drift repair %s: want changed_by iptables-nft[4343] and one repair", e)
	}
	if !h.holds(t, policyA) {
		t.Error("the table was not restored")
	}
}
