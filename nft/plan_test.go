package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/policy"
)

// held returns the TableState of a kernel that holds exactly rs as an
// Applier wrote it, with rule handles numbered from 1 in chain order.
func held(rs *Ruleset) *TableState {
	ks := &TableState{Exists: true, Counters: map[string]Counter{}, Sets: map[string]*SetState{}, Chains: map[string]*ChainState{}}
	for _, n := range rs.Counters {
		ks.Counters[n] = Counter{}
	}
	for _, s := range rs.Sets {
		ks.Sets[s.Name] = &SetState{Name: s.Name, KeyType: addrType(s.V6), Interval: true, Elements: slices.Clone(s.Ranges)}
	}
	for _, m := range rs.Meters {
		ks.Sets[m.Name] = &SetState{Name: m.Name, KeyType: addrType(m.V6), Dynamic: true,
			HasTimeout: m.Timeout > 0, Timeout: m.Timeout, Size: m.Size}
	}
	p := newPlanner(&TableState{}, rs, false)
	var handle uint64
	for _, ch := range rs.Chains {
		cs := &ChainState{Name: ch.Name}
		if !ch.Regular() {
			cs.Base = &BaseChain{Type: "filter", Hook: string(ch.Hook), Policy: policyName(ch)}
		}
		for _, r := range ch.Rules {
			handle++
			op := p.addRule(ch, r, 0)
			rs := RuleState{Handle: handle, Hash: r.Hash(), Counted: op.Counted, Exprs: op.Expressions()}
			if r.Dispatch != nil && r.Dispatch.Direct {
				rs.MapCounters = r.Counters()
			} else {
				rs.Counters = r.Counters()
			}
			cs.Rules = append(cs.Rules, rs)
		}
		ks.Chains[ch.Name] = cs
	}
	return ks
}

// summary writes an op with what it carries besides its Change.
func summary(op Op) string {
	switch op := op.(type) {
	case AddRule:
		s := op.Change()
		if op.Before != 0 {
			s += fmt.Sprintf(" before %d", op.Before)
		}
		if op.Counted != "" {
			s += fmt.Sprintf(" counted %q", op.Counted)
		}
		return s
	case AddElements:
		return fmt.Sprintf("%s: %v", op.Change(), op.Ranges)
	case DeleteElements:
		return fmt.Sprintf("%s: %v", op.Change(), op.Ranges)
	}
	return op.Change()
}

func summaries(ops []Op) []string {
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = summary(op)
	}
	return out
}

// rulesOf lists the AddRule summaries of a chain of rs, appended in order.
func rulesOf(rs *Ruleset, chain string) []string {
	var out []string
	p := newPlanner(&TableState{}, rs, false)
	for _, ch := range rs.Chains {
		if ch.Name == chain {
			for _, r := range ch.Rules {
				out = append(out, summary(p.addRule(ch, r, 0)))
			}
		}
	}
	return out
}

