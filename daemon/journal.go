package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/nft"
)

// JournalDir is the audit journal's directory in the state directory.
const JournalDir = "journal"

// journaling is what the daemon keeps to journal the events that change
// or test what the host enforces (see package journal).
type journaling struct {
	mu  sync.Mutex // guards j and err, which the API reads
	j   *journal.Journal
	err error

	// by is who asked for what the loop is doing now: the caller of a
	// request on the control socket, nil for the daemon's own doings
	// (start, signals, file changes, timers). Only the loop (and Start,
	// before it) uses it.
	by *Caller
	// boot gathers what Start installs, for the one boot entry it
	// writes; nil once Start is done.
	boot *bootRecord
	// peers is whether each declared peer was up at the last check; only
	// the loop uses it.
	peers map[peerKey]bool
}

// openJournal opens the journal in the state directory. A journal that
// cannot be opened is logged, and the daemon runs without it: each event
// it would have recorded is then logged and counted as an append error.
func (d *Daemon) openJournal() {
	opts := []journal.Option{journal.WithClock(d.now)}
	if d.cfg.JournalMaxBytes > 0 {
		opts = append(opts, journal.WithMaxBytes(d.cfg.JournalMaxBytes))
	}
	j, err := journal.Open(filepath.Join(d.cfg.StateDir, JournalDir), opts...)
	d.jr.mu.Lock()
	d.jr.j, d.jr.err = j, err
	d.jr.mu.Unlock()
	if err != nil {
		d.log.Error("audit journal unavailable: events are logged but not journaled", "error", err)
		return
	}
	if d.cfg.Metrics != nil {
		seq, _ := j.Seq()
		d.cfg.Metrics.JournalAppended(seq)
	}
}

// closeJournal closes the journal when the daemon stops.
func (d *Daemon) closeJournal() {
	d.jr.mu.Lock()
	defer d.jr.mu.Unlock()
	if d.jr.j != nil {
		_ = d.jr.j.Close()
	}
}

// record appends an event to the journal. A failure is logged and
// counted, never fatal: the event has happened either way.
func (d *Daemon) record(ev journal.Event) { d.recordAll([]journal.Event{ev}) }

// recordAll appends events to the journal together, with one fsync (see
// journal.AppendAll). A failure is logged and counted once per event.
func (d *Daemon) recordAll(evs []journal.Event) {
	if len(evs) == 0 {
		return
	}
	d.jr.mu.Lock()
	j, openErr := d.jr.j, d.jr.err
	d.jr.mu.Unlock()
	err := openErr
	var entries []journal.Entry
	if j != nil {
		entries, err = j.AppendAll(evs)
	} else if err == nil {
		err = errors.New("journal not open")
	}
	if err != nil {
		for _, ev := range evs {
			d.log.Error("event not journaled", "kind", ev.Kind, "trigger", ev.Trigger, "error", err)
			if d.cfg.Metrics != nil {
				d.cfg.Metrics.JournalAppendFailed()
			}
		}
		return
	}
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.JournalAppended(entries[len(entries)-1].Seq)
	}
}

// kindOf is the kind of entry an apply with this trigger makes.
func kindOf(trigger string) journal.Kind {
	switch trigger {
	case "rollback", "confirm-timeout", triggerRestart:
		return journal.KindRollback
	case triggerSafeFallback:
		return journal.KindSafeFallback
	}
	return journal.KindApply
}

// Triggers of the applies Start makes; "start" reads the policy files.
const (
	triggerLastGood     = "boot-ruleset"
	triggerRestart      = "restart"
	triggerSafeFallback = "safe-fallback"
)

// journalApply records an apply that put after in force; before is what
// ran until then (nil: nothing). While Start runs, plain applies are
// gathered into its one boot entry.
func (d *Daemon) journalApply(trigger string, before, after *running, res nft.Result, tunErr error) {
	ev := journal.Event{Kind: kindOf(trigger), Trigger: trigger, By: d.jr.by.journal(), Source: after.source.Path,
		PolicyBefore: hashOf(before), PolicyAfter: after.source.Hash, Changes: summaryOf(res)}
	if tunErr != nil {
		ev.Error = "tunnels: " + tunErr.Error()
	}
	if b := d.jr.boot; b != nil {
		b.note(trigger, after.source, ev.Changes)
		if ev.Kind == journal.KindApply {
			return
		}
		ev.PolicyBefore = cmp.Or(ev.PolicyBefore, b.before)
	}
	switch ev.Kind {
	case journal.KindRollback:
		ev.Detail = d.rollbackDetail(trigger)
	case journal.KindSafeFallback:
		ev.Failsafe = portStrings(after.pol.Failsafe)
		ev.Detail = "the policy was rejected and no earlier ruleset exists: input is dropped but for the failsafe ports"
	}
	d.record(ev)
}

