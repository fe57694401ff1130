package main

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

func (a *app) statusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's policy, rule counters, tunnels and recent drops",
		Long: `status shows the running policy and its last apply, any apply awaiting
confirmation, drift repairs, every rule counter (user rules in policy order,
implicit rules, default policies; a rule in audit mode shows its action as
"drop (audit)": it counts what it would drop and lets it through), the
tunnels and their peers, the heaviest flows of denied traffic of the last 24
hours (edgefwctl drops shows more) and the warnings an operator should read,
such as other tables hooked where edgefw is.

-o json prints the daemon's status document as the control API returns it.`,
		Example: `  edgefwctl status
  edgefwctl status -o json | jq '.rules[] | select(.packets > 0)'`,
		Args: args(cobra.NoArgs),
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c := a.client()
		st, err := c.Status(cmd.Context())
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		if *out == outputJSON {
			return writeJSON(a.stdout, st)
		}
		drops, dropsErr := c.Drops(cmd.Context(), audit.Query{Since: defaultDropsSince, Top: statusDrops})
		now := a.now()
		w := a.stdout
		printStatusHeader(w, st, now)
		fmt.Fprintln(w)
		printRules(w, st.Rules, st.Cluster != nil)
		fmt.Fprintln(w)
		printTunnels(w, st.Tunnels, now)
		if dropsErr != nil {
			st.Warnings = append(st.Warnings, "cannot read drops: "+dropsErr.Error())
		} else if slices.ContainsFunc(drops.Rules, func(r daemon.RuleDrops) bool { return len(r.TopFlows) > 0 }) {
			fmt.Fprintln(w)
			printStatusDrops(w, drops)
		}
		if len(st.Warnings) > 0 {
			fmt.Fprintln(w)
			for _, warn := range st.Warnings {
				fmt.Fprintf(w, "warning: %s\n", warn)
			}
		}
		return nil
	}
	return cmd
}

// printStatusHeader prints the daemon, policy and apply summary lines.
func printStatusHeader(w io.Writer, st *daemon.Status, now time.Time) {
	t := newTable(w)
	defer t.Flush()
	fmt.Fprintf(t, "edgefwd:\t%s, up %s\n", orDash(st.Version), shortDuration(seconds(st.UptimeSeconds)))

	pol := "none"
	if st.Policy.Path != "" {
		pol = st.Policy.Path
		if h := st.Policy.Hash; h != "" {
			pol += fmt.Sprintf(" (sha256 %s, %s)", h[:min(len(h), 12)], plural(max(len(st.Policy.Files), 1), "file"))
		}
		if st.Policy.Applied {
			pol += ", applied with edgefwctl apply"
			if by := st.Policy.AppliedBy; by != nil {
				pol += " by " + by.String()
			}
			if at := st.Policy.AppliedAt; !at.IsZero() {
				pol += " " + ago(now, at)
			}
		}
	}
	fmt.Fprintf(t, "policy:\t%s\n", pol)
	if pf := st.PolicyFiles; pf != nil {
		files := "differ from the running policy"
		switch {
		case pf.Error != "":
			files = "do not load: " + pf.Error
		case !pf.Differs:
			files = "compile to the same ruleset as the running policy"
		}
		fmt.Fprintf(t, "policy files:\t%s %s; not in force until they change or edgefwctl reload --from-files\n", pf.Path, files)
	}

	fmt.Fprintf(t, "last apply:\t%s\n", applySummary(st.LastApply, now))
	if st.LastApply != nil && !st.LastApply.OK && st.LastSuccess != nil {
		fmt.Fprintf(t, "last success:\t%s\n", applySummary(st.LastSuccess, now))
	}
	if p := st.Pending; p != nil {
		fmt.Fprintf(t, "pending:\t%s awaits edgefwctl confirm: %s left, then the previous policy is restored (at %s)\n",
			p.Path, seconds(p.SecondsLeft).Round(time.Second), p.Deadline.In(time.Local).Format(time.TimeOnly))
	}
	fmt.Fprintf(t, "drift repairs:\t%d\n", st.DriftRepairs)
	if st.Cluster != nil {
		fmt.Fprintf(t, "cluster:\t%s\n", clusterSummary(st.Cluster))
	}
	if st.Journal != nil {
		fmt.Fprintf(t, "journal:\t%s\n", journalSummary(st.Journal))
	}
}

