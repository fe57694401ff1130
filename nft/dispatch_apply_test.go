package nft

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/policy"
)

// addedRule matches AddRule's Change: `add rule "OWNER" in chain NAME`.
var addedRule = regexp.MustCompile(`^add rule "([^"]+)" in chain (\S+)$`)

// checkOnlyRulesOf fails unless every rule the changes add belongs to
// one of owners, is a base chain's verdict map (owned by its chain), or
// goes into a chain the changes add: a key whose rules changed gets a
// chain of its own, holding the other rules of its ports too.
func checkOnlyRulesOf(t *testing.T, changes []string, owners ...string) {
	t.Helper()
	for _, c := range changes {
		m := addedRule.FindStringSubmatch(c)
		if m == nil || slices.Contains(changes, "add chain "+m[2]) {
			continue
		}
		if !slices.Contains(owners, m[1]) && !slices.Contains([]string{"input", "output", "forward"}, m[1]) {
			t.Errorf("%q rewrites a rule of %s, which did not change, in a chain that stays; changes: %q", c, m[1], changes)
		}
	}
}

// chainBlocks cuts a listing into its blocks (a chain, a set), sorted: a
// chain added by a later apply is listed after the others.
func chainBlocks(s string) []string {
	s = strings.TrimSuffix(strings.TrimRight(s, "\n"), "\n}")
	blocks := strings.Split(s, "\n\n")
	slices.Sort(blocks)
	return blocks
}

// TestDispatchAppliesIncrementally changes one rule of a dispatched run
// at a time: the kernel ends up holding exactly the rendered ruleset, and
// only the changed rule and the maps are rewritten.
func TestDispatchAppliesIncrementally(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "dispatch-inc")
	fw := NewApplier(WithNetNS(ns.FD))
	p, err := policy.Load("testdata/golden/dispatch-100.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rule := func(name string) *policy.Rule {
		for i := range p.Rules {
			if p.Rules[i].Name == name {
				return &p.Rules[i]
			}
		}
		t.Fatalf("no rule %s", name)
		return nil
	}
	steps := []struct {
		name    string
		change  func()
		touched []string // owners whose rules may be added
	}{
		{"as is", func() {}, nil},
		{"a port moves", func() { rule("svc-050").Ports[0].Port, rule("svc-050").Ports[0].EndPort = 4000, 4010 }, []string{"svc-050"}},
		{"a port joins another rule's", func() { rule("svc-017").Ports[0].Port, rule("svc-017").Ports[0].EndPort = 8005, 8005 }, []string{"svc-017"}},
		{"a source is added", func() { rule("svc-020").From = []policy.Peer{{Set: "mgmt"}} }, []string{"svc-020"}},
		{"a rule goes to audit", func() { r := rule("svc-030"); r.Action, r.Mode = policy.Drop, policy.Audit }, []string{"svc-030"}},
		{"a rule without ports cuts the run", func() { rule("svc-040").Ports = nil }, nil},
		{"back as it was", func() {
			q, err := policy.Load("testdata/golden/dispatch-100.yaml")
			if err != nil {
				t.Fatal(err)
			}
			p = q
		}, nil},
	}
	for _, st := range steps {
		st.change()
		rs, err := Compile(p)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		start := time.Now()
		res, err := fw.Apply(rs)
		if err != nil {
			t.Fatalf("%s: apply: %v", st.name, err)
		}
		t.Logf("%s: %d changes, %d messages, %v", st.name, len(res.Changes), res.Messages, time.Since(start))
		if st.touched != nil {
			checkOnlyRulesOf(t, res.Changes, st.touched...)
			if d := cmp.Diff(st.touched, res.Summary.RulesChanged); d != "" {
				t.Errorf("%s: rules the summary says changed (-want +got):\n%s", st.name, d)
			}
		}
		if d := cmp.Diff(chainBlocks(rs.String()), chainBlocks(listTable(t, ns))); d != "" {
			t.Fatalf("%s: the kernel holds another table than the rendered one (-rendered +kernel):\n%s", st.name, d)
		}
		if res, err := fw.Apply(rs); err != nil || res.Messages != 0 {
			t.Fatalf("%s: re-apply: %v, %q", st.name, err, res.Changes)
		}
	}
}

// TestManyRulesDispatched applies 10,000 port rules through one verdict
// map: re-applying writes nothing, and changing one rule rewrites that
// rule and the map, nothing else.
func TestManyRulesDispatched(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "many-dispatch")
	fw := NewApplier(WithNetNS(ns.FD))
	const n = 10_000
	compileN := func(changed int) *Ruleset {
		rs, err := Compile(manyRulesPolicy(n, changed))
		if err != nil {
			t.Fatal(err)
		}
		if !hasDispatch(rs, false) {
			t.Fatal("not dispatched")
		}
		return rs
	}
	start := time.Now()
	res, err := fw.Apply(compileN(-1))
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	t.Logf("first apply of %d dispatched rules: %v (%d messages)", n, time.Since(start), res.Messages)
	// Every key of the maps is in the kernel: nft lists the base chain
	// (only: the CLI takes long over 10,000 chains) as rendered.
	rs := compileN(-1)
	listed := ns.MustRun(t, "nft", "list", "chain", "inet", TableName, "input")
	listed = counterValues.ReplaceAllString(listed, "")
	var want []string
	for _, r := range rs.Chains[0].Rules {
		if r.Dispatch != nil {
			want = append(want, "\t\t"+r.String())
		}
	}
	if len(want) < n/maxKeysPerMap {
		t.Fatalf("%d maps for %d keys", len(want), n)
	}
	var got []string
	for _, l := range lines(listed) {
		if strings.Contains(l, " vmap ") {
			got = append(got, l)
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("the kernel's maps differ from the rendered ones (-rendered +kernel):\n%s", d)
	}
	start = time.Now()
	if res, err = fw.Apply(compileN(-1)); err != nil || res.Messages != 0 {
		t.Fatalf("re-apply: %d messages, %v", res.Messages, err)
	}
	t.Logf("re-apply: %v", time.Since(start))
	start = time.Now()
	if res, err = fw.Apply(compileN(n / 2)); err != nil {
		t.Fatalf("changing one rule: %v", err)
	}
	t.Logf("one rule changed: %v, %d messages: %q", time.Since(start), res.Messages, res.Changes)
	checkOnlyRulesOf(t, res.Changes, "rule-5000")
}