// TestPlanIncremental plans rulesets over tables held in fixtures, for the
// situations the kernel tests meet, and checks the ops in their order and
// what they carry: where rules go (the handle of the rule they go before),
// what their counters record, which ranges move.
func TestPlanIncremental(t *testing.T) {
	base := compileYAML(t, incrementalBase)
	changed := compileYAML(t, strings.NewReplacer("port: 8080", "port: 8081", "rules:\n", `rules:
  - name: new-first
    direction: input
    ports: [{protocol: udp, port: 5000}]
    action: accept
`).Replace(strings.Replace(incrementalBase, `  - name: metrics
    direction: input
    from: [{set: trusted}]
    ports: [{protocol: tcp, port: 9100}]
    action: accept
`, "", 1)))
	// In base's chain input, handles 1 to 7 are the implicit rules, 8 is
	// web, 9 and 10 metrics, 11 other, 12 and 13 the default.
	tests := []struct {
		name  string
		ks    func() *TableState
		rs    *Ruleset
		want  []string
		check func(t *testing.T, ops []Op)
	}{
		{name: "the table holds the ruleset", ks: func() *TableState { return held(base) }, rs: base, want: []string{}},
		{
			name: "rules added, removed and changed",
			ks:   func() *TableState { return held(base) }, rs: changed,
			want: []string{
				`add counter "new-first"`,
				"delete rule 9 of chain input", "delete rule 10 of chain input", "delete rule 11 of chain input",
				`delete counter "metrics"`,
				`add rule "new-first" in chain input before 8 counted "input accept"`,
				`add rule "other" in chain input before 12 counted "input accept"`,
			},
		},
		{
			name: "rule moved",
			ks:   func() *TableState { return held(compileYAML(t, "version: 1\nrules:\n"+xRules(1, 2, 3))) },
			rs:   compileYAML(t, "version: 1\nrules:\n"+xRules(3, 1, 2)),
			want: []string{"delete rule 10 of chain input", `add rule "x3" in chain input before 8 counted "input accept"`},
		},
		{
			name: "rules deleted behind our back",
			ks: func() *TableState {
				ks := held(base)
				ks.Chains["input"].Rules = slices.Delete(ks.Chains["input"].Rules, 7, 10) // web and metrics
				return ks
			},
			rs: base,
			want: []string{
				`add rule "web" in chain input before 11 counted "input accept"`,
				`add rule "metrics" in chain input before 11 counted "input accept"`,
				`add rule "metrics" in chain input before 11 counted "input accept"`,
			},
		},
		{
			name: "a foreign rule, chain, set and counter",
			ks: func() *TableState {
				ks := held(base)
				in := ks.Chains["input"]
				in.Rules = slices.Insert(in.Rules, 0, RuleState{Handle: 50, Exprs: 1})
				ks.Chains["stray"] = &ChainState{Name: "stray", Rules: []RuleState{{Handle: 51, Counters: []string{"web"}, Exprs: 2}}}
				ks.Sets["odd"] = &SetState{Name: "odd", KeyType: "ipv4_addr"}
				ks.Counters["stray"] = Counter{Packets: 1}
				return ks
			},
			rs: base,
			want: []string{
				"delete rule 50 of chain input",
				"flush chain stray", "delete set odd", "delete chain stray", `delete counter "stray"`,
			},
		},
		{
			name: "set elements added and removed",
			ks: func() *TableState {
				ks := held(base)
				ks.Sets["trusted-v4"].Elements = []AddrRange{prefixRange(mustPrefix("10.0.0.0/8")), prefixRange(mustPrefix("192.0.2.0/25"))}
				ks.Sets["trusted-v6"].Elements = nil
				return ks
			},
			rs: base,
			want: []string{
				"delete 1 ranges from set trusted-v4: [{10.0.0.0 10.255.255.255}]",
				"add 2 ranges to set trusted-v4: [{198.51.100.0 198.51.100.255} {203.0.113.8 203.0.113.15}]",
				"add 1 ranges to set trusted-v6: [{2001:db8:: 2001:db8::ffff:ffff:ffff:ffff}]",
			},
		},
		{
			name: "a set of another family is recreated, and the rules that look it up rewritten",
			ks: func() *TableState {
				ks := held(base)
				ks.Sets["trusted-v4"].KeyType = "ipv6_addr"
				return ks
			},
			rs: base,
			check: func(t *testing.T, ops []Op) {
				got := summaries(ops)
				want := slices.Concat(
					[]string{"delete set trusted-v4", "add set trusted-v4 (3 ranges)"},
					rulesOf(base, "input")[7:11])
				for _, w := range want {
					if !slices.Contains(got, w) {
						t.Errorf("ops lack %q: %q", w, got)
					}
				}
				if i, j := slices.Index(got, "delete set trusted-v4"), slices.Index(got, "add set trusted-v4 (3 ranges)"); i > j {
					t.Errorf("the set is added before it is deleted: %q", got)
				}
			},
		},
		{
			name: "chain policy changed behind our back",
			ks: func() *TableState {
				ks := held(base)
				ks.Chains["input"].Base.Policy = "accept"
				return ks
			},
			rs:   base,
			want: []string{"set policy of chain input to drop"},
		},
		{
			name: "base chain at another priority is replaced",
			ks: func() *TableState {
				ks := held(base)
				ks.Chains["input"].Base.Priority = 10
				return ks
			},
			rs:   base,
			want: slices.Concat([]string{"flush chain input", "delete chain input", "add chain input"}, rulesOf(base, "input")),
		},
		{
			name: "base chain of another type is replaced",
			ks: func() *TableState {
				ks := held(base)
				ks.Chains["output"].Base.Type = "route"
				return ks
			},
			rs:   base,
			want: slices.Concat([]string{"flush chain output", "delete chain output", "add chain output"}, rulesOf(base, "output")),
		},
		{
			name: "a regular chain where a base chain goes is replaced",
			ks: func() *TableState {
				ks := held(base)
				ks.Chains["forward"].Base = nil
				return ks
			},
			rs:   base,
			want: slices.Concat([]string{"flush chain forward", "delete chain forward", "add chain forward"}, rulesOf(base, "forward")),
		},
		{
			name: "the table is gone",
			ks:   func() *TableState { return &TableState{} },
			rs:   compileYAML(t, "version: 1\n"),
			check: func(t *testing.T, ops []Op) {
				rs := compileYAML(t, "version: 1\n")
				got := summaries(ops)
				if got[0] != "add table inet edgefw" || len(got) != 1+len(rs.Counters)+len(rs.Chains)+len(rulesOf(rs, "input"))+len(rulesOf(rs, "forward"))+len(rulesOf(rs, "output")) {
					t.Errorf("first plan: %q", got)
				}
				if got[len(got)-1] != rulesOf(rs, "output")[len(rulesOf(rs, "output"))-1] {
					t.Errorf("the last op is not the last rule appended: %q", got[len(got)-1])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := tt.ks()
			before := fmt.Sprint(ks)
			ops, err := plan(ks, tt.rs, false)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, summaries(ops)); diff != "" {
					t.Errorf("ops (-want +got):\n%s", diff)
				}
			}
			if tt.check != nil {
				tt.check(t, ops)
			}
			if fmt.Sprint(ks) != before {
				t.Errorf("plan changed the state it planned on")
			}
		})
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// xRules writes input rules xN accepting tcp port N.
func xRules(ports ...int) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "  - {name: x%d, direction: input, ports: [{protocol: tcp, port: %d}], action: accept}\n", p, p)
	}
	return b.String()
}

