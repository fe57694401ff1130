package nft

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// TestInspectUntouched proves that Inspect renders the kernel faithfully:
// for every golden policy, the table Apply built renders byte for byte as
// the ruleset does, and applying the ruleset again would write nothing.
func TestInspectUntouched(t *testing.T) {
	netnstest.RequireRoot(t)
	for name, path := range goldenPolicies(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rs := compileFile(t, path)
			fw := NewApplier(WithNetNS(netnstest.New(t, "inspect").FD))
			if _, err := fw.Apply(rs); err != nil {
				t.Fatalf("apply: %v", err)
			}
			in, err := fw.Inspect(rs)
			if err != nil {
				t.Fatalf("inspect: %v", err)
			}
			if diff := cmp.Diff(rs.String(), in.Text); diff != "" {
				t.Errorf("the kernel renders differently from the ruleset it holds (-ruleset +kernel):\n%s", diff)
			}
			if in.Plan.Messages != 0 || len(in.Plan.Changes) != 0 {
				t.Errorf("applying the ruleset the kernel holds would write %d messages: %q", in.Plan.Messages, in.Plan.Changes)
			}
		})
	}
}

// TestInspectNoTable renders a missing table as nothing, and plans it
// whole, without writing anything.
func TestInspectNoTable(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "inspect-none")
	fw := NewApplier(WithNetNS(ns.FD))
	rs := compileYAML(t, inspectPolicy)
	in, err := fw.Inspect(rs)
	if err != nil {
		t.Fatal(err)
	}
	if in.Text != "" {
		t.Errorf("a missing table renders as:\n%s", in.Text)
	}
	if len(in.Plan.Changes) == 0 || in.Plan.Changes[0] != "add table inet "+TableName || in.Plan.Messages < len(in.Plan.Changes) {
		t.Errorf("plan for a missing table: %d messages, %q", in.Plan.Messages, in.Plan.Changes)
	}
	if out := ns.MustRun(t, "nft", "list", "ruleset"); out != "" {
		t.Errorf("Inspect wrote to the kernel:\n%s", out)
	}
}

// inspectPolicy has a named set and a regular chain (api's limit).
const inspectPolicy = incrementalBase + `  - name: api
    direction: input
    ports: [{protocol: tcp, port: 6443}]
    limit: {rate: 100/minute, burst: 20}
    action: accept
`

