package report

import (
	"fmt"
	"strings"
)

// eventSummary says in a sentence what a journal entry records.
func eventSummary(e Event) string {
	switch e.Kind {
	case KindApply:
		s := "Applied " + policyName(e.Source)
		if e.Trigger != "" && e.Trigger != "apply" {
			s += " (" + triggerText(e.Trigger) + ")"
		}
		return s + ": " + changesText(e.Changes) + errorText(e.Error)
	case KindApplyFailed:
		return fmt.Sprintf("An apply (%s) failed and changed nothing: %s", triggerText(e.Trigger), e.Error)
	case KindConfirm:
		return "Confirmed the apply of " + policyName(e.Source) + ": it stays in force"
	case KindRollback:
		return rollbackText(e) + ": " + changesText(e.Changes)
	case KindRemove:
		if e.Error != "" {
			return "Removing table inet edgefw failed: " + e.Error
		}
		return "Table inet edgefw was removed on request: from then on edgefw enforced nothing"
	case KindBoot:
		s := fmt.Sprintf("edgefwd %s started and installed %s", orUnknown(e.Version), bootText(e.Trigger))
		return s + errorText(e.Error)
	case KindSafeFallback:
		return "The policy was rejected and no earlier ruleset existed: the safe fallback ruleset was installed, dropping input but for " +
			orNone(e.Failsafe)
	case KindDriftRepair:
		return driftText(e)
	case KindRotated:
		if e.Rotated != nil {
			return fmt.Sprintf("Entries %d to %d were removed to keep the journal under its size cap, as the chain records", e.Rotated.FirstSeq, e.Rotated.LastSeq)
		}
		return "Old entries were removed to keep the journal under its size cap"
	case KindPeerUp:
		return fmt.Sprintf("Peer %s of tunnel %s came up", e.Peer, e.Interface)
	case KindPeerDown:
		return fmt.Sprintf("Peer %s of tunnel %s went down", e.Peer, e.Interface)
	}
	return e.Detail
}

func policyName(path string) string {
	if path == "" {
		return "the policy"
	}
	return path
}

func orUnknown(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}

func orNone(ports []string) string {
	if len(ports) == 0 {
		return "nothing (no failsafe ports)"
	}
	return joinList(ports, "and")
}

func errorText(err string) string {
	if err == "" {
		return ""
	}
	return "; error: " + err
}

// triggerText says why an apply happened.
func triggerText(trigger string) string {
	switch trigger {
	case "start":
		return "at start"
	case "signal":
		return "on SIGHUP"
	case "file-change":
		return "the policy files changed"
	case "reload":
		return "reload requested"
	case "reload-from-files":
		return "reload from the files requested"
	case "apply":
		return "apply requested"
	case "drift":
		return "drift repair"
	case "":
		return "no trigger recorded"
	}
	return trigger
}

func rollbackText(e Event) string {
	switch e.Trigger {
	case "confirm-timeout":
		return "Rolled back: an apply was not confirmed in time"
	case "restart":
		return "Rolled back at restart: an apply awaited confirmation when edgefwd stopped"
	}
	return "Rolled back on request"
}

// bootText says what a start installed, from its boot entry's trigger.
func bootText(trigger string) string {
	switch trigger {
	case "last-good":
		return "the last ruleset that applied (the policy files did not load)"
	case "restart-rollback":
		return "the policy before an unconfirmed apply"
	case "safe-fallback":
		return "the safe fallback ruleset"
	case "applied-policy":
		return "the policy last given by edgefwctl apply"
	case "policy-files":
		return "the policy files"
	}
	return "nothing"
}

// changesText says what an apply wrote.
func changesText(c *Changes) string {
	if c == nil {
		return "nothing to write, the kernel held it already"
	}
	var parts []string
	list := func(what string, names []string, n int) {
		if n == 0 {
			return
		}
		s := fmt.Sprintf("%s %s", plural(n, "rule", "rules"), what)
		if len(names) > 0 {
			s += " (" + strings.Join(names, ", ")
			if more := n - len(names); more > 0 {
				s += fmt.Sprintf(" and %d more", more)
			}
			s += ")"
		}
		parts = append(parts, s)
	}
	list("added", c.Added, c.RulesAdded)
	list("removed", c.Removed, c.RulesRemoved)
	list("changed", c.Changed, c.RulesChanged)
	if c.ElementsAdded+c.ElementsRemoved > 0 {
		parts = append(parts, fmt.Sprintf("set elements +%s −%s", count(uint64(c.ElementsAdded)), count(uint64(c.ElementsRemoved))))
	}
	if len(parts) == 0 {
		return "rewrote the table as it was"
	}
	return strings.Join(parts, "; ")
}

// driftText says who changed the table and what the repairs did.
func driftText(e Event) string {
	who := e.ChangedBy
	if who == "" {
		who = "an unknown process"
	}
	s := "Table inet edgefw was changed outside edgefw by " + who
	d := e.Drift
	if d == nil {
		return s + " and restored"
	}
	if d.Repairs > 0 {
		s += fmt.Sprintf(" and restored (%s)", plural(d.Repairs, "repair", "repairs"))
	}
	if d.Failures > 0 {
		s += fmt.Sprintf("; %s failed", plural(d.Failures, "repair", "repairs"))
	}
	if e.Error != "" {
		s += ": " + e.Error
	}
	if d.Ended {
		s += "; the burst of changes ended"
	}
	return s
}

// who names who did an event: the caller, or edgefwd itself.
func who(e Event) string {
	if e.By == nil {
		return "edgefwd"
	}
	if e.By.User == "" {
		return fmt.Sprintf("uid %d", e.By.UID)
	}
	return fmt.Sprintf("%s (uid %d)", e.By.User, e.By.UID)
}
