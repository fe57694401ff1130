// Package journal keeps a host's audit journal: every event that changes
// or tests what the host enforces (applies and their failures, confirms,
// rollbacks, drift repairs, boots, safe fallbacks, tunnel peers going up
// or down), appended as JSON Lines to files in the state directory.
//
// Each entry carries the SHA-256 of the line before it, so the entries
// form a hash chain: an entry edited, inserted or removed in the middle
// breaks it, and Verify says where. Rotation keeps the journal under a
// size cap by removing its oldest file, and records what it removed in
// the chain itself, so a journal whose beginning was rotated away is told
// from one whose beginning was cut. (No hash chain can tell entries cut
// from its end: the entry count and head hash exported elsewhere, in
// metrics or a report, anchor it.)
package journal

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind names what an entry records.
type Kind string

// The kinds of entries.
const (
	KindApply        Kind = "apply"         // a policy was applied (it may have written nothing)
	KindApplyFailed  Kind = "apply-failed"  // a policy was refused or the kernel rejected it
	KindConfirm      Kind = "confirm"       // an apply awaiting confirmation was confirmed
	KindRollback     Kind = "rollback"      // an unconfirmed apply was rolled back
	KindDriftRepair  Kind = "drift-repair"  // the table was changed outside edgefw and restored
	KindBoot         Kind = "boot"          // the daemon started and installed a ruleset
	KindSafeFallback Kind = "safe-fallback" // the safe minimal ruleset was installed
	KindRemove       Kind = "remove"        // the table was removed on request
	KindPeerUp       Kind = "peer-up"       // a tunnel peer completed a handshake after being down
	KindPeerDown     Kind = "peer-down"     // a tunnel peer had no handshake for too long
	KindRotated      Kind = "rotated"       // the oldest journal file was removed to respect the cap
)

// Caller is who asked for a change on the control socket, from the
// credentials the kernel gave for the connection (SO_PEERCRED).
type Caller struct {
	UID  int    `json:"uid"`
	User string `json:"user,omitempty"`
}

// Summary says what an apply changed in the kernel, in the policy's
// terms: rules by their counter's name (a policy rule's, or the reserved
// name of an implicit rule or default policy).
type Summary struct {
	RulesAdded      int `json:"rulesAdded,omitempty"`
	RulesRemoved    int `json:"rulesRemoved,omitempty"`
	RulesChanged    int `json:"rulesChanged,omitempty"`
	ElementsAdded   int `json:"elementsAdded,omitempty"`
	ElementsRemoved int `json:"elementsRemoved,omitempty"`
	// Messages is the number of netlink messages written.
	Messages int `json:"messages,omitempty"`
	// Added, Removed and Changed name the rules, at most MaxRuleNames
	// each: the counts above are exact, the names bounded, so that a
	// table restored whole does not make an entry of every rule.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"`
}

// MaxRuleNames bounds each list of rule names of a Summary.
const MaxRuleNames = 16

// Drift counts what a drift-repair entry stands for. The daemon writes
// one entry when a burst of changes by others begins, and a summary
// while it goes on and when it ends, rather than one per repair, so that
// a process changing the table in a loop cannot flood the journal and
// rotate older entries away.
type Drift struct {
	// Repairs and Failures count the restorations of the table, and the
	// attempts that failed, since the burst's previous entry: summed over
	// every drift-repair entry, they count every repair.
	Repairs  int `json:"repairs"`
	Failures int `json:"failures,omitempty"`
	// Commits counts the commits to the table by other processes, as
	// nftables notified them, since the burst's previous entry.
	Commits uint64 `json:"commits,omitempty"`
	// Since is when the burst began; Ended is set on its last entry.
	Since time.Time `json:"since"`
	Ended bool      `json:"ended,omitempty"`
}

