package daemon

import (
	"time"
)

// MinRepairInterval is the least time between two drift checks once one
// has found table inet edgefw changed: a neighbour that flushes the table
// in a loop gets one repair per interval, not one per flush. The first
// repair after a quiet interval is immediate.
const MinRepairInterval = 500 * time.Millisecond

// repairLimits bound how often the loop compares table inet edgefw with
// the running ruleset and restores it.
type repairLimits struct {
	// MinInterval is the least time from the end of a check that found
	// the table changed to the start of the next check.
	MinInterval time.Duration
	// CostFactor makes every check wait CostFactor times as long as the
	// previous one took: a check reads the whole table, which takes
	// seconds with large sets, so checks then take at most
	// 1/(1+CostFactor) of the loop's time.
	CostFactor int
	// BackoffMin is the wait after a failed check; it doubles with each
	// failure in a row, up to BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// Quiet ends a burst: no check found the table changed, and none
	// failed, for this long.
	Quiet time.Duration
	// ReportEvery is how often a burst that goes on is summarised.
	ReportEvery time.Duration
}

// defaultRepairLimits are the daemon's limits.
var defaultRepairLimits = repairLimits{
	MinInterval: MinRepairInterval,
	CostFactor:  4,
	BackoffMin:  time.Second,
	BackoffMax:  time.Minute,
	Quiet:       5 * time.Second,
	ReportEvery: time.Minute,
}

// checkResult is what one drift check found, as the limiter needs it.
type checkResult struct {
	start, end time.Time
	// drifted: the table differed from the running ruleset.
	drifted bool
	// failed: reading or restoring the table failed.
	failed bool
	// changes counts the commits to our table by other processes, as
	// nftables notified them, since the previous check.
	changes uint64
	// changedBy names the process that last changed the table.
	changedBy string
}

// burstEvent is what a check means for the log.
type burstEvent int

const (
	// burstNothing: nothing to log above debug.
	burstNothing burstEvent = iota
	// burstStarted: the first change of a burst, restored.
	burstStarted
	// burstFailing: the first failure of a burst.
	burstFailing
)

// burstSummary sums up a burst for its log line.
type burstSummary struct {
	// ended is false for a burst that goes on.
	ended       bool
	start, last time.Time
	changes     uint64
	repairs     int
	failures    int
	changedBy   string
}

// driftBurst is a run of checks that found the table changed or failed,
// none more than Quiet after the one before.
type driftBurst struct {
	open                  bool
	start, last, reported time.Time
	changes               uint64
	repairs, failures     int
	changedBy             string
	failureLogged         bool
}

// repairLimiter decides when the loop checks the table for drift: at once
// when asked after a quiet interval, otherwise no sooner than its limits
// allow; a check asked for too early is kept pending until then, never
// dropped. It also tracks bursts of drift, so the loop logs their start
// and their end rather than every repair. It is pure: the caller passes
// the time.
type repairLimiter struct {
	limits repairLimits
	// pending: a check was asked for and has not run yet (or failed).
	pending bool
	// ran: a check has run; lastEnd, lastTook and lastDrifted describe it.
	ran         bool
	lastEnd     time.Time
	lastTook    time.Duration
	lastDrifted bool
	// failures counts the failed checks in a row.
	failures int
	burst    driftBurst
}

func newRepairLimiter(limits repairLimits) *repairLimiter {
	return &repairLimiter{limits: limits}
}

// request asks for a check and reports whether it may run at now; if
// not, it stays pending until next says.
func (l *repairLimiter) request(now time.Time) bool {
	l.pending = true
	return l.due(now)
}

// due reports whether a pending check may run at now.
func (l *repairLimiter) due(now time.Time) bool {
	return l.pending && !now.Before(l.earliest())
}

// earliest is when the next check may start.
func (l *repairLimiter) earliest() time.Time {
	if !l.ran {
		return time.Time{}
	}
	gap := time.Duration(l.limits.CostFactor) * l.lastTook
	if l.lastDrifted {
		gap = max(gap, l.limits.MinInterval)
	}
	if l.failures > 0 {
		gap = max(gap, l.backoff())
	}
	return l.lastEnd.Add(gap)
}

// backoff is the wait after the failures in a row so far.
func (l *repairLimiter) backoff() time.Duration {
	d := l.limits.BackoffMin
	for i := 1; i < l.failures && d < l.limits.BackoffMax; i++ {
		d *= 2
	}
	return min(d, l.limits.BackoffMax)
}

// checked records a check that ran, and says what it means for the log.
// A failed check stays pending: it is retried after the backoff.
func (l *repairLimiter) checked(r checkResult) burstEvent {
	l.ran, l.lastEnd, l.lastTook, l.lastDrifted = true, r.end, r.end.Sub(r.start), r.drifted
	l.pending = r.failed
	if r.failed {
		l.failures++
	} else {
		l.failures = 0
	}
	if !r.drifted && !r.failed {
		if l.burst.open {
			l.burst.changes += r.changes
		}
		return burstNothing
	}
	ev := burstNothing
	if !l.burst.open {
		l.burst = driftBurst{open: true, start: r.start, reported: r.start}
		ev = burstStarted
	}
	b := &l.burst
	b.last = r.end
	b.changes += r.changes
	if r.changedBy != "" {
		b.changedBy = r.changedBy
	}
	if !r.failed {
		b.repairs++
		return ev
	}
	b.failures++
	if !b.failureLogged {
		b.failureLogged = true
		return burstFailing
	}
	return burstNothing
}

// summary returns the burst's summary when one is due at now: when the
// burst has ended (no drift or failure for Quiet, no check pending), and
// every ReportEvery while it goes on. A burst of one change and one repair
// ends without a summary: its first log line said it all.
func (l *repairLimiter) summary(now time.Time) (burstSummary, bool) {
	b := &l.burst
	if !b.open {
		return burstSummary{}, false
	}
	s := burstSummary{start: b.start, last: b.last, changes: b.changes,
		repairs: b.repairs, failures: b.failures, changedBy: b.changedBy}
	switch {
	case !l.pending && !now.Before(b.last.Add(l.limits.Quiet)):
		l.burst = driftBurst{}
		s.ended = true
		return s, s.repairs+s.failures > 1 || s.changes > 1
	case !now.Before(b.reported.Add(l.limits.ReportEvery)):
		b.reported = now
		return s, true
	}
	return burstSummary{}, false
}

// next returns when the caller must come back to run a pending check or
// to summarise a burst; false when nothing is due.
func (l *repairLimiter) next() (time.Time, bool) {
	var at time.Time
	found := false
	consider := func(t time.Time) {
		if !found || t.Before(at) {
			at, found = t, true
		}
	}
	if l.pending {
		consider(l.earliest())
	}
	if l.burst.open {
		if !l.pending {
			consider(l.burst.last.Add(l.limits.Quiet))
		}
		consider(l.burst.reported.Add(l.limits.ReportEvery))
	}
	return at, found
}
