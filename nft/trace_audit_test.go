package nft

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/policy"
)

// auditCase is a packet traced through testdata/golden/audit.yaml: the
// rule (or default) that decides it, and the audit-mode rules it meets on
// the way, as "RULE COUNTER ACTION".
type auditCase struct {
	packet  string
	want    traceOutcome
	audited []string
	limits  []TraceLimit
	note    string
}

func auditCases() []auditCase {
	sshLimits := []TraceLimit{
		{Rule: "watch-ssh-flood", Counter: LimitedCounter("watch-ssh-flood"), Limit: "10/minute burst 8 packets per source address", Audit: true},
		{Rule: "watch-ssh-flood", Counter: LimitedCounter("watch-ssh-flood"), Limit: "at most 4 connections", Audit: true},
	}
	return []auditCase{
		// A scanner is counted by the audit rule and dropped by the default.
		{packet: "input tcp 198.51.100.7 192.0.2.1 8080", want: byDefault(input, drop),
			audited: []string{"watch-scanners watch-scanners drop"}},
		// Both alternatives match (set and interface): counted once.
		{packet: "input tcp 198.51.100.7 192.0.2.1 8080 iif=eth9", want: byDefault(input, drop),
			audited: []string{"watch-scanners watch-scanners drop"}},
		{packet: "input udp 2001:db8:bad::1 2001:db8::1 53", want: byDefault(input, drop),
			audited: []string{"watch-scanners watch-scanners drop"}},
		// Two audit rules in a row, then the default.
		{packet: "input udp 198.51.100.7 192.0.2.1 23", want: byDefault(input, drop),
			audited: []string{"watch-scanners watch-scanners drop", "watch-telnet watch-telnet reject"}},
		// An audited reject goes on to the accepting rule after it; its
		// limits keep their meaning and are reported, in audit mode.
		{packet: "input tcp 10.0.0.9 192.0.2.1 22", want: user("enforced-ssh", accept).limits(2),
			audited: []string{"watch-ssh-flood watch-ssh-flood reject"}, limits: sshLimits},
		// The except: not audited.
		{packet: "input tcp 10.1.0.9 192.0.2.1 22", want: user("enforced-ssh", accept)},
		{packet: "input tcp 10.0.0.9 192.0.2.1 2222", want: implicit("edgefw-failsafe", accept)},
		{packet: "input tcp 10.0.0.9 192.0.2.1 22 state=established", want: implicit("edgefw-established-input", accept)},
		{packet: "output tcp 192.0.2.1 203.0.113.5 443", want: byDefault(output, accept),
			audited: []string{"watch-egress watch-egress drop"}},
		{packet: "forward icmpv6 2001:db8::5 2001:db8:1::1 iif=veth1", want: byDefault(fwd, accept),
			audited: []string{"watch-forward watch-forward drop"}},
		{packet: "forward icmp 10.0.0.5 198.51.100.1", want: byDefault(fwd, accept),
			note: "rule watch-forward would match if the packet's interface were known"},
	}
}

