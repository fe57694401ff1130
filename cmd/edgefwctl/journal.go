package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/journal"
)

// errChainBroken makes journal verify exit 1 once it has said where.
var errChainBroken = errors.New("the journal's hash chain is broken")

func (a *app) journalCmd() *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "journal",
		Short: "List the audit journal: who changed what the host enforces, and when",
		Long: `journal lists the audit journal that edgefwd keeps in its state directory,
oldest first, one entry a line: time (UTC), sequence number, kind, who (the
caller on the control socket, or edgefwd itself), then what is known of it:
trigger, the process that changed the table (drift repairs), the policy's
hash before→after, rules added (+), removed (-) and changed (~), set
elements added and removed, tunnel peer, error.

Kinds: apply, apply-failed, confirm, rollback (trigger rollback,
confirm-timeout or restart), drift-repair, boot, safe-fallback, remove,
peer-up, peer-down, rotated.

--since takes a duration back from now (90m, 24h, 7d) or a time (RFC 3339,
or a date taken as midnight local time). "journal verify" checks the
journal's hash chain.`,
		Example: `  edgefwctl journal --since 24h
  edgefwctl journal --since 2026-03-01 -o json | jq 'map(select(.kind == "apply"))'
  edgefwctl journal verify`,
		Args: args(cobra.NoArgs),
	}
	out := addOutputFlag(cmd)
	cmd.Flags().StringVar(&since, "since", "", "list entries since `DUR|TIME`: a duration back from now (24h, 7d) or a time (RFC 3339 or YYYY-MM-DD)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		from, err := parseSince(since, a.now())
		if err != nil {
			return usageError(cmd, err)
		}
		entries, err := a.client().Journal(cmd.Context(), from)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if *out == outputJSON {
			if entries == nil {
				entries = []journal.Entry{}
			}
			return writeJSON(a.stdout, entries)
		}
		if len(entries) == 0 {
			fmt.Fprintln(a.stdout, "no journal entries")
			return nil
		}
		for _, e := range entries {
			fmt.Fprintln(a.stdout, e.String())
		}
		return nil
	}
	cmd.AddCommand(a.journalVerifyCmd())
	return cmd
}

func (a *app) journalVerifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit journal's hash chain",
		Long: `verify has edgefwd check the hash chain of its audit journal: each entry
carries the SHA-256 of the one before, so an entry edited, inserted or
removed breaks the chain there. It says whether the chain holds, which
entries it covers and its head (the hash of the last entry: note it, to
tell later whether entries were cut from the end), or the entry where it
breaks and why. Lines cut short by a crash are skipped and listed.

Exit status: 0 when the chain holds, 1 when it is broken or cannot be read.`,
		Example: `  edgefwctl journal verify
  edgefwctl journal verify -o json | jq .break`,
		Args: args(cobra.NoArgs),
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := a.client().VerifyJournal(cmd.Context())
		if err != nil {
			return fmt.Errorf("journal verify: %w", err)
		}
		if *out == outputJSON {
			if err := writeJSON(a.stdout, v); err != nil {
				return err
			}
		} else {
			fmt.Fprintln(a.stdout, v.String())
			if v.OK() && v.Head != "" {
				fmt.Fprintf(a.stdout, "head: %s\n", v.Head)
			}
		}
		if !v.OK() {
			return errChainBroken
		}
		return nil
	}
	return cmd
}

// parseSince reads --since: "" (everything), a duration back from now
// (Go's units, and d for days), an RFC 3339 time, or a date, taken as
// midnight local time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: must not be negative", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (90m, 24h, 7d), an RFC 3339 time or a date (2006-01-02)", s)
}

// journalSummary renders the journal's head for status.
func journalSummary(j *daemon.JournalStatus) string {
	if j.Error != "" {
		return "unavailable: " + j.Error
	}
	entries := fmt.Sprintf("%d entries", j.Entries)
	if j.Entries == 1 {
		entries = "1 entry"
	}
	s := j.Path + ", " + entries
	if j.Head != "" {
		s += fmt.Sprintf(", head %.12s", j.Head)
	}
	return s
}
