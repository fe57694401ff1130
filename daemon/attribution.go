package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/nft"
)

// attributionFile is the attribution's snapshot in the state directory.
const attributionFile = "attribution.bin"

// attributionSnapshotInterval is how often the attribution is written to
// the state directory (and once more when the daemon stops). Not every
// minute, when the counters are read: a snapshot is rewritten whole, up
// to about 200 KB per rule whose rings are full (2 MB for ten such rules,
// 4 MB with IPv6 sources, as audit measures them), which every minute
// would be about 2.9 GB a day on the flash of an edge host, five times
// what this costs. A crash loses at most these 5 minutes of the sample,
// not of the counts: the kernel's counters outlive the daemon, and the
// first reading after a restart counts what they counted meanwhile.
const attributionSnapshotInterval = 5 * time.Minute

// attribution is the daemon's side of denied-traffic attribution: it
// feeds the logged sample (nflog) to an audit.Attributor, for the drops
// views, and to an audit.MinuteSummariser, for the log; reads the kernel's
// counters into the Attributor every minute, before and after every
// apply and before every view; and keeps it in the state directory.
type attribution struct {
	log *slog.Logger
	now func() time.Time
	dir string
	// fw is the kernel's firewall, read directly.
	fw      Firewall
	attr    *audit.Attributor
	minutes *audit.MinuteSummariser

	// mu serialises the counter readings with the applies that recreate
	// counters: a reading must carry the epoch of the counter it read,
	// and readings reach the Attributor in the order of their times.
	mu     sync.Mutex
	epochs *counterEpochs
	// lastSnapshot is when the last snapshot was written; only the
	// attribution's goroutine (runAttribution) uses it.
	lastSnapshot time.Time
}

// newAttribution restores the attribution the daemon kept in its state
// directory: an unreadable or corrupt snapshot is logged and the history
// starts empty, which is better than no daemon.
func newAttribution(cfg Config) *attribution {
	a := &attribution{log: cfg.Logger, now: cfg.Now, dir: cfg.StateDir, fw: cfg.Firewall,
		attr: audit.New(cfg.Now), minutes: audit.NewMinuteSummariser(cfg.Now), lastSnapshot: cfg.Now()}
	boot := cfg.BootID
	if boot == "" {
		boot = readBootID()
	}
	epochs, err := loadCounterEpochs(cfg.StateDir, boot)
	if err != nil {
		a.log.Warn("ignoring unreadable counter epochs: counters recreated while edgefwd was stopped may be counted short once", "error", err)
	}
	a.epochs = epochs
	a.restore()
	return a
}

func (a *attribution) restore() {
	path := filepath.Join(a.dir, attributionFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err == nil {
		err = a.attr.UnmarshalBinary(data)
	}
	if err != nil {
		a.log.Warn("denied-traffic history not restored: it starts empty", "path", path, "error", err)
		return
	}
	a.log.Info("denied-traffic history restored", "path", path, "rules", len(a.attr.Rules()), "bytes", len(data))
}

// record takes one logged packet of a rule that denies.
func (a *attribution) record(s audit.Sample) {
	a.attr.Record(s)
	a.minutes.Record(s)
}

// observe reads the counters into the Attributor.
func (a *attribution) observe() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.observeLocked()
}

// observeLocked reads the counters into the Attributor and returns them.
// A read that fails (no table: someone deleted it, and the drift repair
// restores it) is skipped, and the counters' last readings stay.
func (a *attribution) observeLocked() (map[string]nft.Counter, bool) {
	t := a.now()
	counters, err := a.fw.Counters()
	if err != nil {
		a.log.Debug("counters not read for attribution", "error", err)
		return nil, false
	}
	readings := make(map[string]audit.Reading, len(counters))
	for name, c := range counters {
		readings[name] = audit.Reading{Packets: c.Packets, Bytes: c.Bytes, Epoch: a.epochs.epoch(name)}
	}
	a.attr.Observe(t, readings)
	return counters, true
}

// apply runs a write to the kernel between two readings of the counters:
// the one before counts what the counters held up to the write, the one
// after is the baseline of the counters the write created or reset, which
// get a new epoch.
func (a *attribution) apply(write func() (nft.Result, error)) (nft.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.observeLocked()
	res, err := write()
	if err != nil || len(res.Zeroed) == 0 {
		return res, err
	}
	a.epochs.zero(res.Zeroed)
	if counters, ok := a.observeLocked(); ok {
		a.epochs.retain(func(name string) bool { _, ok := counters[name]; return ok })
	}
	if err := a.epochs.save(a.dir); err != nil {
		a.log.Warn("could not persist the counter epochs", "error", err)
	}
	return res, nil
}

// snapshotDue reports whether the periodic snapshot is due at now.
func (a *attribution) snapshotDue(now time.Time) bool {
	return !now.Before(a.lastSnapshot.Add(attributionSnapshotInterval))
}

// snapshot writes the attribution to the state directory, atomically.
func (a *attribution) snapshot() {
	start := a.now()
	a.lastSnapshot = start
	data, err := a.attr.MarshalBinary()
	if err == nil {
		err = os.MkdirAll(a.dir, 0o700)
	}
	if err == nil {
		err = writeFileAtomic(filepath.Join(a.dir, attributionFile), data)
	}
	if err != nil {
		a.log.Warn("could not write the denied-traffic history", "error", err)
		return
	}
	a.log.Debug("denied-traffic history written", "bytes", len(data), "duration", a.now().Sub(start))
}

// attributedFirewall is the Firewall the daemon writes through: every
// apply, drift repairs included, goes through attribution.apply.
type attributedFirewall struct {
	Firewall
	a *attribution
}

// Apply applies rs between two readings of the counters.
func (f attributedFirewall) Apply(rs *nft.Ruleset) (nft.Result, error) {
	return f.a.apply(func() (nft.Result, error) { return f.Firewall.Apply(rs) })
}

// runAttribution reads the counters and logs the denied traffic of the
// minute that ended, just after each minute, writes the snapshot when it
// is due, and, when ctx ends, does all three once more.
func (d *Daemon) runAttribution(ctx context.Context) {
	timer := time.NewTimer(untilNextMinute(d.now()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			d.attributionTick(true)
			return
		case <-timer.C:
			d.attributionTick(false)
			timer.Reset(untilNextMinute(d.now()))
		}
	}
}

// untilNextMinute is the wait until just past the next minute, so that a
// minute's lines are logged as soon as it ends.
func untilNextMinute(now time.Time) time.Duration {
	return now.Truncate(time.Minute).Add(time.Minute + time.Second).Sub(now)
}

// attributionTick reads the counters, logs the minutes of denied traffic
// that ended, and writes the snapshot if it is due. final is the daemon
// stopping: the open minute is logged and the snapshot written.
func (d *Daemon) attributionTick(final bool) {
	a := d.attrib
	a.observe()
	if final {
		d.logDenied(a.minutes.FlushAll())
	} else {
		d.logDenied(a.minutes.Flush())
	}
	if final || a.snapshotDue(d.now()) {
		a.snapshot()
	}
}
