package daemon

import (
	"context"
	"os"
	"sync"

	"github.com/edgefw/edgefw/nft"
)

// committerLog remembers which processes made the recent commits to our
// table, as nftables notified them, so a drift repair can say who changed
// the table, and counts those commits, so a burst of drift can say how
// many there were.
type committerLog struct {
	mu      sync.Mutex
	byID    map[uint32]string
	last    string
	touches uint64
}

func newCommitterLog() *committerLog { return &committerLog{byID: map[uint32]string{}} }

func (l *committerLog) record(id uint32, who string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.byID) > 256 {
		l.byID = map[uint32]string{}
	}
	l.byID[id] = who
	l.last = who
}

// touched counts a commit by another process to our table.
func (l *committerLog) touched() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.touches++
}

// takeTouches returns the commits to our table counted since it was last
// called.
func (l *committerLog) takeTouches() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.touches
	l.touches = 0
	return n
}

// describe names the process that made commit gen or, if it is not
// known, the last process known to have changed the table.
func (l *committerLog) describe(gen uint32) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if who, ok := l.byID[gen]; ok {
		return who
	}
	if l.last != "" {
		return l.last + " (most recent committer)"
	}
	return "unknown"
}

// followChanges has the table checked at once whenever another process
// commits to it, as nftables notifies (set elements included), until ctx
// ends. It reports false if notifications cannot be followed: the loop
// then polls the ruleset generation instead.
func (d *Daemon) followChanges(ctx context.Context) bool {
	changes, err := d.cfg.Firewall.Changes(ctx)
	if err != nil {
		d.log.Warn("nftables notifications unavailable: checking the ruleset generation periodically instead, and drift repairs will not name the changer",
			"interval", d.cfg.DriftInterval.String(), "error", err)
		return false
	}
	go func() {
		for c := range changes {
			d.noteChange(c)
		}
	}()
	return true
}

// noteChange records a commit to our table and has the table checked,
// unless the commit was the daemon's own (from any of its threads).
func (d *Daemon) noteChange(c nft.TableChange) {
	if c.Lost {
		d.log.Debug("nftables notifications lost; checking the table", "generation", c.Generation)
		d.askDriftCheck()
		return
	}
	if c.PID == os.Getpid() {
		return
	}
	if c.By != "" {
		d.committers.record(c.Generation, c.By)
	}
	d.committers.touched()
	d.askDriftCheck()
}

// askDriftCheck has the loop check the table for drift at once (as soon
// as its limits allow).
func (d *Daemon) askDriftCheck() {
	select {
	case d.foreignCommit <- struct{}{}:
	default: // a check is already due
	}
}
