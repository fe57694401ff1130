package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// invalidPolicyError is a policy that failed to load or compile. Its
// problems are printed one a line (FILE:LINE:COL: path: message) before
// the error itself, which only summarises.
type invalidPolicyError struct {
	file     string
	problems policy.ErrorList
}

// Error implements error.
func (e *invalidPolicyError) Error() string {
	return fmt.Sprintf("%s: invalid policy (%s)", e.file, plural(len(e.problems), "problem"))
}

// Unwrap returns the underlying error.
func (e *invalidPolicyError) Unwrap() error { return e.problems }

// loaded is a policy as edgefwctl loaded it: validated and compiled, with
// the bytes of its files, which apply and diff send to edgefwd.
type loaded struct {
	pol   *policy.Policy
	rs    *nft.Ruleset
	files policy.Bundle
}

// loadPolicy loads and validates a policy, then compiles it, so that a
// policy the compiler refuses is invalid input too, as it is for the daemon.
func loadPolicy(file string) (*loaded, error) {
	pol, files, err := policy.ReadBundle(file)
	if err != nil {
		list, ok := errors.AsType[policy.ErrorList](err)
		if !ok {
			list = policy.ErrorList{{Pos: policy.Pos{File: file}, Msg: err.Error(), Err: err}}
		}
		return nil, &invalidPolicyError{file: file, problems: list}
	}
	rs, err := nft.Compile(pol)
	if err != nil {
		return nil, &invalidPolicyError{file: file, problems: compileProblems(file, pol, err)}
	}
	return &loaded{pol: pol, rs: rs, files: files}, nil
}

// compileProblems positions the compiler's errors. nft.Compile reports each
// as `rule "NAME": …`, which is enough to find the rule in the policy.
func compileProblems(file string, pol *policy.Policy, err error) policy.ErrorList {
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	var list policy.ErrorList
	for _, e := range errs {
		list = append(list, compileProblem(file, pol, e))
	}
	return list
}

func compileProblem(file string, pol *policy.Policy, err error) *policy.Error {
	text := err.Error()
	// Rule paths are per file, as in the policy package's own errors:
	// a drop-in's first rule is rules[0] of that drop-in.
	perFile := map[string]int{}
	for _, r := range pol.Rules {
		i := perFile[r.Pos.File]
		perFile[r.Pos.File]++
		if rest, ok := strings.CutPrefix(text, fmt.Sprintf("rule %q: ", r.Name)); ok {
			return &policy.Error{Pos: r.Pos, Path: fmt.Sprintf("rules[%d]", i), Msg: "cannot compile: " + rest, Err: err}
		}
	}
	return &policy.Error{Pos: policy.Pos{File: file}, Msg: "cannot compile: " + text, Err: err}
}

// load is loadPolicy for commands that print problems as text: each on
// stderr before the summary error.
func (a *app) load(file string) (*loaded, error) {
	l, err := loadPolicy(file)
	a.printProblems(err)
	return l, err
}

// printProblems prints the problems of an invalid policy on stderr, one a
// line.
func (a *app) printProblems(err error) {
	if ipe, ok := errors.AsType[*invalidPolicyError](err); ok {
		for _, p := range ipe.problems {
			fmt.Fprintln(a.stderr, p.Error())
		}
	}
}

// validationResult is validate's JSON output.
type validationResult struct {
	File     string            `json:"file"`
	Valid    bool              `json:"valid"`
	Rules    int               `json:"rules"`
	Sets     int               `json:"sets"`
	Tunnels  int               `json:"tunnels"`
	Problems []validationIssue `json:"problems"`
	// Warnings are the key files edgefwctl may not look at, which the
	// daemon checks when it applies the policy.
	Warnings []validationIssue `json:"warnings,omitempty"`
}

// validationIssue is one policy.Error in JSON.
type validationIssue struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
	// Text is the whole error as the text output prints it.
	Text string `json:"text"`
}

