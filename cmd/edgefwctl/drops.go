package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/daemon"
)

// defaultDropsSince is the period drops and status show by default: the
// day an operator reviews.
const defaultDropsSince = 24 * time.Hour

func (a *app) dropsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drops",
		Short: "Show denied traffic per rule: exact totals and the top sources and ports",
		Long: `drops shows, for a period (the last 24 hours unless --since says otherwise),
each rule that dropped or rejected packets: the packets and bytes its kernel
counter counted, exactly, and the heaviest (source, protocol, destination
port) flows of the packets the daemon logged.

Only rules with log: true and the default policies log, at most 20 packets a
second per rule (a burst of 50), so under a flood the log is a sample: each
rule says how many packets were logged and which share of its total that is
("top flows from a 12% sample"). A count shown as 37-40 is a range: the
daemon keeps the heaviest flows in fixed memory, which bounds what it may
have over-counted.

The history survives restarts of edgefwd: a minute's detail for the last
hour, an hour's for the last day, a day's top ten for 400 days.

-o json prints the view as the control API returns it: per rule, packets,
bytes, sampled, share (null when nothing was counted), topSources, topPorts
and topFlows, each with count and errorBound.`,
		Example: `  edgefwctl drops
  edgefwctl drops --since 1h --top 20
  edgefwctl drops --since 7d --rule edgefw-default-input
  edgefwctl drops -o json | jq '.rules[] | {rule, packets, share}'`,
		Args: args(cobra.NoArgs),
	}
	since := cmd.Flags().String("since", "24h", "show the last `DURATION` (15m, 24h, 7d)")
	rules := cmd.Flags().StringArray("rule", nil, "show only the rule `NAME` (repeat for several)")
	top := cmd.Flags().Int("top", audit.DefaultTop, fmt.Sprintf("list the `N` heaviest flows per rule (at most %d)", audit.MaxTop))
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		d, err := daemon.ParseSince(*since)
		if err != nil {
			return usageError(cmd, fmt.Errorf("--since %w", err))
		}
		if *top < 1 || *top > audit.MaxTop {
			return usageError(cmd, fmt.Errorf("--top %d: want 1 to %d", *top, audit.MaxTop))
		}
		v, err := a.client().Drops(cmd.Context(), audit.Query{Since: d, Rules: *rules, Top: *top})
		if err != nil {
			return fmt.Errorf("drops: %w", err)
		}
		if *out == outputJSON {
			return writeJSON(a.stdout, v)
		}
		printDrops(a.stdout, v)
		return nil
	}
	return cmd
}

// printDrops prints a drops view: the period, then each rule's totals,
// its sample's share and its heaviest flows.
func printDrops(w io.Writer, v *daemon.DropsView) {
	fmt.Fprintf(w, "period: %s to %s\n", localMinute(v.From), localMinute(v.To))
	if len(v.Rules) == 0 {
		fmt.Fprintln(w, "no denied traffic in the period")
		return
	}
	for _, r := range v.Rules {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%s: %s, %s (%s) counted\n", r.Rule, ruleMeaning(r), plural(int(r.Packets), "packet"), humanBytes(r.Bytes))
		fmt.Fprintf(w, "  %s\n", sampleLine(r.RuleView))
		if len(r.TopFlows) == 0 {
			continue
		}
		t := newTable(w)
		fmt.Fprintln(t, "  SOURCE\tPROTO\tPORT\tLOGGED")
		for _, f := range r.TopFlows {
			fmt.Fprintf(t, "  %s\t%s\t%s\t%s\n", f.Source, f.Protocol, portCell(f.Port), countCell(f.Count, f.ErrorBound))
		}
		t.Flush()
	}
}

// ruleMeaning says what the rule does: "input drop", "input drop
// (audit)", or that it is no longer in the running policy.
func ruleMeaning(r daemon.RuleDrops) string {
	if r.Direction == "" && r.Action == "" {
		return "no longer in the policy"
	}
	return r.Direction + " " + ruleAction(r.Action, r.Mode)
}

// sampleLine says what the flows are drawn from.
func sampleLine(r audit.RuleView) string {
	logged := plural(int(r.Sampled), "packet") + " logged"
	switch {
	case r.Sampled == 0:
		return "none logged: only rules with log: true and the default policies are logged"
	case r.Share == nil:
		return fmt.Sprintf("top flows of the %s (share unknown: no counter reading in the period)", logged)
	}
	return fmt.Sprintf("top flows from a %s sample (%s)", percent(*r.Share), logged)
}

// percent renders a share, never rounding up to a whole that it is not.
func percent(share float64) string {
	p := share*100 + 1e-9 // 0.29 * 100 is 28.999999999999996
	switch {
	case p >= 100:
		return "100%"
	case p >= 10:
		return fmt.Sprintf("%d%%", int(p))
	case p >= 0.1:
		return fmt.Sprintf("%.1f%%", math.Floor(p*10)/10)
	}
	return "<0.1%"
}

// countCell renders a sampled count: exact, or the range its error bound
// allows (at least count−err, at most count).
func countCell(count, errBound uint64) string {
	if errBound == 0 {
		return strconv.FormatUint(count, 10)
	}
	return fmt.Sprintf("%d-%d", count-min(errBound, count), count)
}

func portCell(port uint16) string {
	if port == 0 {
		return "-"
	}
	return strconv.Itoa(int(port))
}

// localMinute renders a period's bound in local time.
func localMinute(t time.Time) string { return t.Local().Format("2006-01-02 15:04 MST") }

// statusDrops is how many flows status shows; drops shows more.
const statusDrops = 5

// printStatusDrops prints status's denied-traffic table: the heaviest
// logged flows of the last 24 hours, across rules.
func printStatusDrops(w io.Writer, v *daemon.DropsView) {
	type row struct {
		rule string
		f    audit.FlowCount
	}
	var rows []row
	for _, r := range v.Rules {
		for _, f := range r.TopFlows {
			rows = append(rows, row{r.Rule, f})
		}
	}
	if len(rows) == 0 {
		return
	}
	slices.SortStableFunc(rows, func(x, y row) int { return cmp.Compare(y.f.Count, x.f.Count) })
	fmt.Fprintln(w, "denied in the last 24h, heaviest flows of the logged sample:")
	t := newTable(w)
	fmt.Fprintln(t, "RULE\tSOURCE\tPROTO\tPORT\tLOGGED")
	for _, r := range rows[:min(len(rows), statusDrops)] {
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", r.rule, r.f.Source, r.f.Protocol, portCell(r.f.Port), countCell(r.f.Count, r.f.ErrorBound))
	}
	t.Flush()
	if len(rows) > statusDrops {
		fmt.Fprintln(w, "… see edgefwctl drops")
	}
}
