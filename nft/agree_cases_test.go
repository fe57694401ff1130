package nft_test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
	"github.com/edgefw/edgefw/policy"
)

// baseYAML has a named set in both families and three rules; the kernel
// tests of apply_test.go start from the same policy.
const baseYAML = `
version: 1
sets:
  trusted: [192.0.2.0/25, 198.51.100.0/24, 203.0.113.8/29, "2001:db8::/64"]
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 80}]
    action: accept
  - name: metrics
    direction: input
    from: [{set: trusted}]
    ports: [{protocol: tcp, port: 9100}]
    action: accept
  - name: other
    direction: input
    ports: [{protocol: tcp, port: 8080}]
    action: accept
`

// In baseYAML's chain input, the implicit rules take positions 0 to 6;
// web is at 7, metrics at 8 (IPv4) and 9 (IPv6), other at 10.

// changedYAML adds a rule before web, removes metrics and changes
// other's port.
const changedYAML = `
version: 1
sets:
  trusted: [192.0.2.0/25, 198.51.100.0/24, 203.0.113.8/29, "2001:db8::/64"]
rules:
  - name: new-first
    direction: input
    ports: [{protocol: udp, port: 5000}]
    action: accept
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 80}]
    action: accept
  - name: other
    direction: input
    ports: [{protocol: tcp, port: 8081}]
    action: accept
`

// countedYAML has web, with a limit, in a direction and with an action.
const countedYAML = `
version: 1
rules:
  - name: other
    direction: input
    ports: [{protocol: tcp, port: 8080}]
    action: accept
  - name: web
    direction: %s
    ports: [{protocol: tcp, port: 80}]
    limit: {rate: 1/minute, burst: 1}
    action: %s
`

// limitYAML gives web, with two sets in its from list, a limit.
const limitYAML = `
version: 1
sets:
  a: [192.0.2.10/32, "2001:db8::10/128"]
  b: [192.0.2.11/32, "2001:db8::11/128"]
rules:
  - name: web
    direction: input
    from: [{set: a}, {set: b}]
    ports: [{protocol: tcp, port: 80}]
    %s
    action: accept
`

// auditYAML has web, matching two alternatives in each family, with a
// limit line (or none), an action and a mode.
const auditYAML = `
version: 1
sets:
  a: [192.0.2.10/32, "2001:db8::10/128"]
rules:
  - name: other
    direction: input
    ports: [{protocol: tcp, port: 8080}]
    action: accept
  - name: web
    direction: input
    from: [{set: a}, {interface: eth9}]
    ports: [{protocol: tcp, port: 80}]
    %s
    action: %s
    mode: %s
`

// setYAML has one set, s, with the given elements.
const setYAML = `
version: 1
sets:
  s: [%s]
rules:
  - {name: r, direction: input, from: [{set: s}], action: accept}
`

func planCases() []planCase {
	var cases []planCase
	files, _ := filepath.Glob("testdata/golden/*.yaml")
	for _, f := range files {
		cases = append(cases, planCase{name: "first apply of " + filepath.Base(f), steps: []step{
			{file: f}, {want: []string{}},
		}})
	}
	cases = append(cases, ruleCases()...)
	cases = append(cases, setCases()...)
	cases = append(cases, counterCases()...)
	cases = append(cases, directCases()...)
	cases = append(cases, auditCases()...)
	cases = append(cases, driftCases()...)
	cases = append(cases, foreignCases()...)
	cases = append(cases, limitCases()...)
	cases = append(cases, refusedCases()...)
	return append(cases, checkCases()...)
}