// TestPlanCounters plans rulesets whose counters change meaning, or keep
// it, over tables that recorded it or did not.
func TestPlanCounters(t *testing.T) {
	inAccept := compileYAML(t, fmt.Sprintf(countedPolicy, "input", "accept"))
	inDrop := compileYAML(t, fmt.Sprintf(countedPolicy, "input", "drop"))
	outDrop := compileYAML(t, fmt.Sprintf(countedPolicy, "output", "drop"))
	limited := LimitedCounter("web")

	ops, err := plan(held(inAccept), inDrop, false)
	if err != nil {
		t.Fatal(err)
	}
	got := summaries(ops)
	if !slices.Contains(got, `reset counter "web": now counts input drop`) || slices.ContainsFunc(got, func(s string) bool {
		return strings.HasPrefix(s, fmt.Sprintf("reset counter %q", limited))
	}) {
		t.Errorf("action changed: %q; want web reset and its limited counter kept", got)
	}
	for _, op := range ops {
		if ar, ok := op.(AddRule); ok && ar.Rule.Counter == "web" && ar.Counted != "input drop" {
			t.Errorf("web's rule records %q", ar.Counted)
		}
	}
	// The reset comes after the deletion of every rule that counts into
	// web, and before the rules that count into it again.
	reset := slices.Index(got, `reset counter "web": now counts input drop`)
	for i, op := range ops {
		switch op := op.(type) {
		case DeleteRule:
			if i > reset {
				t.Errorf("rule %d deleted after the reset", op.Handle)
			}
		case AddRule:
			if i < reset {
				t.Errorf("rule %q added before the reset", op.Rule.Owner)
			}
		}
	}

	ops, err = plan(held(inDrop), outDrop, false)
	if err != nil {
		t.Fatal(err)
	}
	got = summaries(ops)
	for _, name := range []string{"web", limited} {
		if !slices.Contains(got, fmt.Sprintf("reset counter %q: now counts output drop", name)) {
			t.Errorf("direction changed: %q; want %s reset", got, name)
		}
	}

	// Rules written before the record existed, or by someone else, record
	// nothing: their counters are kept.
	unknown := held(inAccept)
	for _, ch := range unknown.Chains {
		for i := range ch.Rules {
			ch.Rules[i].Counted = ""
		}
	}
	ops, err = plan(unknown, inDrop, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := summaries(ops); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "reset") }) {
		t.Errorf("counters without a record were reset: %q", got)
	}
	// A counter whose rules recorded two meanings counted both: reset.
	two := held(inDrop)
	two.Chains["input"].Rules[0].Counters = []string{"web"}
	two.Chains["input"].Rules[0].Counted = "input accept"
	if reset := countersToReset(two, inDrop); !reset["web"] || len(reset) != 1 {
		t.Errorf("countersToReset = %v, want web alone", reset)
	}
}

