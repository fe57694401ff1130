package daemon

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// simBase is the fake clock's origin in the limiter tests.
var simBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// limiterSim drives a repairLimiter as the loop does, on a fake clock,
// against a model of the kernel: a change makes the table dirty, a check
// finds it dirty and restores it unless the check fails.
type limiterSim struct {
	limits repairLimits
	// changes are the times others change the table, in order.
	changes []time.Duration
	// asks are the times a check is asked for with no change, in order
	// (the periodic full comparison).
	asks []time.Duration
	// took is how long each check takes.
	took time.Duration
	// fails says whether the check starting at a time fails.
	fails func(at time.Duration) bool
	// until ends the simulation.
	until time.Duration
}

// simTrace is what a simulation saw: when checks started, and what was
// logged above debug, as "at event".
type simTrace struct {
	checks []time.Duration
	// failed and drifted say what each check found.
	failed, drifted []bool
	log             []string
	// dirty says whether the table was left changed at the end.
	dirty bool
	// lastChange, lastCleanCheck: the last change, and the start of the
	// last check that restored (or found clean) the table after it.
	lastChange, lastCleanCheck time.Duration
}

func (s limiterSim) run(t *testing.T) simTrace {
	t.Helper()
	l := newRepairLimiter(s.limits)
	var tr simTrace
	now := time.Duration(0)
	next, nextAsk := 0, 0 // indexes of the next change and ask
	var unseen uint64
	fails := s.fails
	if fails == nil {
		fails = func(time.Duration) bool { return false }
	}
	check := func() {
		start := now
		failed := fails(start)
		drifted := tr.dirty
		now += s.took
		if !failed {
			tr.dirty = false
			tr.lastCleanCheck = start
		}
		tr.checks = append(tr.checks, start)
		tr.failed, tr.drifted = append(tr.failed, failed), append(tr.drifted, drifted)
		switch l.checked(checkResult{start: simBase.Add(start), end: simBase.Add(now), drifted: drifted, failed: failed,
			changes: unseen, changedBy: "flooder[7]"}) {
		case burstStarted:
			tr.log = append(tr.log, fmt.Sprint(start, " started"))
		case burstFailing:
			tr.log = append(tr.log, fmt.Sprint(start, " failing, retry in ", l.backoff()))
		}
		unseen = 0
	}
	for range 100_000 {
		wake, hasWake := l.next()
		wakeAt := wake.Sub(simBase)
		hasWake = hasWake && wakeAt <= s.until
		hasChange := next < len(s.changes) && s.changes[next] <= s.until
		hasAsk := nextAsk < len(s.asks) && s.asks[nextAsk] <= s.until
		switch {
		case hasAsk && (!hasWake || s.asks[nextAsk] <= wakeAt) && (!hasChange || s.asks[nextAsk] <= s.changes[next]):
			now = max(now, s.asks[nextAsk])
			nextAsk++
			if l.request(simBase.Add(now)) {
				check()
			}
		case hasChange && (!hasWake || s.changes[next] <= wakeAt):
			// A change; one that came while a check ran is seen after it.
			now = max(now, s.changes[next])
			tr.dirty, tr.lastChange = true, s.changes[next]
			unseen++
			next++
			if l.request(simBase.Add(now)) {
				check()
			}
		case hasWake:
			now = max(now, wakeAt)
			if l.due(simBase.Add(now)) {
				check()
			}
			if sum, ok := l.summary(simBase.Add(now)); ok {
				what := "goes on"
				if sum.ended {
					what = "ended"
				}
				tr.log = append(tr.log, fmt.Sprintf("%s %s: %d changes, %d repairs, %d failures over %s by %s",
					now, what, sum.changes, sum.repairs, sum.failures, sum.last.Sub(sum.start), sum.changedBy))
			}
		default:
			return tr
		}
	}
	t.Fatal("the simulation does not end: the limiter keeps asking to be called back")
	return tr
}

