package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// defaultPolicyPath is the policy trace reads when edgefwd is not running
// and no --policy is given (SPEC.md).
const defaultPolicyPath = "/etc/edgefw/policy.yaml"

// traceHelp is trace's long help.
const traceHelp = `trace follows one packet through the compiled ruleset, rule by rule, as the
kernel does, and says which rule decides it: a rule of the policy, an
implicit rule (established/related, invalid, loopback, ICMPv6 neighbour
discovery, ICMP errors, failsafe ports, tunnel listen ports) or the default
policy of the direction; what it does (accept, drop, reject and how); and
the counter it counts in, as "nft list counters" and the metrics name it.
It computes this from the policy; it sends nothing and reads nothing from
the kernel.

PROTO is tcp, udp, sctp, icmp or icmpv6. SRC and DST are IPv4 or IPv6
addresses; tcp, udp and sctp need DST:PORT ([IPv6]:PORT), icmp and icmpv6
take no port (--icmp-type says which message; echo-request by default).
--direction is the hook: input (default; packets for this host), output
(sent by it) or forward (routed through it). --iif names the interface an
input or forwarded packet comes in on, --oif the one an output or forwarded
packet leaves by: a rule matching an interface matches only when you name
it, and trace notes the rules an unnamed interface may hide. Packets from
or to loopback addresses use lo; so do those the host sends to one of its
own addresses, which trace cannot know: say --iif lo or --oif lo. --state is the packet's conntrack state:
new (the first packet of a connection; the default), established, related
or invalid.

Without --policy, trace asks edgefwd for its running policy's path, compiles
that file and checks that it gives exactly the ruleset edgefwd runs, and
fails if not (the file changed since it was applied, or edgefwd runs a safe
fallback): trace the file with --policy then, or reload. When edgefwd is not
running, trace reads ` + defaultPolicyPath + ` and says so on stderr.
--policy FILE traces FILE (and its drop-ins) without asking edgefwd.

Rate and connection limits are not simulated: trace takes the packet to be
within them, and lists them. Exit status: 0 with a verdict, whatever it is;
1 on invalid input.`

// traceResult is trace's JSON output: the verdict and what was traced.
type traceResult struct {
	nft.Verdict
	// Policy is the policy file whose ruleset was traced.
	Policy string `json:"policy"`
	// Running is true when that ruleset is the one edgefwd runs.
	Running bool `json:"running"`
	// Source is where the deciding policy rule is written (FILE:LINE:COL);
	// "" for implicit rules and default policies.
	Source string `json:"source,omitempty"`
}

// traceFlags are trace's options.
type traceFlags struct {
	direction, iif, oif, state, icmpType, policy string
	verbose                                      bool
}