func (a *app) validateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a policy file and its drop-ins without applying it",
		Long: `validate loads FILE, the drop-ins in policy.d/ beside it and the set files
they name, checks them as the daemon would, and compiles the result. It does
not need the daemon. The tunnels' key files are checked as the daemon will
read them (format, mode, owner, no symbolic link), for the user it runs as:
the owner of its control socket, else edgefw where the package's unit is
installed, else you. A missing private key is fine where the daemon can
create it; a missing preshared key is not. --no-key-files leaves them out,
for a policy checked away from its host (in CI, before a GitOps merge):
apply and edgefwd always check them.

A valid policy prints "FILE: valid (N rules, M sets, K tunnels)". An invalid
one prints each problem on stderr as FILE:LINE:COL: field.path: message, and
exits 1.`,
		Example: `  edgefwctl validate /etc/edgefw/policy.yaml
  edgefwctl validate -o json candidate.yaml | jq '.problems[].text'
  edgefwctl validate --no-key-files sites/store-42/policy.yaml   # in CI, without the host's keys`,
		Args: oneArg("the policy file"),
	}
	out := addOutputFlag(cmd)
	noKeyFiles := addNoKeyFilesFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		file := args[0]
		if *out == outputJSON {
			return a.validateJSON(file, !*noKeyFiles)
		}
		l, err := a.loadCheckedText(file, !*noKeyFiles)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "%s: valid (%s, %s, %s)\n", file,
			plural(len(l.pol.Rules), "rule"), plural(len(l.pol.Sets), "set"), plural(len(l.pol.Tunnels), "tunnel"))
		return nil
	}
	return cmd
}

func (a *app) validateJSON(file string, keyFiles bool) error {
	l, warnings, err := a.loadChecked(file, keyFiles)
	res := validationResult{File: file, Valid: err == nil, Problems: []validationIssue{}}
	if l != nil {
		res.Rules, res.Sets, res.Tunnels = len(l.pol.Rules), len(l.pol.Sets), len(l.pol.Tunnels)
	}
	ipe, invalid := errors.AsType[*invalidPolicyError](err)
	if err != nil && !invalid {
		return err
	}
	if invalid {
		res.Problems = validationIssues(ipe.problems)
	}
	if len(warnings) > 0 {
		res.Warnings = validationIssues(warnings)
	}
	if werr := writeJSON(a.stdout, res); werr != nil {
		return werr
	}
	return err
}

// validationIssues renders problems for JSON.
func validationIssues(problems policy.ErrorList) []validationIssue {
	issues := []validationIssue{}
	for _, p := range problems {
		issues = append(issues, validationIssue{
			File: p.Pos.File, Line: p.Pos.Line, Column: p.Pos.Col, Path: p.Path, Message: p.Msg, Text: p.Error(),
		})
	}
	return issues
}

func (a *app) planCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan FILE",
		Short: "Print the exact nftables ruleset a policy compiles to",
		Long: `plan validates FILE like validate and prints the complete table inet edgefw
it compiles to, as nft text that "nft -f" loads. It does not need the daemon
and changes nothing.`,
		Example: `  edgefwctl plan /etc/edgefw/policy.yaml
  edgefwctl plan candidate.yaml > edgefw.nft && nft -c -f edgefw.nft`,
		Args: oneArg("the policy file"),
	}
	noKeyFiles := addNoKeyFilesFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		l, err := a.loadCheckedText(args[0], !*noKeyFiles)
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(a.stdout, l.rs.String())
		return err
	}
	return cmd
}

// addNoKeyFilesFlag adds --no-key-files to validate and plan.
func addNoKeyFilesFlag(cmd *cobra.Command) *bool {
	return cmd.Flags().Bool("no-key-files", false, "do not check the tunnels' key files (for a policy checked away from its host)")
}

