package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/wg"
)

// defaultSocket is where edgefwd listens unless told otherwise (SPEC.md).
const defaultSocket = "/run/edgefw/edgefwd.sock"

// app holds what every command shares: where output goes, the daemon's
// socket, and the clock and terminal probe that tests replace.
type app struct {
	stdout, stderr io.Writer
	socket         string
	now            func() time.Time
	isTerminal     func(io.Reader) bool
	// keyReader is the user the daemon reads key files as.
	keyReader func() wg.KeyReader
}

func newApp(stdout, stderr io.Writer) *app {
	a := &app{stdout: stdout, stderr: stderr, now: time.Now, isTerminal: isTerminal}
	a.keyReader = func() wg.KeyReader { return daemonKeyReader(a.socket, packagedDaemonUser) }
	return a
}

// newRootCmd builds the edgefwctl command tree writing to stdout and stderr.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	return newApp(stdout, stderr).rootCmd()
}

// execute runs the command tree and returns the process exit code: 0 on
// success, 1 on any failure, usage errors included. Every error is printed
// once, on stderr, prefixed with the program name.
func execute(ctx context.Context, root *cobra.Command, stderr io.Writer) int {
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "edgefwctl: %v\n", err)
		return 1
	}
	return 0
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "edgefwctl",
		Short: "Operate the edgefw host firewall and WireGuard daemon",
		Long: `edgefwctl checks and previews edgefw host policies, and controls the
edgefwd daemon through its control socket: apply a policy (optionally with
commit-confirm), reload, inspect rule counters, tunnels and denied packets.

validate, plan, keygen and pubkey work without the daemon. Talking to the
daemon needs root or membership of group edgefw.

Exit status: 0 on success, 1 on failure or invalid input.`,
		Example: `  edgefwctl validate /etc/edgefw/policy.yaml
  edgefwctl apply new-policy.yaml --confirm-timeout 2m
  edgefwctl status
  edgefwctl --socket /tmp/edgefwd.sock status -o json`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Without this, cobra would print the help for a missing command
		// and still exit 0; an unknown command must fail.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.DisableAutoGenTag = true // reproducible man pages
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError(c, err) })
	root.PersistentFlags().StringVar(&a.socket, "socket", defaultSocket, "`PATH` of edgefwd's control socket")

	root.AddCommand(
		a.validateCmd(), a.planCmd(), a.diffCmd(), a.applyCmd(),
		a.confirmCmd(), a.rollbackCmd(), a.reloadCmd(), a.removeCmd(),
		a.statusCmd(), a.peersCmd(), a.dropsCmd(), a.traceCmd(), a.journalCmd(), a.reportCmd(),
		a.keygenCmd(), a.pubkeyCmd(),
		a.versionCmd(), a.completionCmd(), a.genManCmd(root),
	)
	root.InitDefaultHelpCmd()
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			c.Example = "  edgefwctl help apply"
		}
	}
	return root
}

// usageError says how to get help for a command used wrongly.
func usageError(c *cobra.Command, err error) error {
	return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
}

// args wraps a cobra argument check so that its error points to the help.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if err := check(c, a); err != nil {
			return usageError(c, err)
		}
		return nil
	}
}

// oneArg requires exactly one argument, described by what.
func oneArg(what string) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if len(a) != 1 {
			return usageError(c, fmt.Errorf("%s takes one argument, %s; got %d", c.Name(), what, len(a)))
		}
		return nil
	}
}

func (a *app) client() *daemon.Client { return daemon.NewClient(a.socket) }

// output is the value of -o/--output.
type output string

const (
	outputText output = "text"
	outputJSON output = "json"
)

// String implements pflag.Value.
func (o *output) String() string { return string(*o) }

// Set accepts text or json.
func (o *output) Set(v string) error {
	switch output(v) {
	case outputText, outputJSON:
		*o = output(v)
		return nil
	}
	return fmt.Errorf("output format %q: must be text or json", v)
}

// Type names the value in help.
func (o *output) Type() string { return "text|json" }

// addOutputFlag gives a data command its -o/--output flag.
func addOutputFlag(cmd *cobra.Command) *output {
	o := outputText
	cmd.Flags().VarP(&o, "output", "o", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return &o
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// isTerminal reports whether r is a terminal, for prompts.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// plural renders "1 rule", "2 rules".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
