package report

import (
	"slices"
	"time"
)

// Input is what a report is built from; the daemon gathers it.
type Input struct {
	Host    string
	Version string
	// From and To are the period asked for; a zero To, or one after Now,
	// is Now.
	From, To time.Time
	// Now is when the report is made.
	Now    time.Time
	Policy PolicyRef
	// Journal is every entry the journal keeps, oldest first: those
	// before From tell the tunnels' state when the period begins.
	Journal []Event
	// Chain is the verification of the journal's hash chain.
	Chain JournalCheck
	// Exposure is the running ruleset's, without its sentences.
	Exposure Exposure
	// Rules are the counters of the running ruleset.
	Rules []Rule
	// Peers are the tunnel peers the running policy declares.
	Peers []PeerRef
	// Traffic reads the daily counter rollups.
	Traffic Traffic
}

// Rule is a counter of the running ruleset.
type Rule struct {
	Name string
	// Direction, Action, Kind (user, implicit, default, limited) and
	// Mode (enforce, audit).
	Direction, Action, Kind, Mode string
}

// PeerRef names a tunnel peer.
type PeerRef struct {
	Interface, Peer string
}

// Traffic is the history of the rules' counters and logged samples.
type Traffic interface {
	// Rules names every rule with a history.
	Rules() []string
	// Days returns a rule's days from the day of from to the day of to,
	// both included, that its counter was read or its log sampled.
	Days(rule string, from, to time.Time) []Day
	// Samples returns, for each rule named, what was logged of its
	// packets in [from, to].
	Samples(from, to time.Time, rules []string) map[string]Sample
}

// Sample is what was logged of a rule's packets in a period: how many,
// their share of those counted, the heaviest sources and ports.
type Sample struct {
	Sampled    uint64
	Share      *float64
	TopSources []SourceCount
	TopPorts   []PortCount
}

// Build makes the report of the period in. It is pure.
func Build(in Input) *Report {
	from, to := in.From, in.To
	if to.IsZero() || to.After(in.Now) {
		to = in.Now
	}
	if from.After(to) {
		from = to
	}
	first, last := dayOf(from), dayOf(lastInstant(from, to))
	r := &Report{
		SchemaVersion: SchemaVersion,
		Identity: Identity{Host: in.Host, Version: in.Version, From: from.UTC(), To: to.UTC(), GeneratedAt: in.Now.UTC(),
			FirstDay: first.Format(time.DateOnly), LastDay: last.Format(time.DateOnly), Policy: in.Policy, Journal: in.Chain},
		Exposure: in.Exposure,
	}
	if r.Identity.Journal.Torn == nil {
		r.Identity.Journal.Torn = []string{}
	}
	describeExposure(&r.Exposure)
	r.Changes, r.Integrity = journalSections(in.Journal, from, to)
	r.Denied, r.WouldDeny, r.Allowed, r.Retired = trafficSections(in, first, last, to)
	r.Tunnels = availability(in.Journal, in.Peers, from, to)
	return r
}

// dayOf is the start of t's UTC day.
func dayOf(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// lastInstant is the period's last instant: a period ending at
// midnight does not hold the day that begins then.
func lastInstant(from, to time.Time) time.Time {
	if to.After(from) {
		return to.Add(-time.Nanosecond)
	}
	return to
}

// changeKinds are the kinds the changes section lists.
var changeKinds = []string{KindApply, KindApplyFailed, KindConfirm, KindRollback, KindRemove, KindBoot, KindSafeFallback}

// journalSections picks the period's changes and integrity events, with
// their sentences.
func journalSections(entries []Event, from, to time.Time) (changes, integrity []Event) {
	changes, integrity = []Event{}, []Event{}
	for _, e := range entries {
		if e.Time.Before(from) || e.Time.After(to) {
			continue
		}
		e.Summary = eventSummary(e)
		if c := e.Changes; c != nil {
			e.Changes = &Changes{RulesAdded: c.RulesAdded, RulesRemoved: c.RulesRemoved, RulesChanged: c.RulesChanged,
				ElementsAdded: c.ElementsAdded, ElementsRemoved: c.ElementsRemoved,
				Added: orEmpty(c.Added), Removed: orEmpty(c.Removed), Changed: orEmpty(c.Changed)}
		}
		if slices.Contains(changeKinds, e.Kind) {
			changes = append(changes, e)
		}
		if integrityEvent(e) {
			integrity = append(integrity, e)
		}
	}
	return changes, integrity
}

// integrityEvent tells the events that say the host did not enforce its
// policy as applied all along, or that its journal lost entries.
func integrityEvent(e Event) bool {
	switch e.Kind {
	case KindDriftRepair, KindApplyFailed, KindSafeFallback, KindRemove, KindRotated:
		return true
	case KindRollback:
		return e.Trigger == "confirm-timeout" || e.Trigger == "restart"
	case KindBoot:
		return e.Error != ""
	}
	return false
}