// TestInspectShowsDrift changes the table behind the Applier's back with
// nft, and checks that the rendering shows exactly that change, that the
// plan repairs it, and that after the repair the rendering is the ruleset
// again.
func TestInspectShowsDrift(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	const web = `tcp dport 80 counter name "web" accept`
	tests := []struct {
		name string
		// drift changes the kernel; handles are those of the applied rules.
		drift func(t *testing.T, ns *netnstest.NS, handles map[string]string)
		// want is the rendering after the drift, from the ruleset's.
		want func(t *testing.T, ns *netnstest.NS, text string) string
		// plan is a change the repair must include.
		plan func(t *testing.T, ns *netnstest.NS) string
	}{
		{
			name: "rule deleted",
			drift: func(t *testing.T, ns *netnstest.NS, handles map[string]string) {
				ns.MustRun(t, "nft", "delete", "rule", "inet", TableName, "input", "handle", handles[web])
			},
			want: func(t *testing.T, ns *netnstest.NS, text string) string {
				return strings.Replace(text, "\t\t"+web+"\n", "", 1)
			},
			plan: func(*testing.T, *netnstest.NS) string { return `add rule "web" in chain input` },
		},
		{
			name: "set element deleted",
			drift: func(t *testing.T, ns *netnstest.NS, _ map[string]string) {
				ns.MustRun(t, "nft", "delete", "element", "inet", TableName, "trusted-v4", "{ 198.51.100.0/24 }")
			},
			want: func(t *testing.T, ns *netnstest.NS, _ string) string {
				return compileYAML(t, strings.Replace(inspectPolicy, " 198.51.100.0/24,", "", 1)).String()
			},
			plan: func(*testing.T, *netnstest.NS) string { return "add 1 ranges to set trusted-v4" },
		},
		{
			name: "foreign rule added",
			drift: func(t *testing.T, ns *netnstest.NS, _ map[string]string) {
				ns.MustRun(t, "nft", "add", "rule", "inet", TableName, "input", "tcp", "dport", "9999", "accept")
			},
			want: func(t *testing.T, ns *netnstest.NS, text string) string {
				h := ruleHandles(t, ns)["tcp dport 9999 accept"]
				line := fmt.Sprintf("\t\t# rule handle %s: not written by edgefw (%d expressions)\n", h, len(kernelRule(t, ns, "input", h).Exprs))
				return insertAtChainEnd(t, text, "input", line)
			},
			plan: func(t *testing.T, ns *netnstest.NS) string {
				return "delete rule " + ruleHandles(t, ns)["tcp dport 9999 accept"] + " of chain input"
			},
		},
		{
			name: "chain flushed",
			drift: func(t *testing.T, ns *netnstest.NS, _ map[string]string) {
				ns.MustRun(t, "nft", "flush", "chain", "inet", TableName, "input")
			},
			want: func(t *testing.T, ns *netnstest.NS, text string) string {
				lines := strings.SplitAfter(text, "\n")
				start := slices.Index(lines, "\tchain input {\n") + 2 // after the header
				end := start + slices.Index(lines[start:], "\t}\n")
				return strings.Join(slices.Delete(lines, start, end), "")
			},
			plan: func(*testing.T, *netnstest.NS) string { return `add rule "web" in chain input` },
		},
		{
			name: "chain policy changed",
			drift: func(t *testing.T, ns *netnstest.NS, _ map[string]string) {
				ns.MustRun(t, "nft", "chain", "inet", TableName, "input", "{ policy accept; }")
			},
			want: func(t *testing.T, ns *netnstest.NS, text string) string {
				return strings.Replace(text, "hook input priority filter; policy drop;", "hook input priority filter; policy accept;", 1)
			},
			plan: func(*testing.T, *netnstest.NS) string { return "set policy of chain input to drop" },
		},
		{
			name: "foreign counter and set added",
			drift: func(t *testing.T, ns *netnstest.NS, _ map[string]string) {
				ns.MustRun(t, "nft", "add", "counter", "inet", TableName, "stray")
				ns.MustRun(t, "nft", "add", "set", "inet", TableName, "stray-set", "{ type inet_service; }")
			},
			want: func(t *testing.T, ns *netnstest.NS, text string) string {
				// Unknown objects come after the known ones of their kind.
				text = strings.Replace(text, "\tset trusted-v4 {\n", "\tcounter stray {\n\t}\n\n\tset trusted-v4 {\n", 1)
				return strings.Replace(text, "\tchain input {\n", "\tset stray-set {\n\t\ttype inet_service\n\t}\n\n\tchain input {\n", 1)
			},
			plan: func(*testing.T, *netnstest.NS) string { return `delete counter "stray"` },
		},
		{
			name: "table deleted",
			drift: func(t *testing.T, ns *netnstest.NS, _ map[string]string) {
				ns.MustRun(t, "nft", "delete", "table", "inet", TableName)
			},
			want: func(*testing.T, *netnstest.NS, string) string { return "" },
			plan: func(*testing.T, *netnstest.NS) string { return "add table inet " + TableName },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := netnstest.New(t, "drift")
			fw := NewApplier(WithNetNS(ns.FD))
			rs := compileYAML(t, inspectPolicy)
			if _, err := fw.Apply(rs); err != nil {
				t.Fatalf("apply: %v", err)
			}
			handles := ruleHandles(t, ns)
			tt.drift(t, ns, handles)
			in, err := fw.Inspect(rs)
			if err != nil {
				t.Fatalf("inspect: %v", err)
			}
			if diff := cmp.Diff(tt.want(t, ns, rs.String()), in.Text); diff != "" {
				t.Errorf("rendering after the drift (-want +got):\n%s", diff)
			}
			plan := tt.plan(t, ns)
			if !slices.Contains(in.Plan.Changes, plan) || in.Plan.Messages == 0 {
				t.Errorf("plan (%d messages) %q lacks %q", in.Plan.Messages, in.Plan.Changes, plan)
			}

			if _, err := fw.Apply(rs); err != nil {
				t.Fatalf("repair: %v", err)
			}
			in, err = fw.Inspect(rs)
			if err != nil {
				t.Fatalf("inspect after the repair: %v", err)
			}
			if diff := cmp.Diff(rs.String(), in.Text); diff != "" {
				t.Errorf("rendering after the repair (-ruleset +kernel):\n%s", diff)
			}
			if len(in.Plan.Changes) != 0 {
				t.Errorf("plan after the repair: %q", in.Plan.Changes)
			}
		})
	}
}