func ruleCases() []planCase {
	seed := map[string]nft.Counter{"web": {Packets: 3, Bytes: 180}, "other": {Packets: 2, Bytes: 120}, "metrics": {Packets: 1, Bytes: 60}}
	return []planCase{
		{name: "rules added, removed and changed", seed: seed, steps: []step{
			{policy: baseYAML},
			{policy: changedYAML, kept: []string{"web", "other"}, want: []string{
				`add counter "new-first"`,
				"delete rule #8 of chain input",
				"delete rule #9 of chain input",
				"delete rule #10 of chain input",
				`delete counter "metrics"`,
				`add rule "new-first" in chain input`,
				`add rule "other" in chain input`,
			}},
			{policy: strings.Replace(changedYAML, "port: 80}", "port: 81}", 1), kept: []string{"web", "other"},
				want: []string{"delete rule #8 of chain input", `add rule "web" in chain input`}},
		}},
		{name: "rule moved", seed: map[string]nft.Counter{"x3": {Packets: 1, Bytes: 60}}, steps: []step{
			{policy: "version: 1\nrules:\n" + xRules(1, 2, 3)},
			{policy: "version: 1\nrules:\n" + xRules(3, 1, 2), kept: []string{"x3"},
				want: []string{"delete rule #9 of chain input", `add rule "x3" in chain input`}},
			{policy: "version: 1\nrules:\n" + xRules(2, 3), kept: []string{"x3"},
				want: []string{"delete rule #7 of chain input", "delete rule #8 of chain input", `delete counter "x1"`, `add rule "x3" in chain input`}},
		}},
	}
}

// xRules writes input rules xN accepting tcp port N.
func xRules(ports ...int) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "  - {name: x%d, direction: input, ports: [{protocol: tcp, port: %d}], action: accept}\n", p, p)
	}
	return b.String()
}

func setCases() []planCase {
	with := func(elems string) string { return fmt.Sprintf(setYAML, elems) }
	return []planCase{{name: "set elements", steps: []step{
		{policy: with(`10.0.0.0/24, 10.0.2.0/24, 192.0.2.7/32, "2001:db8::/64"`)},
		{policy: with(`10.0.0.0/24, 10.0.2.0/24, 10.9.0.0/16, 192.0.2.7/32, "2001:db8::/64"`),
			want: []string{"add 1 ranges to set s-v4"}},
		{policy: with(`10.0.0.0/24, 10.0.2.0/24, 192.0.2.7/32, "2001:db8::/64"`),
			want: []string{"delete 1 ranges from set s-v4"}},
		{policy: with(`10.0.0.0/24, 10.0.2.0/24, 192.0.2.8/32, "2001:db8::/64"`),
			want: []string{"delete 1 ranges from set s-v4", "add 1 ranges to set s-v4"}},
		{policy: with(`10.0.0.0/24, 10.0.1.0/24, 10.0.2.0/24, 192.0.2.8/32, "2001:db8::/64"`),
			want: []string{"delete 2 ranges from set s-v4", "add 1 ranges to set s-v4"}},
		{policy: with(`10.0.0.0/24, 10.0.2.0/24, 192.0.2.8/32, "2001:db8::/64"`),
			want: []string{"delete 1 ranges from set s-v4", "add 2 ranges to set s-v4"}},
		{policy: with(`10.0.0.0/23, 10.0.2.0/24, 192.0.2.8/32, "2001:db8::/64", "2001:db8:1::/48"`),
			want: []string{"delete 2 ranges from set s-v4", "add 1 ranges to set s-v4", "add 1 ranges to set s-v6"}},
		{policy: with(`"2001:db8::/64"`),
			want: []string{"delete 2 ranges from set s-v4", "delete 1 ranges from set s-v6"}},
		{policy: with(`0.0.0.0/0, "::/0"`),
			want: []string{"add 1 ranges to set s-v4", "delete 1 ranges from set s-v6", "add 1 ranges to set s-v6"}},
		{full: true},
		{policy: strings.Replace(with(`"::fffe:0:0/96", 10.0.0.0/8`), "{set: s}", "{cidr: 192.0.2.0/24}", 1)},
	}}}
}

func counterCases() []planCase {
	limited := nft.LimitedCounter("web")
	seed := map[string]nft.Counter{"web": {Packets: 7, Bytes: 700}, limited: {Packets: 3, Bytes: 300}, "other": {Packets: 5, Bytes: 500}}
	return []planCase{{name: "counters reset when their meaning changes", seed: seed, steps: []step{
		{policy: fmt.Sprintf(countedYAML, "input", "accept"), kept: []string{"web", limited, "other"}},
		{policy: fmt.Sprintf(countedYAML, "input", "drop"), reset: []string{"web"}, kept: []string{limited, "other"}},
		{want: []string{}},
		{policy: fmt.Sprintf(countedYAML, "output", "drop"), reset: []string{limited}, kept: []string{"other"}},
	}}}
}

