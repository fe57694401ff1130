package daemon

import (
	"time"

	"github.com/edgefw/edgefw/nft"
)

// Log messages of a drift burst: a run of changes to the table by others,
// logged when it starts and summarised when it ends, rather than once per
// change.
const (
	burstStartLog   = "table inet edgefw was changed outside edgefw: restored"
	burstFailingLog = "drift repair failed; retrying"
	burstGoesOnLog  = "table inet edgefw keeps being changed outside edgefw, or cannot be restored"
	burstEndLog     = "table inet edgefw is no longer being changed outside edgefw"
)

// driftCheck is what one drift check found and did.
type driftCheck struct {
	// drifted: the table differed from the running ruleset, and a
	// repair was attempted.
	drifted bool
	// err is why reading or restoring the table failed.
	err error
	// changedBy names the process that last committed, as nftables said.
	changedBy string
	// messages and took describe the repair, result what it wrote.
	messages int
	took     time.Duration
	result   nft.Result
}

// generationMoved reads the ruleset generation and reports whether anyone
// committed since the daemon last noted it. A generation that cannot be
// read counts as moved (known is then false): the table must be compared.
func (d *Daemon) generationMoved() (gen uint32, known, moved bool) {
	g, err := d.cfg.Firewall.Generation()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		return 0, false, true
	}
	return g, true, !d.genKnown || g != d.ourGen
}

// driftRepairer runs the loop's drift checks when its repairLimiter allows,
// logs bursts of drift, and owns the timer that brings the loop back for
// a deferred check or a burst's summary. Only the loop uses it.
type driftRepairer struct {
	d     *Daemon
	limit *repairLimiter
	timer *time.Timer
	// tally is what the journal was told of the current burst.
	tally driftTally
}

func (d *Daemon) newDriftRepairer() *driftRepairer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &driftRepairer{d: d, limit: newRepairLimiter(defaultRepairLimits), timer: t}
}

// C delivers when the loop must call wake.
func (r *driftRepairer) C() <-chan time.Time { return r.timer.C }

// stop stops the timer when the loop ends.
func (r *driftRepairer) stop() { r.timer.Stop() }

// request asks for a drift check. With full, the table is compared in any
// case (a notification named our table); otherwise only if the ruleset
// generation moved. A check the limiter defers runs from wake.
func (r *driftRepairer) request(full bool) {
	if !full && !r.limit.pending {
		if _, _, moved := r.d.generationMoved(); !moved {
			return
		}
	}
	if r.limit.request(r.d.now()) {
		r.run()
	}
	r.rearm()
}

// wake runs a deferred check that is due and logs a burst's summary.
func (r *driftRepairer) wake() {
	if r.limit.due(r.d.now()) {
		r.run()
	}
	if s, ok := r.limit.summary(r.d.now()); ok {
		r.report(s)
	}
	r.rearm()
}

// rearm sets the timer for the limiter's next call back.
func (r *driftRepairer) rearm() {
	at, ok := r.limit.next()
	if !ok {
		r.timer.Stop()
		return
	}
	r.timer.Reset(max(0, at.Sub(r.d.now())))
}

// run checks the table now and logs what the check means for its burst:
// the start of a burst and its first failure above debug, the rest at
// debug, for the summary to count.
func (r *driftRepairer) run() {
	start := r.d.now()
	c := r.d.checkDrift(true)
	end := r.d.now()
	ev := r.limit.checked(checkResult{start: start, end: end, drifted: c.drifted, failed: c.err != nil,
		changes: r.d.committers.takeTouches(), changedBy: c.changedBy})
	log := r.d.log
	switch {
	case ev == burstFailing:
		log.Error(burstFailingLog, "error", c.err, "changed_by", c.changedBy, "retry_in", r.limit.backoff())
	case ev == burstStarted:
		log.Warn(burstStartLog, "changed_by", c.changedBy, "messages", c.messages, "repair_ms", c.took.Milliseconds())
	case c.err != nil:
		log.Debug("drift repair failed again", "error", c.err, "changed_by", c.changedBy, "retry_in", r.limit.backoff())
	case c.drifted:
		log.Debug("drift repaired again", "changed_by", c.changedBy, "messages", c.messages, "repair_ms", c.took.Milliseconds())
	}
	if ev == burstStarted || ev == burstFailing {
		r.journalBurst(r.limit.openBurst(), &c)
	}
}

// report logs a burst's summary.
func (r *driftRepairer) report(s burstSummary) {
	msg := burstGoesOnLog
	if s.ended {
		msg = burstEndLog
	}
	r.d.log.Warn(msg, "changed_by", s.changedBy, "changes", s.changes, "repairs", s.repairs, "failures", s.failures,
		"over", s.last.Sub(s.start).Round(time.Millisecond).String(), "since", s.start)
	r.journalBurst(s, nil)
}

// countDriftFailure counts a drift check that could not read or restore
// the table.
func (d *Daemon) countDriftFailure() {
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.DriftRepairFailed()
	}
}
