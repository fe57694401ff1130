package daemon

import (
	"fmt"
	"slices"

	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/policy"
)

// bootRecord gathers what Start installs: a start writes one boot entry,
// however many applies it takes (the last good ruleset first, then the
// policy files). Restart rollbacks and safe fallbacks get entries of
// their own as well, and failed applies theirs.
type bootRecord struct {
	// before is the policy the host ran when the daemon stopped, as the
	// state directory says: the unconfirmed one of a pending apply, or
	// the last good one.
	before string
	// pending is the apply that awaited confirmation when the daemon
	// stopped, if any.
	pending *pendingState
	// trigger and src are those of the last apply that succeeded.
	trigger string
	src     PolicySource
	changes *journal.Summary
}

// beginBoot starts gathering Start's applies; pend is the apply that
// awaited confirmation when the daemon stopped, if any.
func (d *Daemon) beginBoot(pend *pendingState) {
	b := &bootRecord{pending: pend}
	if pend != nil {
		b.before = pend.Hash
	}
	d.jr.boot = b
}

// note adds an apply that succeeded while Start runs.
func (b *bootRecord) note(trigger string, src PolicySource, changes *journal.Summary) {
	if trigger == triggerLastGood && b.before == "" {
		b.before = src.Hash
	}
	b.trigger, b.src = trigger, src
	b.changes = addSummaries(b.changes, changes)
}

// from says, for the boot entry, what the start installed last.
func (b *bootRecord) from() string {
	switch b.trigger {
	case triggerLastGood:
		return "last-good"
	case triggerRestart:
		return "restart-rollback"
	case triggerSafeFallback:
		return triggerSafeFallback
	case "start":
		if b.src.Applied {
			return "applied-policy"
		}
		return "policy-files"
	}
	return "nothing"
}

// endBoot writes the boot entry, with err when Start failed. An apply
// that awaited confirmation with nothing before it was replaced by the
// policy files: that is a rollback too.
func (d *Daemon) endBoot(err error) {
	b := d.jr.boot
	d.jr.boot = nil
	if b == nil {
		return
	}
	if p := b.pending; p != nil && p.Previous == nil && b.trigger == "start" {
		d.record(journal.Event{Kind: journal.KindRollback, Trigger: triggerRestart, Source: b.src.Path,
			PolicyBefore: b.before, PolicyAfter: b.src.Hash, Changes: b.changes,
			Detail: fmt.Sprintf("edgefwd restarted while the apply of %s awaited confirmation, with nothing before it: the policy files replace it", p.Path)})
	}
	ev := journal.Event{Kind: journal.KindBoot, Trigger: b.from(), Version: d.cfg.Version, Source: b.src.Path,
		PolicyBefore: b.before, PolicyAfter: b.src.Hash, Changes: b.changes}
	if err != nil {
		ev.Error = err.Error()
	}
	d.record(ev)
}

// addSummaries sums what two applies changed; nil when neither did.
func addSummaries(a, b *journal.Summary) *journal.Summary {
	if a == nil || b == nil {
		if a == nil {
			return b
		}
		return a
	}
	return &journal.Summary{
		RulesAdded: a.RulesAdded + b.RulesAdded, RulesRemoved: a.RulesRemoved + b.RulesRemoved,
		RulesChanged: a.RulesChanged + b.RulesChanged, ElementsAdded: a.ElementsAdded + b.ElementsAdded,
		ElementsRemoved: a.ElementsRemoved + b.ElementsRemoved, Messages: a.Messages + b.Messages,
		Added: joinNames(a.Added, b.Added), Removed: joinNames(a.Removed, b.Removed), Changed: joinNames(a.Changed, b.Changed),
	}
}

// joinNames is the names of a and b, each once, capped.
func joinNames(a, b []string) []string {
	out := slices.Clone(a)
	for _, n := range b {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return capNames(out)
}

// portStrings renders ports as the journal lists them, like "tcp/22".
func portStrings(ports []policy.PortRange) []string {
	out := make([]string, len(ports))
	for i, p := range ports {
		out[i] = p.String()
	}
	return out
}