// TestPlanLimitsAndMeters adds and removes a rule's limit chain and
// meters, and recreates a meter that changed, with the rules that use it.
func TestPlanLimitsAndMeters(t *testing.T) {
	with := func(limit string) *Ruleset { return compileYAML(t, fmt.Sprintf(sharedLimitPolicy, limit)) }
	none, global := with(""), with("limit: {rate: 10/second}")
	perSource := with("limit: {rate: 10/second, perSource: true}")
	otherPort := compileYAML(t, strings.Replace(fmt.Sprintf(sharedLimitPolicy, "limit: {rate: 10/second, perSource: true}"), "port: 80}", "port: 81}", 1))

	ops, err := plan(held(none), global, false)
	if err != nil {
		t.Fatal(err)
	}
	got := summaries(ops)
	chain := LimitChain("web")
	for _, w := range slices.Concat([]string{fmt.Sprintf("add counter %q", LimitedCounter("web")), "add chain " + chain}, rulesOf(global, chain)) {
		if !slices.Contains(got, w) {
			t.Errorf("adding a limit: ops lack %q: %q", w, got)
		}
	}

	ops, err = plan(held(global), none, false)
	if err != nil {
		t.Fatal(err)
	}
	got = summaries(ops)
	flush, del := slices.Index(got, "flush chain "+chain), slices.Index(got, "delete chain "+chain)
	if flush < 0 || del < flush || !slices.Contains(got, fmt.Sprintf("delete counter %q", LimitedCounter("web"))) {
		t.Errorf("removing a limit: %q", got)
	}

	// A meter that stays as it is keeps its state (the sources' buckets)
	// when the rules that update it change; one whose timeout changed is
	// recreated, with every rule that updates it.
	ops, err = plan(held(perSource), otherPort, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range summaries(ops) {
		if strings.Contains(s, "meter") || strings.HasPrefix(s, "delete set") {
			t.Errorf("a rule's port change recreated a meter: %q", s)
		}
	}
	changed := held(perSource)
	for _, s := range changed.Sets {
		if s.Dynamic {
			s.Timeout++
		}
	}
	ops, err = plan(changed, perSource, false)
	if err != nil {
		t.Fatal(err)
	}
	got = summaries(ops)
	for _, m := range perSource.Meters {
		if i, j := slices.Index(got, "delete set "+m.Name), slices.Index(got, "add meter "+m.Name); i < 0 || j < i {
			t.Errorf("meter %s with another timeout: %q", m.Name, got)
		}
	}
	for _, w := range rulesOf(perSource, chain) {
		if !slices.Contains(got, w) {
			t.Errorf("a recreated meter: its rule %q is not rewritten: %q", w, got)
		}
	}
}

// TestPlanFull plans the full replacement that Apply falls back to: every
// set's elements replaced and every rule rewritten, counters kept.
func TestPlanFull(t *testing.T) {
	base := compileYAML(t, incrementalBase)
	ops, err := plan(held(base), base, true)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	want = append(want, "replace elements of set trusted-v4", "replace elements of set trusted-v6")
	ks := held(base)
	for _, ch := range base.Chains {
		for _, r := range ks.Chains[ch.Name].Rules {
			want = append(want, fmt.Sprintf("delete rule %d of chain %s", r.Handle, ch.Name))
		}
	}
	for _, ch := range base.Chains {
		want = append(want, rulesOf(base, ch.Name)...)
	}
	// Every rule is deleted, chain by chain, and added again last, in
	// chain order, each appended; counters and chains stay.
	if diff := cmp.Diff(want, summaries(ops)); diff != "" {
		t.Errorf("full plan (-want +got):\n%s", diff)
	}
}

// TestPlanRefusesMalformedRulesets: names are the diff's keys, so a
// ruleset with two objects of one name is refused before any op.
func TestPlanRefusesMalformedRulesets(t *testing.T) {
	for name, mutate := range map[string]func(rs *Ruleset){
		"two chains": func(rs *Ruleset) {
			rs.Chains = append(rs.Chains, &Chain{Name: "input", Hook: policy.Output, Policy: policy.Accept})
		},
		"two sets":         func(rs *Ruleset) { rs.Sets = append(rs.Sets, &AddrSet{Name: rs.Sets[0].Name}) },
		"two counters":     func(rs *Ruleset) { rs.Counters = append(rs.Counters, "web") },
		"hook unknown":     func(rs *Ruleset) { rs.Chains[0].Hook = "prerouting" },
		"jump to a base":   func(rs *Ruleset) { rs.Chains[0].Rules[0].Jump, rs.Chains[0].Rules[0].Verdict = "output", "" },
		"regular + policy": func(rs *Ruleset) { rs.Chains = append(rs.Chains, &Chain{Name: "r", Policy: policy.Drop}) },
	} {
		rs := compileYAML(t, incrementalBase)
		mutate(rs)
		if ops, err := plan(held(compileYAML(t, incrementalBase)), rs, false); err == nil || ops != nil || !strings.Contains(err.Error(), "invalid ruleset") {
			t.Errorf("%s: plan = %d ops, %v; want an invalid ruleset error", name, len(ops), err)
		}
	}
}

// A direct map holds keys of one verdict, so that its kernel rule records
// one meaning for all its counters (udataCounted), and lists them.
func TestDirectMapsRecordTheirCountersMeaning(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for port := 1; port <= 12; port++ {
		action := "accept"
		if port%3 == 0 {
			action = "drop"
		}
		fmt.Fprintf(&b, "  - {name: x%d, direction: input, ports: [{protocol: tcp, port: %d}], action: %s}\n", port, port, action)
	}
	rs := compileYAML(t, b.String())
	p := newPlanner(&TableState{}, rs, false)
	var got []string
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			if r.Dispatch == nil || !r.Dispatch.Direct {
				continue
			}
			got = append(got, fmt.Sprintf("%s %v", p.counted(r), r.Counters()))
		}
	}
	want := []string{"input accept [x1 x2 x4 x5 x7 x8 x10 x11]", "input drop [x3 x6 x9 x12]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("direct maps (-want +got):\n%s", diff)
	}
}