// directYAML has the input rules xN of tcp port N for N in 1 to 8, a run
// long enough to be dispatched, whose keys go to direct maps; actions
// gives some of them drop, and extra adds rules after them.
func directYAML(drops []int, extra string) string {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for p := 1; p <= 8; p++ {
		action := "accept"
		if slices.Contains(drops, p) {
			action = "drop"
		}
		fmt.Fprintf(&b, "  - {name: x%d, direction: input, ports: [{protocol: tcp, port: %d}], action: %s}\n", p, p, action)
	}
	return b.String() + extra
}

// directCases change the rules of direct maps, whose counters a read
// finds in the maps' elements: a counter whose rule's action changes is
// reset, in a map as in a chain, and one that counts the same as before
// is kept wherever its rule goes.
func directCases() []planCase {
	seed := map[string]nft.Counter{"x1": {Packets: 1, Bytes: 60}, "x3": {Packets: 3, Bytes: 180}, "x4": {Packets: 4, Bytes: 240}}
	// y3 shares x3's port: key 3 then goes to a chain of both.
	const y3 = "  - {name: y3, direction: input, ports: [{protocol: tcp, port: 3}], action: accept}\n"
	return []planCase{
		{name: "direct map: action flips accept and drop", seed: seed, steps: []step{
			{policy: directYAML([]int{4}, ""), kept: []string{"x1", "x3", "x4"}},
			{want: []string{}},
			{policy: directYAML([]int{3}, ""), reset: []string{"x3", "x4"}, kept: []string{"x1"}},
			{want: []string{}},
		}},
		{name: "direct map: a key moves to a chain and back", seed: seed, steps: []step{
			{policy: directYAML(nil, ""), kept: []string{"x1", "x3", "x4"}},
			{policy: directYAML(nil, y3), kept: []string{"x1", "x3", "x4"}},
			{policy: directYAML(nil, ""), kept: []string{"x1", "x3", "x4"}},
			{policy: directYAML([]int{3}, y3), reset: []string{"x3"}, kept: []string{"x1", "x4"}},
			{want: []string{}},
		}},
		{name: "direct map: a rule renamed", seed: seed, steps: []step{
			{policy: directYAML(nil, ""), kept: []string{"x1", "x3", "x4"}},
			{policy: strings.Replace(directYAML(nil, ""), "name: x3,", "name: z3,", 1), kept: []string{"x1", "x4"},
				want: []string{`add counter "z3"`, "delete rule #7 of chain input", `delete counter "x3"`, `add rule "input" in chain input`}},
			{want: []string{}},
		}},
	}
}

// auditCases switch web between enforce and audit mode: its rules are
// replaced (its kernel rules and its audit chain come and go) in the same
// transaction, and its counters, which count the same packets under the
// same direction and action, keep their values. A change of action still
// resets them.
func auditCases() []planCase {
	limited := nft.LimitedCounter("web")
	seed := map[string]nft.Counter{"web": {Packets: 7, Bytes: 700}, limited: {Packets: 3, Bytes: 300}, "other": {Packets: 5, Bytes: 500}}
	web := func(limit, action, mode string) string { return fmt.Sprintf(auditYAML, limit, action, mode) }
	const limit = "limit: {rate: 10/second, perSource: true}"
	return []planCase{
		{name: "audit mode on and off keeps the counter", seed: seed, steps: []step{
			{policy: web("", "drop", "enforce"), kept: []string{"web", "other"}},
			{policy: web("", "drop", "audit"), kept: []string{"web", "other"}, want: slices.Concat(
				deleteRules("input", 8, 11), []string{"add chain edgefw-audit-web", `add rule "web" in chain input`},
				addRules("web", nft.AuditChain("web"), 8))},
			{want: []string{}},
			{policy: web("", "drop", "enforce"), kept: []string{"web", "other"}, want: slices.Concat(
				deleteRules("input", 8, 8), []string{"flush chain edgefw-audit-web", "delete chain edgefw-audit-web"},
				addRules("web", "input", 4))},
			{policy: web("", "reject", "audit"), reset: []string{"web"}, kept: []string{"other"}},
			{policy: web("", "reject", "enforce"), kept: []string{"other"}},
		}},
		{name: "audit mode on and off keeps the limited counter", seed: seed, steps: []step{
			{policy: web(limit, "drop", "enforce"), kept: []string{"web", limited, "other"}},
			{policy: web(limit, "drop", "audit"), kept: []string{"web", limited, "other"}, want: slices.Concat(
				deleteRules("input", 8, 15), deleteRules(nft.LimitChain("web"), 0, 1),
				[]string{"add chain edgefw-audit-web", `add rule "web" in chain input`},
				addRules("web", nft.AuditChain("web"), 4), addRules(limited, nft.LimitChain("web"), 2), addRules("web", nft.LimitChain("web"), 2))},
			{want: []string{}},
			{policy: web(limit, "drop", "enforce"), kept: []string{"web", limited, "other"}, want: slices.Concat(
				deleteRules("input", 8, 8), deleteRules(nft.LimitChain("web"), 0, 3),
				[]string{"flush chain edgefw-audit-web", "delete chain edgefw-audit-web"},
				addRules("web", "input", 8), addRules(limited, nft.LimitChain("web"), 2))},
			{policy: web("", "drop", "audit"), kept: []string{"web", "other"}},
			{policy: web(limit, "drop", "audit"), kept: []string{"web", "other"}},
		}},
	}
}