// applySummary renders an apply attempt: "ok 3m ago (12 ms, trigger
// file-change)" or "failed 3m ago (trigger reload): why".
func applySummary(info *daemon.ApplyInfo, now time.Time) string {
	if info == nil {
		return "none yet"
	}
	if info.OK {
		return fmt.Sprintf("ok %s (%s, trigger %s)", ago(now, info.Time), millis(info.DurationSeconds), orDash(info.Trigger))
	}
	return fmt.Sprintf("failed %s (trigger %s): %s", ago(now, info.Time), orDash(info.Trigger), info.Error)
}

// printRules prints the rule counter table; with sources, where each
// rule was written (a file or a cluster object).
func printRules(w io.Writer, rules []daemon.RuleStatus, sources bool) {
	if len(rules) == 0 {
		fmt.Fprintln(w, "no rules")
		return
	}
	t := newTable(w)
	header := "RULE\tDIRECTION\tACTION\tKIND\tPACKETS\tBYTES"
	if sources {
		header += "\tSOURCE"
	}
	fmt.Fprintln(t, header)
	for _, r := range rules {
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%d\t%s", r.Name, orDash(r.Direction), ruleAction(r.Action, r.Mode), orDash(r.Kind), r.Packets, humanBytes(r.Bytes))
		if sources {
			fmt.Fprintf(t, "\t%s", orDash(r.Source))
		}
		fmt.Fprintln(t)
	}
	t.Flush()
}

// ruleAction shows a rule's action, and for a rule in audit mode that it
// only counts what it would do: "drop (audit)".
func ruleAction(action, mode string) string {
	if mode == string(policy.Audit) {
		return orDash(action) + " (audit)"
	}
	return orDash(action)
}

// printTunnels prints one row per peer (one per tunnel without peers),
// then the tunnels' and peers' errors.
func printTunnels(w io.Writer, tunnels []wg.TunnelStatus, now time.Time) {
	if len(tunnels) == 0 {
		fmt.Fprintln(w, "no tunnels")
		return
	}
	t := newTable(w)
	fmt.Fprintln(t, "INTERFACE\tBACKEND\tPEER\tENDPOINT\tHANDSHAKE\tRX\tTX\tUP")
	var problems []string
	for _, tun := range tunnels {
		if tun.Error != "" {
			problems = append(problems, fmt.Sprintf("tunnel %s: %s", tun.Name, tun.Error))
		}
		if len(tun.Peers) == 0 {
			fmt.Fprintf(t, "%s\t%s\t-\t-\t-\t-\t-\t-\n", tun.Name, orDash(tun.Backend))
			continue
		}
		for _, p := range tun.Peers {
			name := peerName(p)
			if p.Error != "" {
				problems = append(problems, fmt.Sprintf("peer %s/%s: %s", tun.Name, name, p.Error))
			}
			fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tun.Name, orDash(tun.Backend), name, orDash(p.Endpoint),
				ago(now, p.LastHandshake), humanBytes(nonNegative(p.ReceiveBytes)), humanBytes(nonNegative(p.TransmitBytes)), yesNo(p.Up))
		}
	}
	t.Flush()
	for _, p := range problems {
		fmt.Fprintf(w, "error: %s\n", p)
	}
}

// peerName names a peer for tables; a peer running on the interface that
// the policy does not declare is shown by the start of its public key.
func peerName(p wg.PeerStatus) string {
	if p.Name != "" {
		return p.Name
	}
	return "undeclared:" + p.PublicKey[:min(len(p.PublicKey), 8)]
}

func nonNegative(n int64) uint64 { return uint64(max(n, 0)) }

func (a *app) peersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "Show the WireGuard tunnels and their peers' health",
		Long: `peers lists every declared tunnel with its backend (kernel or userspace) and,
for each peer, its current endpoint, the time since its last handshake,
bytes received and sent, and whether it is up (a handshake within 180 s).`,
		Example: `  edgefwctl peers
  edgefwctl peers -o json`,
		Args: args(cobra.NoArgs),
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		tunnels, err := a.client().Peers(cmd.Context())
		if err != nil {
			return fmt.Errorf("peers: %w", err)
		}
		if *out == outputJSON {
			if tunnels == nil {
				tunnels = []wg.TunnelStatus{}
			}
			return writeJSON(a.stdout, tunnels)
		}
		printTunnels(a.stdout, tunnels, a.now())
		return nil
	}
	return cmd
}
