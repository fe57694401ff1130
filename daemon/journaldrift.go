package daemon

import (
	"time"

	"github.com/edgefw/edgefw/journal"
)

// Drift repairs are journaled per burst, as they are logged: an entry
// when a burst begins (or first fails), and one with its summary while it
// goes on and when it ends, each counting the repairs since the burst's
// previous entry. An entry per repair would let a process that changes
// the table in a loop (one repair per MinRepairInterval) fill the journal
// within a day and rotate the older evidence away; per burst, such a loop
// costs an entry a minute (ReportEvery).

// driftTally is what the journal has been told of the current burst.
type driftTally struct {
	since             time.Time
	repairs, failures int
	commits           uint64
}

// openBurst sums up the burst in progress, as summary would.
func (l *repairLimiter) openBurst() burstSummary {
	b := &l.burst
	return burstSummary{start: b.start, last: b.last, changes: b.changes,
		repairs: b.repairs, failures: b.failures, changedBy: b.changedBy}
}

// journalBurst journals what the burst s did since its previous entry.
// With c, the entry is the one of a check that began the burst or first
// failed in it, and carries what the repair wrote or why it failed.
func (r *driftRepairer) journalBurst(s burstSummary, c *driftCheck) {
	t := &r.tally
	if !t.since.Equal(s.start) {
		*t = driftTally{since: s.start}
	}
	drift := &journal.Drift{Repairs: s.repairs - t.repairs, Failures: s.failures - t.failures,
		Commits: s.changes - t.commits, Since: s.start, Ended: s.ended}
	if drift.Repairs+drift.Failures == 0 {
		return
	}
	t.repairs, t.failures, t.commits = s.repairs, s.failures, s.changes
	r.d.mu.Lock()
	cur := r.d.cur
	r.d.mu.Unlock()
	ev := journal.Event{Kind: journal.KindDriftRepair, Trigger: "drift", ChangedBy: s.changedBy,
		PolicyBefore: hashOf(cur), PolicyAfter: hashOf(cur), Drift: drift}
	if cur != nil {
		ev.Source = cur.source.Path
	}
	switch {
	case c != nil && c.err != nil:
		ev.Error, ev.Detail = c.err.Error(), burstFailingLog
	case c != nil:
		ev.Changes, ev.Detail = summaryOf(c.result), burstStartLog
	case s.ended:
		ev.Detail = burstEndLog
	default:
		ev.Detail = burstGoesOnLog
	}
	r.d.record(ev)
}