// deleteRules are the changes that delete rules first to last of a chain.
func deleteRules(chain string, first, last int) []string {
	var out []string
	for i := first; i <= last; i++ {
		out = append(out, fmt.Sprintf("delete rule #%d of chain %s", i, chain))
	}
	return out
}

// addRules are the changes that add n rules of owner to a chain.
func addRules(owner, chain string, n int) []string {
	return slices.Repeat([]string{fmt.Sprintf("add rule %q in chain %s", owner, chain)}, n)
}

// driftCases change the table behind the Applier's back, as
// TestForeignChangesRepaired and TestInspectShowsDrift do on the kernel.
func driftCases() []planCase {
	repair := func(name string, want []string, d ...drift) planCase {
		c := planCase{name: name, seed: map[string]nft.Counter{"web": {Packets: 1, Bytes: 60}}, steps: []step{
			{policy: baseYAML}, {drift: d, want: want, kept: []string{"web"}},
		}}
		if name == "table deleted" {
			c.steps[1].kept = nil // they went with the table
		}
		return c
	}
	outputHook := &nft.BaseChain{Type: "filter", Hook: "output", Priority: 0, Policy: "drop"}
	prio10 := &nft.BaseChain{Type: "filter", Hook: "input", Priority: 10, Policy: "drop"}
	return []planCase{
		repair("element added", []string{"delete 1 ranges from set trusted-v4"},
			drift{"add element inet edgefw trusted-v4 { 10.1.2.3 }", func(k *nfttest.Kernel, _ handles) error {
				return k.AddElements("trusted-v4", cidr("10.1.2.3/32"))
			}}),
		repair("element added next to one", []string{"delete 1 ranges from set trusted-v4"},
			drift{"add element inet edgefw trusted-v4 { 192.0.2.128/25 }", func(k *nfttest.Kernel, _ handles) error {
				return k.AddElements("trusted-v4", cidr("192.0.2.128/25"))
			}}),
		repair("element removed", []string{"add 1 ranges to set trusted-v6"},
			drift{"delete element inet edgefw trusted-v6 { 2001:db8::/64 }", func(k *nfttest.Kernel, _ handles) error {
				return k.DeleteElements("trusted-v6", cidr("2001:db8::/64"))
			}}),
		repair("set flushed", []string{"add 3 ranges to set trusted-v4"},
			drift{"flush set inet edgefw trusted-v4", func(k *nfttest.Kernel, _ handles) error { return k.FlushSet("trusted-v4") }}),
		repair("rule deleted", []string{`add rule "web" in chain input`},
			drift{"delete rule inet edgefw input handle {input:web}", func(k *nfttest.Kernel, h handles) error {
				return k.DeleteRule("input", h("input", "web"))
			}}),
		repair("foreign rule inserted", []string{"delete rule #0 of chain input"},
			drift{"insert rule inet edgefw input tcp dport 23 accept", func(k *nfttest.Kernel, _ handles) error {
				_, err := k.AddRule("input", nfttest.Rule{Insert: true, Exprs: 5})
				return err
			}}),
		repair("chain flushed", nil,
			drift{"flush chain inet edgefw input", func(k *nfttest.Kernel, _ handles) error { return k.FlushChain("input") }}),
		repair("chain policy changed", []string{"set policy of chain input to drop"},
			drift{"add chain inet edgefw input { policy accept; }", func(k *nfttest.Kernel, _ handles) error {
				return k.SetPolicy("input", "accept")
			}}),
		repair("chain replaced at another hook", nil, replaceChain("input", "type filter hook output priority filter; policy drop;", outputHook)...),
		repair("chain replaced at another priority", nil, replaceChain("input", "type filter hook input priority 10; policy drop;", prio10)...),
		repair("foreign counter and set added", []string{"delete set stray-set", `delete counter "stray"`},
			drift{"add counter inet edgefw stray", func(k *nfttest.Kernel, _ handles) error { return k.AddCounter("stray", nft.Counter{}) }},
			drift{"add set inet edgefw stray-set { type inet_service; }", func(k *nfttest.Kernel, _ handles) error {
				return k.AddSet(nft.SetState{Name: "stray-set", KeyType: "inet_service"})
			}}),
		repair("table deleted", nil,
			drift{"delete table inet edgefw", func(k *nfttest.Kernel, _ handles) error { return k.DeleteTable() }}),
	}
}