func (a *app) traceCmd() *cobra.Command {
	var f traceFlags
	cmd := &cobra.Command{
		Use:   "trace PROTO SRC DST[:PORT]",
		Short: "Say which rule decides a packet, and the counter it counts in",
		Long:  traceHelp,
		Example: `  edgefwctl trace tcp 198.51.100.7 192.0.2.1:22
  edgefwctl trace udp 2001:db8::7 [2001:db8::1]:53 --iif eth0
  edgefwctl trace icmpv6 fe80::1 ff02::1 --icmp-type nd-neighbor-solicit
  edgefwctl trace tcp 192.0.2.1 10.20.0.5:3000 --direction output --oif wg0
  edgefwctl trace tcp 10.42.0.5 198.51.100.1:443 --direction forward --iif cni0 --oif eth0
  edgefwctl trace --policy candidate.yaml -v -o json tcp 203.0.113.9 192.0.2.1:6443`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 3 {
				return usageError(c, fmt.Errorf("trace takes three arguments, PROTO SRC DST[:PORT]; got %d", len(args)))
			}
			return nil
		},
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []string{"tcp", "udp", "sctp", "icmp", "icmpv6"}, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
	}
	out := addOutputFlag(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.direction, "direction", string(policy.Input), "the hook the packet goes through: input, output or forward")
	fl.StringVar(&f.iif, "iif", "", "the `INTERFACE` an input or forwarded packet comes in on")
	fl.StringVar(&f.oif, "oif", "", "the `INTERFACE` an output or forwarded packet leaves by")
	fl.StringVar(&f.state, "state", string(nft.CtNew), "the packet's conntrack state: new, established, related or invalid")
	fl.StringVar(&f.icmpType, "icmp-type", "", "the icmp or icmpv6 message `TYPE`, by nft's name or number (default echo-request)")
	fl.StringVar(&f.policy, "policy", "", "trace this policy `FILE` instead of the one edgefwd runs")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "also list the rules the packet passed, and why each did not decide")
	_ = cmd.RegisterFlagCompletionFunc("direction", cobra.FixedCompletions([]string{"input", "output", "forward"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("state", cobra.FixedCompletions([]string{"new", "established", "related", "invalid"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := parsePacket(args, f)
		if err != nil {
			return usageError(cmd, err)
		}
		res, err := a.traceRuleset(cmd.Context(), f.policy)
		if err != nil {
			return err
		}
		res.Verdict = nft.Trace(res.rs, p)
		if res.Kind == nft.KindUser {
			if r := findRule(res.pol, res.Rule); r != nil {
				res.Source = r.Pos.String()
			}
		}
		if *out == outputJSON {
			return writeJSON(a.stdout, res.traceResult)
		}
		printTrace(a.stdout, &res.traceResult, f.verbose)
		return nil
	}
	return cmd
}

// parsePacket reads trace's arguments and flags into a packet, or says
// which is wrong and what would be valid.
func parsePacket(args []string, f traceFlags) (nft.Packet, error) {
	p := nft.Packet{
		Direction: policy.Direction(f.direction), Protocol: policy.Protocol(strings.ToLower(args[0])),
		Iif: f.iif, Oif: f.oif, State: nft.CtState(f.state),
	}
	switch p.Protocol {
	case policy.TCP, policy.UDP, policy.SCTP, policy.ICMP, policy.ICMPv6:
	default:
		return p, fmt.Errorf("PROTO %q: use tcp, udp, sctp, icmp or icmpv6", args[0])
	}
	src, err := netip.ParseAddr(args[1])
	if err != nil {
		if _, perr := netip.ParseAddrPort(args[1]); perr == nil {
			return p, fmt.Errorf("SRC %q: give the address alone, without a port (rules match destination ports only)", args[1])
		}
		return p, fmt.Errorf("SRC %q: not an IP address; use e.g. 198.51.100.7 or 2001:db8::7", args[1])
	}
	p.Src = src
	if p.Dst, p.DstPort, err = parseDestination(args[2]); err != nil {
		return p, err
	}
	if p.Protocol.HasPorts() && p.DstPort == 0 {
		return p, fmt.Errorf("DST %q: %s needs a port: IPv4:PORT or [IPv6]:PORT, e.g. 192.0.2.1:22 or [2001:db8::1]:22", args[2], p.Protocol)
	}
	icmp := p.Protocol == policy.ICMP || p.Protocol == policy.ICMPv6
	switch {
	case f.icmpType != "" && !icmp:
		return p, fmt.Errorf("--icmp-type %s: only for icmp and icmpv6, not %s", f.icmpType, p.Protocol)
	case f.icmpType != "":
		if p.ICMPType, err = nft.ParseICMPType(p.Protocol == policy.ICMPv6, f.icmpType); err != nil {
			return p, fmt.Errorf("--icmp-type: %w", err)
		}
	case p.Protocol == policy.ICMP:
		p.ICMPType = nft.ICMPEchoRequest
	case p.Protocol == policy.ICMPv6:
		p.ICMPType = nft.ICMPv6EchoRequest
	}
	if err := p.Validate(); err != nil {
		return p, errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return p, nil
}

// parseDestination reads DST[:PORT]: an address alone, IPv4:PORT or
// [IPv6]:PORT.
func parseDestination(s string) (netip.Addr, uint16, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, 0, nil
	}
	host, portText, ok := cutPort(s)
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("DST %q: use an address, IPv4:PORT or [IPv6]:PORT, e.g. 192.0.2.1:22 or [2001:db8::1]:22", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("DST %q: %q is not an IP address; use IPv4:PORT or [IPv6]:PORT, e.g. 192.0.2.1:22 or [2001:db8::1]:22", s, host)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return netip.Addr{}, 0, fmt.Errorf("DST %q: port %q is not a number from 1 to 65535", s, portText)
	}
	return a, uint16(port), nil
}

// cutPort splits HOST:PORT, with an IPv6 host in brackets.
func cutPort(s string) (host, port string, ok bool) {
	if rest, found := strings.CutPrefix(s, "["); found {
		host, port, ok = strings.Cut(rest, "]:")
		return host, port, ok
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.Count(s, ":") > 1 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// tracedRuleset is the ruleset trace follows a packet through.
type tracedRuleset struct {
	traceResult
	rs  *nft.Ruleset
	pol *policy.Policy
}

// traceRuleset compiles the policy to trace: file, or else the policy
// edgefwd runs, checked against its running ruleset, or else, without
// edgefwd, the default policy file.
func (a *app) traceRuleset(ctx context.Context, file string) (*tracedRuleset, error) {
	if file != "" {
		l, err := a.load(file)
		if err != nil {
			return nil, err
		}
		return &tracedRuleset{traceResult: traceResult{Policy: file}, rs: l.rs, pol: l.pol}, nil
	}
	c := a.client()
	st, err := c.Status(ctx)
	if sockErr, ok := errors.AsType[*daemon.SocketError](err); ok && sockErr.NotRunning() {
		fmt.Fprintf(a.stderr, "edgefwctl: edgefwd is not running (no daemon at %s): tracing %s, which may differ from the ruleset in the kernel\n", sockErr.Path, defaultPolicyPath)
		return a.traceRuleset(ctx, defaultPolicyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("trace: ask edgefwd for its policy: %w (or trace a file with --policy FILE)", err)
	}
	running, err := c.Ruleset(ctx)
	if err != nil {
		return nil, fmt.Errorf("trace: read the running ruleset: %w", err)
	}
	path := st.Policy.Path
	if path == "" {
		path = defaultPolicyPath
	}
	l, err := a.load(path)
	if err != nil {
		return nil, err
	}
	pol, rs := l.pol, l.rs
	if rs.String() != running.Text {
		return nil, fmt.Errorf("trace: edgefwd does not run what %s compiles to now (the file changed since it was applied, or edgefwd runs a safe fallback: see edgefwctl status); trace the file with --policy %s, or apply it with edgefwctl reload", path, path)
	}
	return &tracedRuleset{traceResult: traceResult{Policy: path, Running: true}, rs: rs, pol: pol}, nil
}

func findRule(pol *policy.Policy, name string) *policy.Rule {
	for i := range pol.Rules {
		if pol.Rules[i].Name == name {
			return &pol.Rules[i]
		}
	}
	return nil
}

// printTrace prints a verdict: its explanation, then the details, and with
// verbose the rules the packet passed.
func printTrace(w io.Writer, res *traceResult, verbose bool) {
	v := &res.Verdict
	fmt.Fprintln(w, v.Explanation)
	tw := newTable(w)
	action := string(v.Action)
	if v.RejectWith != "" {
		action += " with " + v.RejectWith
	}
	fmt.Fprintf(tw, "  action:\t%s\n", action)
	rule := v.Description
	switch {
	case v.Kind == nft.KindImplicit:
		rule = "implicit rule " + v.Counter + ": " + v.Description
	case res.Source != "":
		rule += " (" + res.Source + ")"
	}
	fmt.Fprintf(tw, "  decided by:\t%s\n", rule)
	fmt.Fprintf(tw, "  counter:\t%s\n", orDash(v.Counter))
	if v.Position > 0 {
		fmt.Fprintf(tw, "  kernel rule:\tchain %s, rule %d: %s\n", v.Chain, v.Position, v.Nft)
	}
	if v.Logged {
		fmt.Fprintf(tw, "  logged:\tto edgefwd's audit log (drops) while under its log rate\n")
	}
	for _, l := range v.Limits {
		fmt.Fprintf(tw, "  limit:\t%s\n", l)
	}
	for _, a := range v.Audited {
		fmt.Fprintf(tw, "  audit:\t%s\n", a)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(tw, "  note:\t%s\n", n)
	}
	traced := res.Policy
	if res.Running {
		traced += ", the ruleset edgefwd runs"
	}
	fmt.Fprintf(tw, "  policy:\t%s\n", traced)
	_ = tw.Flush()
	if !verbose {
		return
	}
	fmt.Fprintf(w, "\nrules passed (%d):\n", len(v.Passed))
	tw = newTable(w)
	fmt.Fprintln(tw, "  CHAIN\t#\tOWNER\tRESULT\tWHY")
	for _, s := range v.Passed {
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", s.Chain, s.Position, s.Owner, s.Result, s.Reason)
	}
	_ = tw.Flush()
}