// rollbackDetail names the unconfirmed apply a rollback undoes.
func (d *Daemon) rollbackDetail(trigger string) string {
	d.mu.Lock()
	p := d.pending
	d.mu.Unlock()
	if b := d.jr.boot; p == nil && b != nil {
		p = b.pending
	}
	switch {
	case p == nil:
		return "nothing awaited confirmation: reloaded"
	case trigger == triggerRestart:
		return fmt.Sprintf("edgefwd restarted while the apply of %s awaited confirmation: the policy before it was restored", p.Path)
	}
	return fmt.Sprintf("the unconfirmed apply of %s was rolled back", p.Path)
}

// journalFailure records an apply that failed; nothing changed.
func (d *Daemon) journalFailure(trigger string, err error) {
	d.mu.Lock()
	h := hashOf(d.cur)
	d.mu.Unlock()
	d.record(journal.Event{Kind: journal.KindApplyFailed, Trigger: trigger, By: d.jr.by.journal(),
		PolicyBefore: h, PolicyAfter: h, Error: err.Error()})
}

// journalConfirm records the confirmation of the apply p.
func (d *Daemon) journalConfirm(p *pendingState) {
	d.mu.Lock()
	h := hashOf(d.cur)
	d.mu.Unlock()
	d.record(journal.Event{Kind: journal.KindConfirm, Trigger: "confirm", By: d.jr.by.journal(), Source: p.Path,
		PolicyBefore: h, PolicyAfter: h})
}

// journalRemove records a removal of the table, or its failure; it is
// called before the running policy is forgotten.
func (d *Daemon) journalRemove(err error) {
	d.mu.Lock()
	ev := journal.Event{Kind: journal.KindRemove, Trigger: "remove", By: d.jr.by.journal(), PolicyBefore: hashOf(d.cur)}
	if d.cur != nil {
		ev.Source = d.cur.source.Path
	}
	d.mu.Unlock()
	if err != nil {
		ev.Error, ev.PolicyAfter = err.Error(), ev.PolicyBefore
	}
	d.record(ev)
}

// hashOf is the hash of a running policy's files, "" for none.
func hashOf(r *running) string {
	if r == nil {
		return ""
	}
	return r.source.Hash
}

// summaryOf says in the journal's terms what an apply wrote; nil when it
// wrote nothing.
func summaryOf(res nft.Result) *journal.Summary {
	if !res.Changed() {
		return nil
	}
	s := res.Summary
	return &journal.Summary{
		RulesAdded: len(s.RulesAdded), RulesRemoved: len(s.RulesRemoved), RulesChanged: len(s.RulesChanged),
		ElementsAdded: s.ElementsAdded, ElementsRemoved: s.ElementsRemoved, Messages: res.Messages,
		Added: capNames(s.RulesAdded), Removed: capNames(s.RulesRemoved), Changed: capNames(s.RulesChanged),
	}
}

// reservedPrefix begins the names of implicit rules and default
// policies (SPEC: names beginning with edgefw- are reserved).
const reservedPrefix = "edgefw-"

// capNames keeps the first journal.MaxRuleNames names, the policy's own
// rules before the implicit ones (reserved edgefw- names), which a
// restored table adds by the dozen.
func capNames(names []string) []string {
	implicit := func(name string) int {
		if strings.HasPrefix(name, reservedPrefix) {
			return 1
		}
		return 0
	}
	out := slices.Clone(names)
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(implicit(a), implicit(b)) })
	return out[:min(len(out), journal.MaxRuleNames)]
}

// journal converts a caller for the journal.
func (c *Caller) journal() *journal.Caller {
	if c == nil {
		return nil
	}
	return &journal.Caller{UID: c.UID, User: c.User}
}

// JournalEntries returns the journal's entries at or after since.
func (d *Daemon) JournalEntries(since time.Time) ([]journal.Entry, error) {
	return journal.Read(filepath.Join(d.cfg.StateDir, JournalDir), since)
}

// VerifyJournal checks the journal's hash chain.
func (d *Daemon) VerifyJournal() (*journal.Verification, error) {
	return journal.Verify(filepath.Join(d.cfg.StateDir, JournalDir))
}

// journalStatus says, for status, where the journal is and its head.
func (d *Daemon) journalStatus() *JournalStatus {
	d.jr.mu.Lock()
	defer d.jr.mu.Unlock()
	st := &JournalStatus{Path: filepath.Join(d.cfg.StateDir, JournalDir)}
	switch {
	case d.jr.err != nil:
		st.Error = d.jr.err.Error()
	case d.jr.j != nil:
		st.Entries, st.Head = d.jr.j.Seq()
	}
	return st
}
