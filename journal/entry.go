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

// Summary says what an apply changed in the kernel.
type Summary struct {
	RulesAdded      int `json:"rulesAdded,omitempty"`
	RulesRemoved    int `json:"rulesRemoved,omitempty"`
	ElementsAdded   int `json:"elementsAdded,omitempty"`
	ElementsRemoved int `json:"elementsRemoved,omitempty"`
	// Messages is the number of netlink messages written.
	Messages int `json:"messages,omitempty"`
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

// String renders an entry in one line for people: time, kind, and what
// is known of it.
func (e Entry) String() string {
	s := fmt.Sprintf("%s #%d %s", e.Time.UTC().Format(time.RFC3339), e.Seq, e.Kind)
	add := func(k, v string) {
		if v != "" {
			s += " " + k + "=" + v
		}
	}
	add("trigger", e.Trigger)
	if e.By != nil {
		add("by", fmt.Sprintf("%s(uid %d)", e.By.User, e.By.UID))
	}
	add("changed_by", e.ChangedBy)
	add("source", e.Source)
	if e.PolicyBefore != e.PolicyAfter {
		add("policy", short(e.PolicyBefore)+"→"+short(e.PolicyAfter))
	}
	if c := e.Changes; c != nil {
		s += fmt.Sprintf(" rules=+%d/-%d elements=+%d/-%d", c.RulesAdded, c.RulesRemoved, c.ElementsAdded, c.ElementsRemoved)
	}
	add("interface", e.Interface)
	add("peer", e.Peer)
	add("error", e.Error)
	add("detail", e.Detail)
	return s
}

func short(h string) string {
	if h == "" {
		return "none"
	}
	return h[:min(len(h), 12)]
}