// replaceChain deletes a chain and adds one of the same name elsewhere.
func replaceChain(name, decl string, base *nft.BaseChain) []drift {
	return []drift{
		{"flush chain inet edgefw " + name, func(k *nfttest.Kernel, _ handles) error { return k.FlushChain(name) }},
		{"delete chain inet edgefw " + name, func(k *nfttest.Kernel, _ handles) error { return k.DeleteChain(name) }},
		{"add chain inet edgefw " + name + " { " + decl + " }", func(k *nfttest.Kernel, _ handles) error { return k.AddChain(name, base) }},
	}
}

// foreignCases add chains, sets and maps that refer to one another, as
// TestForeignChainsRepaired does: they must be taken apart in order, by
// the patch and by the full replacement.
func foreignCases() []planCase {
	chain := func(name string) drift {
		return drift{"add chain inet edgefw " + name, func(k *nfttest.Kernel, _ handles) error { return k.AddChain(name, nil) }}
	}
	rule := func(chainName, text string, r nfttest.Rule) drift {
		verb := "add"
		if r.Insert {
			verb = "insert"
		}
		return drift{verb + " rule inet edgefw " + chainName + " " + text, func(k *nfttest.Kernel, _ handles) error {
			_, err := k.AddRule(chainName, r)
			return err
		}}
	}
	scenarios := []struct {
		name  string
		drift []drift
	}{
		{"a chain our chain jumps to", []drift{
			chain("stray"),
			rule("stray", "accept", nfttest.Rule{Exprs: 1}),
			rule("input", "jump stray", nfttest.Rule{Insert: true, Jump: "stray", Exprs: 1}),
		}},
		{"chains, a set and a map that refer to one another", []drift{
			chain("stray1"), chain("stray2"),
			rule("stray2", "counter name web accept", nfttest.Rule{Counters: []string{"web"}, Exprs: 2}),
			{"add map inet edgefw vm { type ipv4_addr : verdict; elements = { 10.0.0.1 : jump stray2 } }", func(k *nfttest.Kernel, _ handles) error {
				return k.AddSet(nft.SetState{Name: "vm", KeyType: "ipv4_addr", IsMap: true, DataType: "verdict",
					Elements: []nft.AddrRange{cidr("10.0.0.1/32")}}, "stray2")
			}},
			{"add set inet edgefw odd { type ipv4_addr; elements = { 10.0.0.2 } }", func(k *nfttest.Kernel, _ handles) error {
				return k.AddSet(nft.SetState{Name: "odd", KeyType: "ipv4_addr", Elements: []nft.AddrRange{cidr("10.0.0.2/32")}})
			}},
			rule("stray1", "ip saddr vmap @vm", nfttest.Rule{Sets: []string{"vm"}, Exprs: 4}),
			rule("stray1", "ip saddr @odd goto stray2", nfttest.Rule{Sets: []string{"odd"}, Jump: "stray2", Exprs: 5}),
			rule("stray1", "ip saddr @trusted-v4 jump stray2", nfttest.Rule{Sets: []string{"trusted-v4"}, Jump: "stray2", Exprs: 5}),
			rule("input", "jump stray1", nfttest.Rule{Insert: true, Jump: "stray1", Exprs: 1}),
			rule("output", "ip daddr @odd jump stray2", nfttest.Rule{Sets: []string{"odd"}, Jump: "stray2", Exprs: 5}),
		}},
		{"one of our chains replaced by a chain another jumps to", append(
			replaceChain("forward", "", nil)[:2], chain("forward"),
			rule("forward", "counter name web drop", nfttest.Rule{Counters: []string{"web"}, Exprs: 2}),
			rule("input", "jump forward", nfttest.Rule{Insert: true, Jump: "forward", Exprs: 1}),
			rule("output", "jump forward", nfttest.Rule{Insert: true, Jump: "forward", Exprs: 1}),
		)},
	}
	var cases []planCase
	for _, s := range scenarios {
		for _, full := range []bool{false, true} {
			cases = append(cases, planCase{name: fmt.Sprintf("%s (full %v)", s.name, full), steps: []step{
				{policy: baseYAML}, {drift: s.drift, full: full},
			}})
		}
	}
	return cases
}