// A direct-map rule written before direct maps recorded their counters'
// meaning is rewritten once, with it, its counters kept; a direct map's
// action flip resets the counter, which its old and new rules hold.
func TestPlanDirectMapMeaning(t *testing.T) {
	policyWith := func(drop int) string {
		var b strings.Builder
		b.WriteString("version: 1\nrules:\n")
		for port := 1; port <= 8; port++ {
			action := "accept"
			if port == drop {
				action = "drop"
			}
			fmt.Fprintf(&b, "  - {name: x%d, direction: input, ports: [{protocol: tcp, port: %d}], action: %s}\n", port, port, action)
		}
		return b.String()
	}
	rs := compileYAML(t, policyWith(0))
	ks := held(rs)
	for _, ch := range ks.Chains {
		for i := range ch.Rules {
			if len(ch.Rules[i].MapCounters) > 0 {
				ch.Rules[i].Counted = "" // written before it was recorded
			}
		}
	}
	ops, err := plan(ks, rs, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summaries(ops), []string{"delete rule 8 of chain input", `add rule "input" in chain input before 9 counted "input accept"`}; !slices.Equal(got, want) {
		t.Errorf("a direct map without its meaning: %q, want %q", got, want)
	}

	ops, err = plan(held(rs), compileYAML(t, policyWith(3)), false)
	if err != nil {
		t.Fatal(err)
	}
	got := summaries(ops)
	for _, want := range []string{"delete rule 8 of chain input", `reset counter "x3": now counts input drop`, `add rule "input" in chain input before 9 counted "input drop"`} {
		if !slices.Contains(got, want) {
			t.Errorf("x3 goes from accept to drop: %q has no %q", got, want)
		}
	}
}