// Event is what happened, as the daemon reports it.
type Event struct {
	Kind Kind `json:"kind"`
	// Trigger says why: start, signal, file-change, reload, apply,
	// confirm-timeout, rollback, restart, drift, ….
	Trigger string `json:"trigger,omitempty"`
	// By is who asked, for requests on the control socket.
	By *Caller `json:"by,omitempty"`
	// ChangedBy is the process that changed the table (drift repairs).
	ChangedBy string `json:"changedBy,omitempty"`
	// Source is the policy's path (the main file, or the file applied).
	Source string `json:"source,omitempty"`
	// PolicyBefore and PolicyAfter are the SHA-256 of the running
	// policy's files before and after.
	PolicyBefore string `json:"policyBefore,omitempty"`
	PolicyAfter  string `json:"policyAfter,omitempty"`
	// Changes summarises what an apply wrote.
	Changes *Summary `json:"changes,omitempty"`
	// Error is why an apply failed.
	Error string `json:"error,omitempty"`
	// Interface and Peer name a tunnel peer.
	Interface string `json:"interface,omitempty"`
	Peer      string `json:"peer,omitempty"`
	// Detail is a sentence for people.
	Detail string `json:"detail,omitempty"`
	// Rotated is set on KindRotated entries: what the removed file held.
	Rotated *Rotation `json:"rotated,omitempty"`
	// Version is the daemon's version, on boots.
	Version string `json:"version,omitempty"`
	// Failsafe are the ports a safe fallback left open, like "tcp/22".
	Failsafe []string `json:"failsafe,omitempty"`
	// Drift is set on drift repairs: how many repairs the entry stands for.
	Drift *Drift `json:"drift,omitempty"`
}

// Rotation records a journal file removed to keep the journal under its
// cap: the entries it held and the hash of its last line, which the first
// entry kept must carry as Prev.
type Rotation struct {
	File     string `json:"file"`
	FirstSeq uint64 `json:"firstSeq"`
	LastSeq  uint64 `json:"lastSeq"`
	LastHash string `json:"lastHash"`
}

// Entry is one line of the journal.
type Entry struct {
	// Seq counts the entries from 1, across rotations.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Prev is the SHA-256 (hex) of the previous entry's line, without its
	// newline; "" for the first entry ever.
	Prev string `json:"prev"`
	Event
}

// lineHash is the hash the next entry carries as Prev.
func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// String renders an entry in one line for people: time, sequence
// number, kind and who (the caller on the control socket, else the
// daemon itself), then what is known of it as key=value pairs, values
// with spaces quoted.
func (e Entry) String() string {
	var b strings.Builder
	who := "edgefwd"
	if e.By != nil {
		who = e.By.String()
	}
	fmt.Fprintf(&b, "%s #%d %-13s %s", e.Time.UTC().Format(time.RFC3339), e.Seq, e.Kind, who)
	add := func(k, v string) {
		if v == "" {
			return
		}
		if strings.ContainsAny(v, " \t\n\"=") {
			v = strconv.Quote(v)
		}
		b.WriteString(" " + k + "=" + v)
	}
	add("trigger", e.Trigger)
	add("changed_by", e.ChangedBy)
	add("version", e.Version)
	add("source", e.Source)
	if e.PolicyBefore != "" || e.PolicyAfter != "" {
		if e.PolicyBefore == e.PolicyAfter {
			add("policy", short(e.PolicyAfter))
		} else {
			add("policy", short(e.PolicyBefore)+"→"+short(e.PolicyAfter))
		}
	}
	if c := e.Changes; c != nil {
		add("rules", c.rules())
		if c.ElementsAdded+c.ElementsRemoved > 0 {
			add("elements", fmt.Sprintf("+%d-%d", c.ElementsAdded, c.ElementsRemoved))
		}
	}
	if d := e.Drift; d != nil {
		add("repairs", strconv.Itoa(d.Repairs))
		if d.Failures > 0 {
			add("failures", strconv.Itoa(d.Failures))
		}
		if d.Ended {
			add("burst", "ended")
		}
	}
	add("failsafe", strings.Join(e.Failsafe, ","))
	add("interface", e.Interface)
	add("peer", e.Peer)
	add("error", e.Error)
	add("detail", e.Detail)
	return b.String()
}

// String renders a caller as "alice(uid=1000)".
func (c *Caller) String() string {
	if c.User == "" {
		return fmt.Sprintf("uid=%d", c.UID)
	}
	return fmt.Sprintf("%s(uid=%d)", c.User, c.UID)
}

// shownRuleNames bounds the names of each list String shows; -o json
// gives all that the entry keeps.
const shownRuleNames = 5

// rules lists the rules added (+), removed (-) and changed (~), and how
// many more there are than the names shown.
func (s *Summary) rules() string {
	var parts []string
	list := func(sign string, names []string, n int) {
		names = names[:min(len(names), shownRuleNames)]
		for _, name := range names {
			parts = append(parts, sign+name)
		}
		if more := n - len(names); more > 0 {
			parts = append(parts, fmt.Sprintf("%s%d-more", sign, more))
		}
	}
	list("+", s.Added, s.RulesAdded)
	list("-", s.Removed, s.RulesRemoved)
	list("~", s.Changed, s.RulesChanged)
	return strings.Join(parts, ",")
}

func short(h string) string {
	if h == "" {
		return "none"
	}
	return h[:min(len(h), 12)]
}
