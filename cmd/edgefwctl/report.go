package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/report"
)

func (a *app) reportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Render the audit report of a period: exposure, changes, integrity, traffic per day, tunnels",
		Long: `report renders, for a period, what an auditor asks of the host, answered
from the host alone:

  identity     host, edgefwd version, period, and whether the audit journal's
               hash chain holds (or the entry where it breaks)
  exposure     what the ruleset in the kernel lets through, per direction, in
               sentences: which ports and protocols to which sources (sets with
               their sizes, CIDRs, interfaces), the failsafe and implicit rules,
               rules in audit mode, the default of each direction
  changes      applies, confirms, rollbacks, removals, boots, safe fallbacks and
               failed applies: when, who (uid and user), why, policy hashes
  integrity    drift repairs (and the process that changed the table), failed
               applies, safe fallbacks, rollbacks by timeout or at restart,
               journal rotations and verification problems
  traffic      per rule per UTC day, exactly as the kernel counted: denied
               traffic with its top sources and ports (from the logged sample,
               whose share is given), what rules in audit mode would deny, and
               allowed traffic with surges marked (a day over 3 times the rule's
               median day)
  tunnels      each peer's share of the period up and its longest outage

The period is --since DURATION back from now (24h, 7d, 30d), or --from and
--to, dates (UTC days, --to included) or RFC 3339 times; the last 30 days
when none is given. Traffic is kept per day for 400 days.

-o markdown (the default) prints Markdown; -o json the report's model, as
docs/report.schema.json describes it; -o html one self-contained HTML file
with per-day charts (inline SVG, no script), which prints to PDF as it shows.

The report is made whether or not the journal's chain holds: it says so in
its identity and integrity sections, and edgefwctl warns on stderr.`,
		Example: `  edgefwctl report > last-30-days.md
  edgefwctl report --from 2026-01-01 --to 2026-12-31 -o html > 2026.html
  edgefwctl report --since 7d -o json | jq .identity.journal`,
		Args: args(cobra.NoArgs),
	}
	since := cmd.Flags().String("since", "", "report the last `DURATION` (24h, 7d, 30d)")
	from := cmd.Flags().String("from", "", "report from `DATE` (2006-01-02, a UTC day) or an RFC 3339 time")
	to := cmd.Flags().String("to", "", "report up to `DATE` included (2006-01-02), or an RFC 3339 time; default now")
	format := reportMarkdown
	cmd.Flags().VarP(&format, "output", "o", "output format: markdown, json or html")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"markdown", "json", "html"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		q, err := reportQuery(*since, *from, *to)
		if err != nil {
			return usageError(cmd, err)
		}
		r, err := a.client().Report(cmd.Context(), q)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if j := r.Identity.Journal; !j.Verified {
			fmt.Fprintf(a.stderr, "edgefwctl: warning: %s\n", journalProblem(j))
		}
		switch format {
		case reportJSON:
			return writeJSON(a.stdout, r)
		case reportHTML:
			return report.HTML(a.stdout, r)
		}
		return report.Markdown(a.stdout, r)
	}
	return cmd
}

// journalProblem says what is wrong with the journal, in a line.
func journalProblem(j report.JournalCheck) string {
	if j.Error != "" {
		return "the journal could not be verified: " + j.Error
	}
	return j.Summary
}

// reportQuery reads the period's flags.
func reportQuery(since, from, to string) (audit.Query, error) {
	var q audit.Query
	if since != "" && (from != "" || to != "") {
		return q, fmt.Errorf("give --since or --from and --to, not both")
	}
	if since != "" {
		d, err := daemon.ParseSince(since)
		if err != nil {
			return q, fmt.Errorf("--since %w", err)
		}
		q.Since = d
	}
	var err error
	if from != "" {
		if q.From, err = daemon.ParsePeriodTime(from, false); err != nil {
			return q, fmt.Errorf("--from %w", err)
		}
	}
	if to != "" {
		if q.To, err = daemon.ParsePeriodTime(to, true); err != nil {
			return q, fmt.Errorf("--to %w", err)
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, fmt.Errorf("--from %s is not before --to %s", from, to)
	}
	return q, nil
}

// reportFormat is the value of report's -o/--output.
type reportFormat string

const (
	reportMarkdown reportFormat = "markdown"
	reportJSON     reportFormat = "json"
	reportHTML     reportFormat = "html"
)

// String implements pflag.Value.
func (f *reportFormat) String() string { return string(*f) }

// Set accepts markdown, json or html.
func (f *reportFormat) Set(v string) error {
	switch reportFormat(v) {
	case reportMarkdown, reportJSON, reportHTML:
		*f = reportFormat(v)
		return nil
	}
	return fmt.Errorf("output format %q: must be markdown, json or html", v)
}

// Type names the value in help.
func (f *reportFormat) Type() string { return "markdown|json|html" }
