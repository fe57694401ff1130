package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

func TestTraceText(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // the whole of stdout
	}{
		{
			name: "policy rule with its source",
			args: []string{"tcp", "10.10.1.2", "192.0.2.1:6443"},
			want: `tcp 10.10.1.2 → 192.0.2.1:6443 (input, new): accepted by rule kube-api (counter kube-api): tcp port 6443
  action:       accept
  decided by:   rule kube-api (testdata/valid.yaml:15:5)
  counter:      kube-api
  kernel rule:  chain input, rule 11: tcp dport 6443 counter name "kube-api" accept
  policy:       testdata/valid.yaml
`,
		},
		{
			name: "set, IPv6",
			args: []string{"tcp", "fd00:10::7", "[fd00:10::1]:22", "--state", "invalid"},
			want: `tcp fd00:10::7 → [fd00:10::1]:22 (input, invalid): dropped by implicit rule edgefw-invalid-input, packets conntrack finds invalid (counter edgefw-invalid-input): ct state invalid
  action:       drop
  decided by:   implicit rule edgefw-invalid-input: packets conntrack finds invalid
  counter:      edgefw-invalid-input
  kernel rule:  chain input, rule 2: ct state invalid counter name "edgefw-invalid-input" drop
  policy:       testdata/valid.yaml
`,
		},
		{
			name: "default policy, logged",
			args: []string{"udp", "198.51.100.7", "192.0.2.1:53"},
			want: `udp 198.51.100.7 → 192.0.2.1:53 (input, new): dropped by the input default policy (counter edgefw-default-input): no rule matched
  action:       drop
  decided by:   the input default policy
  counter:      edgefw-default-input
  kernel rule:  chain input, rule 12: limit rate 20/second burst 50 packets counter name "edgefw-default-input" log prefix "edgefw-default-input " group 4242 drop
  logged:       to edgefwd's audit log (drops) while under its log rate
  policy:       testdata/valid.yaml
`,
		},
		{
			name: "output",
			args: []string{"tcp", "192.0.2.1", "10.20.3.4:3000", "--direction", "output", "--oif", "eth0"},
			want: `tcp 192.0.2.1 → 10.20.3.4:3000 (output, out eth0, new): accepted by rule backend-egress (counter backend-egress): destination 10.20.3.4 in 10.20.0.0/16; tcp port 3000
  action:       accept
  decided by:   rule backend-egress (testdata/valid.yaml:19:5)
  counter:      backend-egress
  kernel rule:  chain output, rule 7: ip daddr 10.20.0.0/16 tcp dport 3000 counter name "backend-egress" accept
  policy:       testdata/valid.yaml
`,
		},
		{
			name: "icmpv6 type by name",
			args: []string{"icmpv6", "fe80::1", "ff02::1:ff00:1", "--icmp-type", "nd-neighbor-solicit"},
			want: `icmpv6 fe80::1 → ff02::1:ff00:1 nd-neighbor-solicit (input, new): accepted by implicit rule edgefw-icmpv6-nd-input, the ICMPv6 neighbour discovery and MLD that IPv6 needs (counter edgefw-icmpv6-nd-input): icmpv6 type nd-neighbor-solicit
  action:       accept
  decided by:   implicit rule edgefw-icmpv6-nd-input: the ICMPv6 neighbour discovery and MLD that IPv6 needs
  counter:      edgefw-icmpv6-nd-input
  kernel rule:  chain input, rule 4: icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } counter name "edgefw-icmpv6-nd-input" accept
  policy:       testdata/valid.yaml
`,
		},
		{
			name: "forward",
			args: []string{"TCP", "10.0.0.5", "198.51.100.1:443", "--direction", "forward", "--iif", "wg0", "--oif", "eth0"},
			want: `tcp 10.0.0.5 → 198.51.100.1:443 (forward, in wg0, out eth0, new): accepted by the forward default policy (counter edgefw-default-forward): no rule matched
  action:       accept
  decided by:   the forward default policy
  counter:      edgefw-default-forward
  kernel rule:  chain forward, rule 7: counter name "edgefw-default-forward" accept
  policy:       testdata/valid.yaml
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, append([]string{"trace", "--policy", validPolicy}, tc.args...)...)
			if res.code != 0 || res.stderr != "" {
				t.Fatalf("code %d, stderr %q", res.code, res.stderr)
			}
			if diff := cmp.Diff(tc.want, res.stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTraceAuditMode traces past a rule in audit mode: the verdict is the
// next rule's, and the audit rule is named with what it would have done.
func TestTraceAuditMode(t *testing.T) {
	res := run(t, "trace", "--policy", "../../nft/testdata/golden/audit.yaml", "udp", "198.51.100.7", "192.0.2.1:23")
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("code %d, stderr %q", res.code, res.stderr)
	}
	for _, want := range []string{
		"(input, new): dropped by the input default policy (counter edgefw-default-input): no enforcing rule matched; " +
			"audit-mode rule watch-scanners would have dropped it (counter watch-scanners); " +
			"audit-mode rule watch-telnet would have rejected it (counter watch-telnet)\n",
		"  audit:        rule watch-scanners (audit mode) would have dropped it; counted in watch-scanners and logged, and the packet went on\n",
		"  audit:        rule watch-telnet (audit mode) would have rejected it; counted in watch-telnet and logged, and the packet went on\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("trace lacks %q:\n%s", want, res.stdout)
		}
	}
}

func TestTraceVerbose(t *testing.T) {
	res := run(t, "trace", "--policy", validPolicy, "-v", "tcp", "203.0.113.9", "192.0.2.1:6443", "--iif", "eth0")
	if res.code != 0 {
		t.Fatalf("code %d, stderr %q", res.code, res.stderr)
	}
	for _, want := range []string{
		"\nrules passed (10):\n",
		"  CHAIN  #   OWNER                     RESULT    WHY\n",
		"  input  3   edgefw-loopback-input     no match  comes in on eth0, not lo\n",
		"  input  9   ssh-from-mgmt             no match  source 203.0.113.9 not in set mgmt-nets\n",
		"  input  10  ssh-from-mgmt             no match  an IPv4 packet; the rule's addresses are IPv6\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("trace -v lacks %q:\n%s", want, res.stdout)
		}
	}
}

func TestTraceJSON(t *testing.T) {
	res := run(t, "trace", "--policy", validPolicy, "-o", "json", "tcp", "10.10.0.1", "192.0.2.1:6443")
	if res.code != 0 {
		t.Fatalf("code %d, stderr %q", res.code, res.stderr)
	}
	var got traceResult
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("%v\n%s", err, res.stdout)
	}
	want := nft.Verdict{Action: policy.Accept, Counter: "kube-api", Kind: nft.KindUser, Rule: "kube-api", Chain: "input", Position: 11}
	if got.Action != want.Action || got.Counter != want.Counter || got.Kind != want.Kind || got.Rule != want.Rule ||
		got.Chain != want.Chain || got.Position != want.Position || got.Source != "testdata/valid.yaml:15:5" ||
		got.Policy != validPolicy || got.Running || len(got.Passed) != 10 || got.Packet.DstPort != 6443 {
		t.Errorf("trace -o json = %+v", got)
	}
}

func TestTraceInvalidInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // the whole of stderr
	}{
		{"no arguments", nil, "edgefwctl: trace takes three arguments, PROTO SRC DST[:PORT]; got 0 (see 'edgefwctl trace --help')\n"},
		{"protocol", []string{"gre", "192.0.2.9", "192.0.2.1"}, "edgefwctl: PROTO \"gre\": use tcp, udp, sctp, icmp or icmpv6 (see 'edgefwctl trace --help')\n"},
		{"source", []string{"tcp", "host.example", "192.0.2.1:22"}, "edgefwctl: SRC \"host.example\": not an IP address; use e.g. 198.51.100.7 or 2001:db8::7 (see 'edgefwctl trace --help')\n"},
		{"source port", []string{"tcp", "192.0.2.9:4000", "192.0.2.1:22"}, "edgefwctl: SRC \"192.0.2.9:4000\": give the address alone, without a port (rules match destination ports only) (see 'edgefwctl trace --help')\n"},
		{"destination", []string{"tcp", "192.0.2.9", "host:22"}, "edgefwctl: DST \"host:22\": \"host\" is not an IP address; use IPv4:PORT or [IPv6]:PORT, e.g. 192.0.2.1:22 or [2001:db8::1]:22 (see 'edgefwctl trace --help')\n"},
		{"no port", []string{"tcp", "2001:db8::9", "2001:db8::1:22"}, "edgefwctl: DST \"2001:db8::1:22\": tcp needs a port: IPv4:PORT or [IPv6]:PORT, e.g. 192.0.2.1:22 or [2001:db8::1]:22 (see 'edgefwctl trace --help')\n"},
		{"port 0", []string{"udp", "192.0.2.9", "192.0.2.1:0"}, "edgefwctl: DST \"192.0.2.1:0\": port \"0\" is not a number from 1 to 65535 (see 'edgefwctl trace --help')\n"},
		{"port too big", []string{"udp", "192.0.2.9", "192.0.2.1:70000"}, "edgefwctl: DST \"192.0.2.1:70000\": port \"70000\" is not a number from 1 to 65535 (see 'edgefwctl trace --help')\n"},
		{"icmp port", []string{"icmp", "192.0.2.9", "192.0.2.1:22"}, "edgefwctl: protocol icmp has no ports: give the destination without :PORT (see 'edgefwctl trace --help')\n"},
		{"icmp with IPv6", []string{"icmp", "2001:db8::9", "2001:db8::1"}, "edgefwctl: protocol icmp is IPv4's: use icmpv6 with IPv6 addresses (see 'edgefwctl trace --help')\n"},
		{"families", []string{"tcp", "192.0.2.9", "[2001:db8::1]:22"}, "edgefwctl: source 192.0.2.9 and destination 2001:db8::1: both must be IPv4 or both IPv6 (see 'edgefwctl trace --help')\n"},
		{"direction", []string{"tcp", "192.0.2.9", "192.0.2.1:22", "--direction", "prerouting"}, "edgefwctl: direction \"prerouting\": use input, output or forward (see 'edgefwctl trace --help')\n"},
		{"state", []string{"tcp", "192.0.2.9", "192.0.2.1:22", "--state", "syn-sent"}, "edgefwctl: state \"syn-sent\": use new, established, related or invalid (see 'edgefwctl trace --help')\n"},
		{"iif on output", []string{"tcp", "192.0.2.1", "192.0.2.9:22", "--direction", "output", "--iif", "eth0"}, "edgefwctl: input interface \"eth0\": output packets, sent by the host, have none; use the output interface (see 'edgefwctl trace --help')\n"},
		{"icmp type for tcp", []string{"tcp", "192.0.2.9", "192.0.2.1:22", "--icmp-type", "echo-request"}, "edgefwctl: --icmp-type echo-request: only for icmp and icmpv6, not tcp (see 'edgefwctl trace --help')\n"},
		{"interface name", []string{"tcp", "192.0.2.9", "192.0.2.1:22", "--iif", "a-very-long-interface"}, "edgefwctl: input interface \"a-very-long-interface\": an interface name has at most 15 characters, without spaces, / or * (see 'edgefwctl trace --help')\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, append([]string{"trace", "--policy", validPolicy}, tc.args...)...)
			if res.code != 1 || res.stdout != "" {
				t.Errorf("code %d, stdout %q; want 1 and nothing", res.code, res.stdout)
			}
			if res.stderr != tc.want {
				t.Errorf("stderr:\n got %q\nwant %q", res.stderr, tc.want)
			}
		})
	}

	// An unknown icmp type lists the names it knows.
	res := run(t, "trace", "--policy", validPolicy, "icmp", "192.0.2.9", "192.0.2.1", "--icmp-type", "ping")
	if res.code != 1 || !strings.HasPrefix(res.stderr, "edgefwctl: --icmp-type: icmp type \"ping\": use a number from 0 to 255 or one of echo-reply, destination-unreachable,") {
		t.Errorf("unknown icmp type: code %d, stderr %q", res.code, res.stderr)
	}
	// An invalid policy is invalid input too, with its problems.
	res = run(t, "trace", "--policy", invalidPolicy, "tcp", "192.0.2.9", "192.0.2.1:22")
	if res.code != 1 || !strings.Contains(res.stderr, "testdata/invalid.yaml:6:35: rules[0].ports[0].port: port 70000 is out of range") {
		t.Errorf("invalid policy: code %d, stderr %q", res.code, res.stderr)
	}
}

// TestTraceRunning traces what edgefwd runs: its policy file, once the
// file is shown to compile to exactly the running ruleset.
func TestTraceRunning(t *testing.T) {
	abs, err := filepath.Abs(validPolicy)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeDaemon(t)
	f.status = &daemon.Status{Policy: daemon.PolicySource{Path: abs}}
	f.ruleset = compiled(t, validPolicy)

	res := run(t, "--socket", f.socket, "trace", "-o", "json", "tcp", "10.10.0.1", "192.0.2.1:6443")
	var got traceResult
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil || res.code != 0 {
		t.Fatalf("code %d, stderr %q, stdout %q: %v", res.code, res.stderr, res.stdout, err)
	}
	if got.Policy != abs || !got.Running || got.Counter != "kube-api" {
		t.Errorf("trace of the running policy: policy %q, running %v, counter %q", got.Policy, got.Running, got.Counter)
	}
	res = run(t, "--socket", f.socket, "trace", "tcp", "10.10.0.1", "192.0.2.1:6443")
	if want := "  policy:       " + abs + ", the ruleset edgefwd runs\n"; !strings.HasSuffix(res.stdout, want) {
		t.Errorf("text output does not end with %q:\n%s", want, res.stdout)
	}

	// The file changed since edgefwd applied it: trace refuses to guess.
	f.ruleset = strings.Replace(f.ruleset, "tcp dport 6443", "tcp dport 6444", 1)
	res = run(t, "--socket", f.socket, "trace", "tcp", "10.10.0.1", "192.0.2.1:6443")
	want := "edgefwctl: trace: edgefwd does not run what " + abs + " compiles to now (the file changed since it was applied, or edgefwd runs a safe fallback: see edgefwctl status); trace the file with --policy " + abs + ", or apply it with edgefwctl reload\n"
	if res.code != 1 || res.stdout != "" || res.stderr != want {
		t.Errorf("changed file: code %d, stdout %q, stderr:\n got %q\nwant %q", res.code, res.stdout, res.stderr, want)
	}

	// Without edgefwd, trace reads the default policy file and says so.
	missing := filepath.Join(t.TempDir(), "edgefwd.sock")
	res = run(t, "--socket", missing, "trace", "tcp", "10.10.0.1", "192.0.2.1:6443")
	first, _, _ := strings.Cut(res.stderr, "\n")
	if want := "edgefwctl: edgefwd is not running (no daemon at " + missing + "): tracing /etc/edgefw/policy.yaml, which may differ from the ruleset in the kernel"; first != want {
		t.Errorf("without edgefwd: stderr starts %q, want %q", first, want)
	}
}