// limitCases add and remove a rule's limits, as TestLimitChainComesAndGoes
// does: its limit chain, meters and counter come and go in patches.
func limitCases() []planCase {
	var steps []step
	for _, limit := range []string{
		"",
		"limit: {rate: 10/second}",
		"limit: {rate: 10/second, perSource: true}\n    connLimit: {max: 3}",
		"connLimit: {max: 3, perSource: true}",
		"limit: {rate: 10/minute, perSource: true}",
		"",
		"limit: {rate: 5/minute, burst: 7}",
	} {
		steps = append(steps, step{policy: fmt.Sprintf(limitYAML, limit)})
	}
	return []planCase{{name: "limit chains and meters come and go", steps: steps}}
}

// refusedCases apply rulesets that pass the compiler but not the kernel,
// as TestKernelRejectionChangesNothing does: nothing changes, counters
// included, and the error names the object.
func refusedCases() []planCase {
	const doc = baseYAML + `  - name: dns
    direction: input
    ports: [{protocol: udp, port: 53}]
    limit: {rate: 10/second}
    action: accept
`
	seed := map[string]nft.Counter{"web": {Packets: 4, Bytes: 240}, "dns": {Packets: 2, Bytes: 100}}
	refused := func(name, wantErr string, mutate func(rs *nft.Ruleset)) planCase {
		return planCase{name: "refused: " + name, seed: seed, steps: []step{
			{policy: doc}, {mutate: mutate, wantErr: wantErr, kept: []string{"web", "dns"}},
		}}
	}
	return []planCase{
		refused("counter that does not exist", `add rule "web" in chain input: no such file or directory`, func(rs *nft.Ruleset) {
			rule(rs, "web").Counter = "not-a-counter"
		}),
		refused("set that does not exist", `add rule "metrics" in chain input: no such file or directory`, func(rs *nft.Ruleset) {
			r := rule(rs, "metrics")
			m := r.Matches[0].(nft.AddrMatch)
			m.Set = "missing-v4"
			r.Matches[0] = m
		}),
		refused("limit rate of zero", `add rule "dns" in chain input: invalid argument`, func(rs *nft.Ruleset) {
			rule(rs, "dns").Limit = &nft.RateLimit{Rate: 0, Per: "second"}
		}),
		refused("mss clamping in input", `add rule "web" in chain input: operation not supported`, func(rs *nft.Ruleset) {
			rule(rs, "web").Stmt = nft.MSSClampStmt{}
		}),
		refused("set name too long", "add set "+strings.Repeat("s", 300)+" (0 ranges): numerical result out of range (Attribute failed policy validation)",
			func(rs *nft.Ruleset) { rs.Sets = append(rs.Sets, &nft.AddrSet{Name: strings.Repeat("s", 300)}) }),
	}
}