func (a *app) applyCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Validate a policy and make the daemon run it",
		Long: `apply validates FILE locally (the tunnels' key files included), then sends it
to edgefwd, which applies it in one nftables transaction and reconciles the
tunnels.

Once confirmed (or at once, without --confirm-timeout) the policy stays in
force across reloads and restarts until the daemon's policy files change or
"edgefwctl reload --from-files"; "edgefwctl status" says who applied it and
when. With --confirm-timeout, the daemon restores the previous policy unless
"edgefwctl confirm" arrives in time: if the new policy cuts your session,
wait, and the old one comes back; a reload before the confirm returns to the
policy files.`,
		Example: `  edgefwctl apply /etc/edgefw/policy.yaml
  edgefwctl apply candidate.yaml --confirm-timeout 2m && edgefwctl status`,
		Args: oneArg("the policy file"),
	}
	out := addOutputFlag(cmd)
	cmd.Flags().DurationVar(&timeout, "confirm-timeout", 0, "roll back unless edgefwctl confirm arrives within this `DURATION` (e.g. 2m)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if timeout < 0 {
			return usageError(cmd, fmt.Errorf("--confirm-timeout %s: must not be negative", timeout))
		}
		file := args[0]
		l, err := a.loadCheckedText(file, true)
		if err != nil {
			return err
		}
		var resp *daemon.ApplyResponse
		var path string
		err = a.sendPolicy(file, l, func(sent daemon.PolicyRequest) (err error) {
			path = sent.Path
			resp, err = a.client().Apply(cmd.Context(), daemon.ApplyRequest{PolicyRequest: sent, ConfirmTimeout: daemon.Duration(timeout)})
			return err
		})
		return a.report(*out, "apply "+file, resp, err, func() {
			fmt.Fprintf(a.stdout, "applied %s\n", path)
			a.printApplyDetails(resp)
			if timeout > 0 && resp.Pending == nil {
				fmt.Fprintln(a.stderr, "edgefwctl: warning: the daemon armed no rollback; this policy is in force without confirmation")
			}
		})
	}
	return cmd
}

// report finishes a command that got an ApplyResponse: with -o json it
// prints the response, failed or not; otherwise, on success, it calls text.
// It returns the failure, if any, named by what.
func (a *app) report(out output, what string, resp *daemon.ApplyResponse, err error, text func()) error {
	if out == outputJSON && resp != nil {
		if werr := writeJSON(a.stdout, resp); werr != nil {
			return werr
		}
	}
	if (err != nil || !resp.OK) && out == outputText && resp != nil && resp.Pending != nil {
		// Failed only in part (tunnels): the firewall changed and its
		// rollback is armed, which the operator must not miss.
		printPending(a.stderr, resp.Pending)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !resp.OK {
		// A daemon answering 200 with OK false still failed.
		msg := resp.Error
		if msg == "" {
			msg = "edgefwd reported a failure without a reason"
		}
		return fmt.Errorf("%s: %s", what, msg)
	}
	if out == outputText {
		text()
	}
	return nil
}

// maxChangesShown caps the changes listed after an apply: a first apply
// adds every counter, set and rule.
const maxChangesShown = 10

// printApplyDetails prints what an apply wrote and, when a rollback is
// armed, the deadline to confirm by.
func (a *app) printApplyDetails(resp *daemon.ApplyResponse) {
	if info := resp.Apply; info != nil {
		if info.Messages == 0 {
			fmt.Fprintf(a.stdout, "the kernel already matched: nothing written (%s)\n", millis(info.DurationSeconds))
		} else {
			fmt.Fprintf(a.stdout, "wrote %s in one transaction (%s)\n", plural(info.Messages, "netlink message"), millis(info.DurationSeconds))
		}
		printChanges(a.stdout, info.Changes)
	}
	if p := resp.Pending; p != nil {
		printPending(a.stdout, p)
	}
}

// printChanges lists changes written or planned, at most maxChangesShown.
func printChanges(w io.Writer, changes []string) {
	for _, c := range changes[:min(len(changes), maxChangesShown)] {
		fmt.Fprintf(w, "  %s\n", c)
	}
	if more := len(changes) - maxChangesShown; more > 0 {
		fmt.Fprintf(w, "  … %d more (-o json lists them all)\n", more)
	}
}

// printPending says by when an armed rollback must be confirmed.
func printPending(w io.Writer, p *daemon.Pending) {
	left := time.Duration(p.SecondsLeft * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(w, "run `edgefwctl confirm` within %s or the previous policy is restored at %s\n",
		left, p.Deadline.In(time.Local).Format(time.TimeOnly))
}