// TestInspectKnownRulesets renders the rules of a ruleset the kernel holds
// by their text when the caller knows that ruleset, and says where they
// come from otherwise.
func TestInspectKnownRulesets(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "inspect-known")
	fw := NewApplier(WithNetNS(ns.FD))
	running := compileYAML(t, inspectPolicy)
	if _, err := fw.Apply(running); err != nil {
		t.Fatal(err)
	}
	web := ruleHandles(t, ns)[`tcp dport 80 counter name "web" accept`]
	candidate := compileYAML(t, strings.Replace(inspectPolicy, "port: 80}", "port: 81}", 1))

	in, err := fw.Inspect(candidate, running)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(running.String(), in.Text); diff != "" {
		t.Errorf("with the running ruleset known (-running +kernel):\n%s", diff)
	}
	if want := []string{"delete rule " + web + " of chain input", `add rule "web" in chain input`}; !cmp.Equal(want, in.Plan.Changes) {
		t.Errorf("plan = %q, want %q", in.Plan.Changes, want)
	}

	in, err = fw.Inspect(candidate)
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("\t\t# rule handle %s: written by edgefw for another ruleset (%d expressions)\n", web, len(kernelRule(t, ns, "input", web).Exprs))
	want := strings.Replace(running.String(), "\t\ttcp dport 80 counter name \"web\" accept\n", line, 1)
	if diff := cmp.Diff(want, in.Text); diff != "" {
		t.Errorf("with only the candidate known (-want +got):\n%s", diff)
	}
}

// insertAtChainEnd inserts line as the last rule of a chain of text.
func insertAtChainEnd(t *testing.T, text, chain, line string) string {
	t.Helper()
	start := strings.Index(text, "\tchain "+chain+" {\n")
	if start < 0 {
		t.Fatalf("no chain %s in:\n%s", chain, text)
	}
	end := start + strings.Index(text[start:], "\n\t}\n") + 1
	return text[:end] + line + text[end:]
}

// kernelRule reads one rule of table inet edgefw by its handle.
func kernelRule(t *testing.T, ns *netnstest.NS, chain, handle string) *nftables.Rule {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := c.GetRules(table, &nftables.Chain{Name: chain, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if strconv.FormatUint(r.Handle, 10) == handle {
			return r
		}
	}
	t.Fatalf("no rule with handle %s in chain %s", handle, chain)
	return nil
}

// TestKernelChainHeader declares chains that edgefw does not make as nft
// lists them, so that a chain someone replaced shows in a diff.
func TestKernelChainHeader(t *testing.T) {
	prio := func(p int) *nftables.ChainPriority { v := nftables.ChainPriority(p); return &v }
	drop, accept := nftables.ChainPolicyDrop, nftables.ChainPolicyAccept
	tests := []struct {
		chain *nftables.Chain
		want  string
	}{
		{&nftables.Chain{}, ""},
		{&nftables.Chain{Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: prio(0), Policy: &drop},
			"type filter hook input priority filter; policy drop;"},
		{&nftables.Chain{Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: prio(5), Policy: &accept},
			"type filter hook forward priority filter + 5; policy accept;"},
		{&nftables.Chain{Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookOutput, Priority: prio(-10)},
			"type filter hook output priority filter - 10; policy accept;"},
		{&nftables.Chain{Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: prio(-100), Policy: &accept},
			"type nat hook prerouting priority -100; policy accept;"},
		{&nftables.Chain{Type: nftables.ChainTypeRoute, Hooknum: nftables.ChainHookRef(nfInetIngress), Priority: prio(-500)},
			"type route hook ingress priority -500; policy accept;"},
	}
	for _, tt := range tests {
		if got := baseChain(tt.chain).header(); got != tt.want {
			t.Errorf("baseChain(%+v).header() = %q, want %q", tt.chain, got, tt.want)
		}
	}
}