// rule returns the first kernel rule of a policy rule.
func rule(rs *nft.Ruleset, owner string) *nft.Rule {
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			if r.Owner == owner {
				return r
			}
		}
	}
	panic("no rule " + owner)
}

// cidr is the range of addresses of a prefix.
func cidr(s string) nft.AddrRange {
	p := netip.MustParsePrefix(s).Masked()
	to := p.Addr().AsSlice()
	for i := p.Bits(); i < len(to)*8; i++ {
		to[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(to)
	return nft.AddrRange{From: p.Addr(), To: last}
}

// checkCases commit ops as they are, that no plan makes, to hold the
// fake's checks to the kernel's.
func checkCases() []planCase {
	accept := &nft.Rule{Owner: "x", Verdict: policy.Accept}
	check := func(name, wantErr string, ops func(h handles) []nft.Op) planCase {
		return planCase{name: "check: " + name, seed: map[string]nft.Counter{"web": {Packets: 1, Bytes: 60}}, steps: []step{
			{policy: fmt.Sprintf(limitYAML, "limit: {rate: 10/second}")}, {ops: ops, wantErr: wantErr},
		}}
	}
	set := &nft.AddrSet{Name: "a-v4"}
	return []planCase{
		check("delete a counter a rule counts into", `delete counter "web": device or resource busy`, func(handles) []nft.Op {
			return []nft.Op{nft.DeleteCounter{Name: "web"}}
		}),
		check("all or nothing", `delete counter "web": device or resource busy`, func(handles) []nft.Op {
			return []nft.Op{nft.AddCounter{Name: "new"}, nft.AddElements{Set: set, Ranges: []nft.AddrRange{cidr("10.0.0.0/8")}},
				nft.DeleteCounter{Name: "web"}}
		}),
		check("add a counter that exists", "", func(handles) []nft.Op { return []nft.Op{nft.AddCounter{Name: "web"}} }),
		check("delete a counter that does not exist", `delete counter "nope": no such file or directory`, func(handles) []nft.Op {
			return []nft.Op{nft.DeleteCounter{Name: "nope"}}
		}),
		check("delete a set a rule looks up", "delete set a-v4: device or resource busy", func(handles) []nft.Op {
			return []nft.Op{nft.DeleteSet{Name: "a-v4"}}
		}),
		check("delete a chain a rule jumps to", "delete chain "+nft.LimitChain("web")+": device or resource busy", func(handles) []nft.Op {
			return []nft.Op{nft.DeleteChain{Name: nft.LimitChain("web")}}
		}),
		check("delete a chain with rules nothing jumps to", "", func(handles) []nft.Op {
			return []nft.Op{nft.DeleteChain{Name: "output"}}
		}),
		check("flush a chain, then delete the chain it jumped to", "", func(handles) []nft.Op {
			return []nft.Op{nft.FlushChain{Chain: "input"}, nft.DeleteChain{Name: nft.LimitChain("web")}}
		}),
		check("add an overlapping range", "add 1 ranges to set a-v4: file exists", func(handles) []nft.Op {
			return []nft.Op{nft.AddElements{Set: set, Ranges: []nft.AddrRange{cidr("192.0.2.0/24")}}}
		}),
		check("add a range that covers one", "add 1 ranges to set a-v4: file exists", func(handles) []nft.Op {
			return []nft.Op{nft.AddElements{Set: set, Ranges: []nft.AddrRange{cidr("192.0.2.8/29")}}}
		}),
		check("add a range the set holds", "", func(handles) []nft.Op {
			return []nft.Op{nft.AddElements{Set: set, Ranges: []nft.AddrRange{cidr("192.0.2.10/32")}}}
		}),
		check("add adjacent ranges", "", func(handles) []nft.Op {
			return []nft.Op{nft.AddElements{Set: set, Ranges: []nft.AddrRange{cidr("192.0.2.9/32"), cidr("192.0.2.11/32")}}}
		}),
		check("delete a range the set does not hold", "delete 1 ranges from set a-v4: no such file or directory", func(handles) []nft.Op {
			return []nft.Op{nft.DeleteElements{Set: set, Ranges: []nft.AddrRange{cidr("192.0.2.0/24")}}}
		}),
		check("delete a range twice", "delete 1 ranges from set a-v4: no such file or directory", func(handles) []nft.Op {
			one := nft.DeleteElements{Set: set, Ranges: []nft.AddrRange{cidr("192.0.2.10/32")}}
			return []nft.Op{one, one}
		}),
		check("add elements to a set that does not exist", "add 1 ranges to set nope: no such file or directory", func(handles) []nft.Op {
			return []nft.Op{nft.AddElements{Set: &nft.AddrSet{Name: "nope"}, Ranges: []nft.AddrRange{cidr("10.0.0.0/8")}}}
		}),
		check("add a meter over a set", "add meter a-v4: file exists", func(handles) []nft.Op {
			return []nft.Op{nft.AddMeter{Meter: &nft.Meter{Name: "a-v4", Size: 10}}}
		}),
		check("add a set of the same kind again", "", func(handles) []nft.Op {
			return []nft.Op{nft.AddSet{Set: &nft.AddrSet{Name: "a-v4"}}}
		}),
		check("move a base chain to another hook", "add chain input: operation not supported", func(handles) []nft.Op {
			return []nft.Op{nft.AddChain{Chain: &nft.Chain{Name: "input", Hook: policy.Output, Policy: policy.Drop}}}
		}),
		check("make a regular chain a base chain", "add chain "+nft.LimitChain("web")+": operation not supported", func(handles) []nft.Op {
			return []nft.Op{nft.AddChain{Chain: &nft.Chain{Name: nft.LimitChain("web"), Hook: policy.Input, Policy: policy.Drop}}}
		}),
		check("add a base chain as a regular chain", "", func(handles) []nft.Op {
			return []nft.Op{nft.AddChain{Chain: &nft.Chain{Name: "input"}}}
		}),
		check("delete a rule that does not exist", "delete rule 999999 of chain input: no such file or directory", func(handles) []nft.Op {
			return []nft.Op{nft.DeleteRule{Chain: "input", Handle: 999999}}
		}),
		check("add a rule before one that does not exist", `add rule "x" in chain input: no such file or directory`, func(handles) []nft.Op {
			return []nft.Op{nft.AddRule{Chain: "input", Rule: accept, Before: 999999}}
		}),
		check("add a rule to a chain that does not exist", `add rule "x" in chain nope: no such file or directory`, func(handles) []nft.Op {
			return []nft.Op{nft.AddRule{Chain: "nope", Rule: accept}}
		}),
		check("jump to a base chain", `add rule "x" in chain `+nft.LimitChain("web")+": operation not supported", func(handles) []nft.Op {
			return []nft.Op{nft.AddRule{Chain: nft.LimitChain("web"), Rule: &nft.Rule{Owner: "x", Jump: "output"}}}
		}),
		check("jump to a chain that does not exist", `add rule "x" in chain input: no such file or directory`, func(handles) []nft.Op {
			return []nft.Op{nft.AddRule{Chain: "input", Rule: &nft.Rule{Owner: "x", Jump: "nope"}}}
		}),
		check("delete the table, then add to it", `add counter "x": no such file or directory`, func(handles) []nft.Op {
			return []nft.Op{nft.DeleteTable{}, nft.AddCounter{Name: "x"}}
		}),
		check("delete the table twice", "delete table inet edgefw: no such file or directory", func(handles) []nft.Op {
			return []nft.Op{nft.DeleteTable{}, nft.DeleteTable{}}
		}),
		check("delete one of web's rules, then its counter", `delete counter "web": device or resource busy`, func(h handles) []nft.Op {
			return []nft.Op{nft.DeleteRule{Chain: "input", Handle: h("input", "web")}, nft.DeleteCounter{Name: "web"}}
		}),
		check("flush the chain of web's rules, then delete its counter and the table", "", func(handles) []nft.Op {
			return []nft.Op{nft.FlushChain{Chain: "input"}, nft.DeleteCounter{Name: "web"}, nft.DeleteTable{}}
		}),
	}
}
