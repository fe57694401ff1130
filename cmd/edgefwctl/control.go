package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgefw/edgefw/daemon"
)

// control describes confirm, rollback and reload: a POST without a body
// whose outcome is an ApplyResponse.
type control struct {
	use, short, long, example string
	// done is printed when the daemon sends no message.
	done string
	// applies is set when the operation applies a policy, so that what it
	// wrote is worth showing. (The daemon attaches its last apply to every
	// response; after a confirm that is an older apply.)
	applies bool
	call    func(*daemon.Client, context.Context) (*daemon.ApplyResponse, error)
}

func (a *app) controlCmd(c control) *cobra.Command {
	cmd := &cobra.Command{
		Use:     c.use,
		Short:   c.short,
		Long:    c.long,
		Example: c.example,
		Args:    args(cobra.NoArgs),
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		resp, err := c.call(a.client(), cmd.Context())
		return a.report(*out, c.use, resp, err, func() { a.printOutcome(resp, c.done, c.applies) })
	}
	return cmd
}

// printOutcome prints the daemon's message, or done without one, and,
// if applies, what was written.
func (a *app) printOutcome(resp *daemon.ApplyResponse, done string, applies bool) {
	msg := resp.Message
	if msg == "" {
		msg = done
	}
	fmt.Fprintln(a.stdout, msg)
	if applies {
		a.printApplyDetails(resp)
	}
}

func (a *app) confirmCmd() *cobra.Command {
	return a.controlCmd(control{
		use:   "confirm",
		short: "Keep the policy applied with --confirm-timeout",
		long: `confirm tells edgefwd to keep the policy of the last "apply --confirm-timeout"
and disarms its rollback. It fails when nothing awaits confirmation.`,
		example: `  edgefwctl apply candidate.yaml --confirm-timeout 2m
  edgefwctl confirm`,
		done: "confirmed",
		call: (*daemon.Client).Confirm,
	})
}

func (a *app) rollbackCmd() *cobra.Command {
	return a.controlCmd(control{
		use:   "rollback",
		short: "Restore the policy that ran before an unconfirmed apply",
		long: `rollback restores, at once, the policy that was in force before the last
"apply --confirm-timeout", without waiting for the timeout. With nothing
awaiting confirmation, the daemon reloads instead (see reload).`,
		example: `  edgefwctl rollback`,
		done:    "rolled back",
		applies: true,
		call:    (*daemon.Client).Rollback,
	})
}

func (a *app) reloadCmd() *cobra.Command {
	var fromFiles bool
	cmd := a.controlCmd(control{
		use:   "reload",
		short: "Make the daemon read and apply its policy files again",
		long: `reload makes edgefwd read its policy file and drop-ins again and apply them,
like SIGHUP or "systemctl reload edgefwd". An apply awaiting confirmation is
replaced by the files' policy and its rollback disarmed.

A policy given by "apply" and confirmed (or applied without
--confirm-timeout) stays in force across reloads and restarts until the
policy files change: reload then applies it again. --from-files returns to
the policy files even though they did not change.`,
		example: `  edgefwctl reload
  edgefwctl reload --from-files   # leave the policy given by apply, back to the files
  edgefwctl reload -o json`,
		done:    "reloaded",
		applies: true,
		call: func(c *daemon.Client, ctx context.Context) (*daemon.ApplyResponse, error) {
			if fromFiles {
				return c.ReloadFromFiles(ctx)
			}
			return c.Reload(ctx)
		},
	})
	cmd.Flags().BoolVar(&fromFiles, "from-files", false, "return to the policy files, leaving a policy given by apply")
	return cmd
}

func (a *app) removeCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Delete table inet edgefw from the kernel",
		Long: `remove asks edgefwd to delete table inet edgefw: the host is then no longer
filtered by edgefw until the next reload or apply. It asks you to type
` + daemon.RemoveConfirmation + ` unless --yes is given, and refuses without
--yes when standard input is not a terminal.`,
		Example: `  edgefwctl remove
  edgefwctl remove --yes`,
		Args: args(cobra.NoArgs),
	}
	out := addOutputFlag(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if !yes {
			if err := a.confirmRemove(cmd); err != nil {
				return err
			}
		}
		resp, err := a.client().Remove(cmd.Context(), daemon.RemoveRequest{Confirm: daemon.RemoveConfirmation})
		return a.report(*out, "remove", resp, err, func() { a.printOutcome(resp, "table inet edgefw removed", false) })
	}
	return cmd
}

// confirmRemove asks the operator to type the confirmation word.
func (a *app) confirmRemove(cmd *cobra.Command) error {
	in := cmd.InOrStdin()
	if !a.isTerminal(in) {
		return errors.New("remove: standard input is not a terminal; nothing removed (pass --yes to remove without asking)")
	}
	fmt.Fprintf(a.stderr, "This deletes table inet edgefw: the host is no longer filtered by edgefw until the next reload.\nType %s to confirm: ", daemon.RemoveConfirmation)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("remove: read confirmation: %w", err)
	}
	if strings.TrimSpace(line) != daemon.RemoveConfirmation {
		return errors.New("remove: not confirmed; nothing removed")
	}
	return nil
}

// versionTimeout bounds version's question to the daemon.
const versionTimeout = 3 * time.Second

// versionInfo is version's JSON output.
type versionInfo struct {
	Edgefwctl string `json:"edgefwctl"`
	// Edgefwd is the daemon's version, empty when it did not answer.
	Edgefwd string `json:"edgefwd,omitempty"`
	// EdgefwdError says why the daemon did not answer.
	EdgefwdError string `json:"edgefwdError,omitempty"`
}

func (a *app) versionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the versions of edgefwctl and of the running edgefwd",
		Long: `version prints the version of edgefwctl and, when the daemon answers, of
edgefwd. It succeeds when the daemon is not running.`,
		Example: `  edgefwctl version
  edgefwctl version -o json`,
		Args: args(cobra.NoArgs),
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		info := versionInfo{Edgefwctl: version}
		// A wedged daemon must not hang a version query.
		ctx, cancel := context.WithTimeout(cmd.Context(), versionTimeout)
		defer cancel()
		if st, err := a.client().Status(ctx); err != nil {
			info.EdgefwdError = err.Error()
		} else {
			info.Edgefwd = st.Version
		}
		if *out == outputJSON {
			return writeJSON(a.stdout, info)
		}
		fmt.Fprintf(a.stdout, "edgefwctl %s\n", info.Edgefwctl)
		if info.Edgefwd != "" {
			fmt.Fprintf(a.stdout, "edgefwd   %s\n", info.Edgefwd)
		} else {
			fmt.Fprintf(a.stdout, "edgefwd   unknown: %s\n", info.EdgefwdError)
		}
		return nil
	}
	return cmd
}