// every returns the times from start (included) to end (excluded), step apart.
func every(step, start, end time.Duration) []time.Duration {
	var out []time.Duration
	for at := start; at < end; at += step {
		out = append(out, at)
	}
	return out
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestRepairLimiter(t *testing.T) {
	limits := defaultRepairLimits
	for _, tc := range []struct {
		name      string
		sim       limiterSim
		maxChecks int
		checks    []time.Duration // if set, exactly these
		log       []string
		// leftChanged: the table is still changed when the simulation ends.
		leftChanged bool
	}{{
		name:   "one change after a quiet time is repaired at once, and ends without a summary",
		sim:    limiterSim{changes: []time.Duration{10 * time.Second}, took: ms(1), until: time.Minute},
		checks: []time.Duration{10 * time.Second},
		log:    []string{"10s started"},
	}, {
		name: "100 changes in 1 s: a check at once, then one per MinRepairInterval, the last after the last change",
		sim:  limiterSim{changes: every(ms(10), 0, time.Second), took: ms(1), until: time.Minute},
		// MinRepairInterval from the end of each check.
		checks: []time.Duration{0, ms(501), ms(1002)},
		log:    []string{"0s started", "6.003s ended: 100 changes, 3 repairs, 0 failures over 1.003s by flooder[7]"},
	}, {
		name:      "a 10 s flood: at most one check per MinRepairInterval",
		sim:       limiterSim{changes: every(ms(10), 0, 10*time.Second), took: ms(3), until: time.Minute},
		maxChecks: int(10*time.Second/MinRepairInterval) + 1,
		// Checks 503 ms apart: 20 during the flood, one after it.
		log: []string{"0s started", "15.063s ended: 1000 changes, 21 repairs, 0 failures over 10.063s by flooder[7]"},
	}, {
		name:   "a change during the minimum interval is checked when it ends",
		sim:    limiterSim{changes: []time.Duration{0, ms(100)}, took: ms(2), until: time.Minute},
		checks: []time.Duration{0, ms(502)},
		log:    []string{"0s started", "5.504s ended: 2 changes, 2 repairs, 0 failures over 504ms by flooder[7]"},
	}, {
		name: "after a flood, the first change after a quiet time is repaired at once",
		sim: limiterSim{changes: append(every(ms(10), 0, time.Second), 3*time.Second, 20*time.Second),
			took: ms(1), until: time.Minute},
		checks: []time.Duration{0, ms(501), ms(1002), 3 * time.Second, 20 * time.Second},
		log: []string{"0s started", "8.001s ended: 101 changes, 4 repairs, 0 failures over 3.001s by flooder[7]",
			"20s started"},
	}, {
		name: "failures back off 1 s, 2 s, 4 s … up to a minute, logged once",
		sim: limiterSim{changes: []time.Duration{0}, took: 0, until: 4 * time.Minute,
			fails: func(time.Duration) bool { return true }},
		checks: []time.Duration{0, 1 * time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second,
			31 * time.Second, 63 * time.Second, 123 * time.Second, 183 * time.Second},
		log: []string{"0s failing, retry in 1s",
			"1m0s goes on: 1 changes, 0 repairs, 6 failures over 31s by flooder[7]",
			"2m0s goes on: 1 changes, 0 repairs, 7 failures over 1m3s by flooder[7]",
			"3m0s goes on: 1 changes, 0 repairs, 8 failures over 2m3s by flooder[7]",
			"4m0s goes on: 1 changes, 0 repairs, 9 failures over 3m3s by flooder[7]"},
		leftChanged: true,
	}, {
		name: "a success resets the backoff",
		sim: limiterSim{changes: []time.Duration{0, 10 * time.Second}, took: 0, until: time.Minute,
			// Fails at 0 and 1 s; at 3 s repairs; the change at 10 s
			// fails once more: 1 s again, not 4 s.
			fails: func(at time.Duration) bool { return at < 2*time.Second || at == 10*time.Second }},
		checks: []time.Duration{0, time.Second, 3 * time.Second, 10 * time.Second, 11 * time.Second},
		// Two bursts: the first ends 5 s after its repair.
		log: []string{"0s failing, retry in 1s", "8s ended: 1 changes, 1 repairs, 2 failures over 3s by flooder[7]",
			"10s failing, retry in 1s", "16s ended: 1 changes, 1 repairs, 1 failures over 1s by flooder[7]"},
	}, {
		name:   "a check that found the table unchanged does not hold back the next change",
		sim:    limiterSim{asks: []time.Duration{0}, changes: []time.Duration{ms(10)}, took: ms(1), until: time.Minute},
		checks: []time.Duration{0, ms(10)},
		log:    []string{"10ms started"},
	}, {
		name: "a check that takes long holds the next back by CostFactor times its duration",
		sim:  limiterSim{changes: []time.Duration{0, ms(100)}, took: 2 * time.Second, until: time.Minute},
		// Ends at 2 s; waits 4 × 2 s.
		checks: []time.Duration{0, 10 * time.Second},
		log:    []string{"0s started", "17s ended: 2 changes, 2 repairs, 0 failures over 12s by flooder[7]"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.sim.limits = limits
			tr := tc.sim.run(t)
			if tc.checks != nil && !slices.Equal(tr.checks, tc.checks) {
				t.Errorf("checks at %v, want %v", tr.checks, tc.checks)
			}
			if tc.maxChecks > 0 && len(tr.checks) > tc.maxChecks {
				t.Errorf("%d checks, want at most %d: %v", len(tr.checks), tc.maxChecks, tr.checks)
			}
			if !slices.Equal(tr.log, tc.log) {
				t.Errorf("log:\n%s\nwant:\n%s", strings.Join(tr.log, "\n"), strings.Join(tc.log, "\n"))
			}
			if tr.dirty != tc.leftChanged {
				t.Errorf("table left changed %v, want %v: last change at %s, last clean check at %s", tr.dirty, tc.leftChanged, tr.lastChange, tr.lastCleanCheck)
			}
		})
	}
}

// TestRepairLimiterNeverDropsAChange throws random changes and failures
// at the limiter: whatever comes, a check that succeeds starts after the
// last change, and checks keep their distance.
func TestRepairLimiterNeverDropsAChange(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var changes []time.Duration
		at := time.Duration(0)
		for range 1 + rng.IntN(200) {
			at += time.Duration(rng.Int64N(int64(2 * time.Second)))
			changes = append(changes, at)
		}
		failAt := map[time.Duration]bool{}
		sim := limiterSim{limits: defaultRepairLimits, changes: changes, took: time.Duration(rng.Int64N(int64(50 * time.Millisecond))),
			until: at + 10*time.Minute,
			fails: func(at time.Duration) bool {
				if _, seen := failAt[at]; !seen {
					failAt[at] = rng.IntN(4) == 0
				}
				return failAt[at]
			}}
		tr := sim.run(t)
		if tr.dirty || tr.lastCleanCheck < tr.lastChange {
			t.Errorf("seed %d: last change at %s, last successful check at %s (dirty %v)", seed, tr.lastChange, tr.lastCleanCheck, tr.dirty)
		}
		for i := 1; i < len(tr.checks); i++ {
			gap := tr.checks[i] - tr.checks[i-1] - sim.took
			switch {
			case tr.failed[i-1] && gap < defaultRepairLimits.BackoffMin:
				t.Errorf("seed %d: a check failed at %s and was retried %s after it ended", seed, tr.checks[i-1], gap)
			case tr.drifted[i-1] && gap < MinRepairInterval:
				t.Errorf("seed %d: a check repaired at %s and the next started %s after it ended", seed, tr.checks[i-1], gap)
			case gap < 0:
				t.Errorf("seed %d: checks at %s and %s overlap", seed, tr.checks[i-1], tr.checks[i])
			}
		}
	}
}

func TestRepairBackoff(t *testing.T) {
	l := newRepairLimiter(defaultRepairLimits)
	var got []time.Duration
	for l.failures = 1; l.failures <= 10; l.failures++ {
		got = append(got, l.backoff())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, time.Minute, time.Minute, time.Minute, time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("backoff after 1…10 failures = %v, want %v", got, want)
	}
}