// TestTraceAuditMode traces packets past rules in audit mode: each that
// matches is noted with what it would have done, and the packet goes on
// to the rule or default that decides it.
func TestTraceAuditMode(t *testing.T) {
	rs := compileFile(t, "testdata/golden/audit.yaml")
	for _, tc := range auditCases() {
		t.Run(tc.packet, func(t *testing.T) {
			v := Trace(rs, tracePacket(t, tc.packet))
			if diff := cmp.Diff(tc.want, outcomeOf(v)); diff != "" {
				t.Errorf("verdict (-want +got):\n%s\n%s", diff, v.Explanation)
			}
			var audited []string
			for _, a := range v.Audited {
				audited = append(audited, a.Rule+" "+a.Counter+" "+string(a.Action))
				if !a.Logged || len(a.Matched) == 0 && a.Chain != LimitChain(a.Rule) {
					t.Errorf("audit %+v: want logged, with what matched", a)
				}
				if !strings.Contains(v.Explanation, "audit-mode rule "+a.Rule+" would have "+traceActionPast(a.Action)) {
					t.Errorf("explanation does not name %s: %s", a.Rule, v.Explanation)
				}
			}
			if diff := cmp.Diff(tc.audited, audited); diff != "" {
				t.Errorf("audited (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.limits, v.Limits); tc.limits != nil && diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
			if tc.note != "" && !strings.Contains(strings.Join(v.Notes, "\n"), tc.note) {
				t.Errorf("no note says %q; notes: %q", tc.note, v.Notes)
			}
		})
	}
}

// TestTraceAuditThenEnforce checks what audit mode promises: switched to
// enforce, the first audit-mode rule that matched a packet is the one
// that decides it, with the action audit mode said it would take, in the
// same counter.
func TestTraceAuditThenEnforce(t *testing.T) {
	audit := compileFile(t, "testdata/golden/audit.yaml")
	p, err := policy.Load("testdata/golden/audit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.Rules {
		p.Rules[i].Mode = policy.Enforce
	}
	enforce, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range auditCases() {
		packet := tracePacket(t, tc.packet)
		before, after := Trace(audit, packet), Trace(enforce, packet)
		if len(after.Audited) != 0 {
			t.Errorf("%s: enforcing ruleset audited %+v", tc.packet, after.Audited)
		}
		if len(before.Audited) == 0 {
			if diff := cmp.Diff(outcomeOf(before), outcomeOf(after)); diff != "" {
				t.Errorf("%s: no audit rule matched, yet enforcing decides otherwise (-audit +enforce):\n%s", tc.packet, diff)
			}
			continue
		}
		first := before.Audited[0]
		if after.Rule != first.Rule || after.Action != first.Action || after.Counter != first.Counter {
			t.Errorf("%s: audit said rule %s would %s (counter %s); enforcing, %s", tc.packet, first.Rule, first.Action, first.Counter, after.Explanation)
		}
	}
}

// TestTraceAuditExplains pins an explanation and the steps through an
// audit chain and a limit chain reached by goto.
func TestTraceAuditExplains(t *testing.T) {
	rs := compileFile(t, "testdata/golden/audit.yaml")
	v := Trace(rs, tracePacket(t, "input tcp 10.0.0.9 192.0.2.1 22"))
	want := "tcp 10.0.0.9 → 192.0.2.1:22 (input, new): accepted by rule enforced-ssh (counter enforced-ssh): tcp port 22; " +
		"audit-mode rule watch-ssh-flood would have rejected it (counter watch-ssh-flood)"
	if v.Explanation != want {
		t.Errorf("explanation:\n got %s\nwant %s", v.Explanation, want)
	}
	var steps []string
	for _, s := range v.Passed {
		if s.Result != TraceNoMatch {
			steps = append(steps, s.Chain+" "+s.Result+": "+s.Reason)
		}
	}
	wantSteps := []string{
		"input jump: to " + AuditChain("watch-scanners") + "; back when no rule there decides",
		"input jump: to " + AuditChain("watch-telnet") + "; back when no rule there decides",
		"input jump: to " + AuditChain("watch-ssh-flood") + "; back when no rule there decides",
		AuditChain("watch-ssh-flood") + " jump: goto " + LimitChain("watch-ssh-flood") + "; back to the chain this one was jumped to from when no rule there decides",
		LimitChain("watch-ssh-flood") + " return: would reject: audit mode; counted in watch-ssh-flood, and the packet goes on",
	}
	if diff := cmp.Diff(wantSteps, steps); diff != "" {
		t.Errorf("steps that matched (-want +got):\n%s", diff)
	}
	if got := v.Audited[0].String(); got != "rule watch-ssh-flood (audit mode) would have rejected it; counted in watch-ssh-flood and logged, and the packet went on" {
		t.Errorf("audit note: %s", got)
	}
}
