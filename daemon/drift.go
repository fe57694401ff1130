package daemon

import (
	"fmt"

	"github.com/edgefw/edgefw/nft"
)

// noteGeneration remembers the ruleset generation our write produced, so
// the drift check can tell our commits from others'.
func (d *Daemon) noteGeneration() {
	g, err := d.cfg.Firewall.Generation()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ourGen, d.genKnown = g, err == nil
	// The table is ours as of this generation: a commit by anyone else
	// after ours moved it further, or, landing before this read, is
	// notified with its process (when notifications are followed), which
	// forces a comparison.
	d.verifiedGen, d.verified = g, err == nil
}

// generationVerified reports whether the ruleset generation is still the
// one at which the table was last written by us or compared equal, so
// that the periodic full comparison can skip reading the table back (with
// a large set, a second of CPU every 30 s for nothing).
func (d *Daemon) generationVerified() bool {
	g, err := d.cfg.Firewall.Generation()
	if err != nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.verified && g == d.verifiedGen
}

// checkDrift restores the table if anyone else changed it. Without full,
// the table is compared only if the ruleset generation moved. It counts
// repairs and failures; the caller, which sees bursts, logs them.
func (d *Daemon) checkDrift(full bool) driftCheck {
	d.mu.Lock()
	cur := d.cur
	d.mu.Unlock()
	if cur == nil {
		return driftCheck{}
	}
	gen, known, moved := d.generationMoved()
	if !moved && !full {
		return driftCheck{}
	}
	c := driftCheck{changedBy: d.committers.describe(gen)}
	// Reading the table back holds every element for a moment.
	defer releaseMemory(cur.rs)
	equal, err := d.cfg.Firewall.Equal(cur.rs)
	if err != nil {
		c.err = fmt.Errorf("compare table inet edgefw: %w", err)
		d.countDriftFailure()
		return c
	}
	if equal {
		d.mu.Lock()
		d.ourGen, d.genKnown = gen, known
		d.verifiedGen, d.verified = gen, known
		d.mu.Unlock()
		return c
	}
	c.drifted = true
	start := d.now()
	res, err := d.cfg.Firewall.Apply(cur.rs)
	c.took = d.now().Sub(start)
	if err != nil {
		c.err = fmt.Errorf("restore table inet edgefw: %w", err)
		d.countDriftFailure()
		return c
	}
	c.messages, c.result = res.Messages, res
	d.noteGeneration()
	d.recordMark(res.Mark)
	d.mu.Lock()
	d.drift++
	d.mu.Unlock()
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.DriftRepaired()
	}
	return c
}

// recordMark keeps the Mark of the daemon's last apply or repair in the
// state directory, which edgefwd --once shares: a --once that finds the
// generation still there skips reading the table back. Without a Mark
// the record goes.
func (d *Daemon) recordMark(m *nft.Mark) {
	if err := SaveMark(d.cfg.StateDir, m); err != nil {
		d.log.Warn("could not record the generation of the commit", "error", err)
	}
}
