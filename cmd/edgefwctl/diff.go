package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/edgefw/edgefw/daemon"
)

// diffResult is diff's JSON output.
type diffResult struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	// Planned is what applying FILE would write, one line per object.
	Planned []string `json:"planned"`
}

func (a *app) diffCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff FILE",
		Short: "Show how a policy differs from the ruleset in the kernel",
		Long: `diff compiles FILE and compares its ruleset with table inet edgefw as the
kernel holds it, which edgefwd reads: a unified diff of nft text ("-" the
kernel, "+" FILE) with three lines of context, then what "edgefwctl apply
FILE" would write to the kernel. Nothing is applied.

Drift shows: a rule, set element, counter or chain deleted or changed
behind edgefw's back is missing or different on the "-" side, and a rule
that edgefw did not write (added or replaced by someone else) is a comment
with its handle, which "nft -a list chain inet edgefw CHAIN" shows in full.
edgefwd repairs drift within a second, so drift that stays means it cannot
(see "edgefwctl status" and its log).

It prints "no changes" when the kernel holds exactly FILE's ruleset, and
exits 0 either way. With an edgefwd older than this command, it compares
with the daemon's running ruleset instead, and says so on stderr.`,
		Example: `  edgefwctl diff /etc/edgefw/policy.yaml     # has the kernel drifted from the policy?
  edgefwctl diff candidate.yaml              # what would applying it change?
  edgefwctl diff -o json candidate.yaml | jq '.planned'`,
		Args: oneArg("the policy file"),
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		file := args[0]
		l, err := a.load(file)
		if err != nil {
			return err
		}
		base, err := a.diffBase(cmd.Context(), file, l)
		if err != nil {
			return err
		}
		oldLines, newLines := splitLines(base.text), splitLines(l.rs.String())
		if *out == outputJSON {
			res := diffResult{Added: []string{}, Removed: []string{}, Planned: []string{}}
			for _, e := range diffLines(oldLines, newLines) {
				switch e.op {
				case opAdd:
					res.Added = append(res.Added, e.text)
				case opDelete:
					res.Removed = append(res.Removed, e.text)
				}
			}
			res.Planned = append(res.Planned, base.changes...)
			return writeJSON(a.stdout, res)
		}
		text := unifiedDiff(base.label, file, oldLines, newLines, 3)
		if text == "" && len(base.changes) == 0 {
			_, err := fmt.Fprint(a.stdout, "no changes\n")
			return err
		}
		fmt.Fprint(a.stdout, text)
		if base.planned {
			a.printPlanned(file, base, text != "")
		}
		return nil
	}
	return cmd
}

// printPlanned says what applying file would write, after a blank line
// when it follows a diff.
func (a *app) printPlanned(file string, base *diffBase, afterDiff bool) {
	if afterDiff {
		fmt.Fprintln(a.stdout)
	}
	if len(base.changes) == 0 {
		fmt.Fprintf(a.stdout, "applying %s would write nothing\n", file)
		return
	}
	fmt.Fprintf(a.stdout, "applying %s would write %s:\n", file, plural(base.messages, "netlink message"))
	printChanges(a.stdout, base.changes)
}

// diffBase is what diff compares a policy with.
type diffBase struct {
	// label names it on the "---" line of the diff.
	label string
	text  string
	// planned is true when changes and messages say what applying the
	// policy would write.
	planned  bool
	changes  []string
	messages int
}

// diffBase asks edgefwd for the table in the kernel and for what applying
// the policy sent would write. An edgefwd that predates that request (404)
// gives its running ruleset instead, with a warning.
func (a *app) diffBase(ctx context.Context, file string, l *loaded) (*diffBase, error) {
	c := a.client()
	var d *daemon.Diff
	err := a.sendPolicy(file, l, func(sent daemon.PolicyRequest) (err error) {
		d, err = c.Diff(ctx, daemon.DiffRequest{PolicyRequest: sent})
		return err
	})
	if err == nil {
		return &diffBase{label: "kernel (via " + a.socket + ")", text: d.Kernel, planned: true, changes: d.Changes, messages: d.Messages}, nil
	}
	if apiErr, ok := errors.AsType[*daemon.APIError](err); !ok || apiErr.StatusCode != http.StatusNotFound {
		return nil, fmt.Errorf("compare with the kernel: %w", err)
	}
	fmt.Fprintln(a.stderr, "edgefwctl: warning: edgefwd cannot compare with the kernel (it is older than edgefwctl); comparing with its running ruleset instead")
	running, err := c.Ruleset(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the running ruleset: %w", err)
	}
	return &diffBase{label: "running (" + a.socket + ")", text: running.Text}, nil
}
