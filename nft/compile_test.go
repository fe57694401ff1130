package nft

import (
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/edgefw/edgefw/policy"
)

// TestCompileFailsClosed gives Compile policies that the parser would
// refuse but code can build: each is refused with an error that names
// what is wrong, never compiled to accept and never a panic.
func TestCompileFailsClosed(t *testing.T) {
	defaults := policy.Defaults{Input: policy.Drop, Forward: policy.Accept, Output: policy.Accept}
	rule := func(mutate func(r *policy.Rule)) *policy.Policy {
		r := policy.Rule{Name: "x", Direction: policy.Input, Action: policy.Accept,
			Ports: []policy.PortRange{{Protocol: policy.TCP, Port: 80, EndPort: 80}}}
		mutate(&r)
		return &policy.Policy{Version: 1, Defaults: defaults, Rules: []policy.Rule{r}}
	}
	for _, tc := range []struct {
		name string
		p    *policy.Policy
		want string
	}{
		{"zero defaults", &policy.Policy{Version: 1}, `defaults.input: "" is not a default verdict`},
		{"reject as a default", &policy.Policy{Version: 1, Defaults: policy.Defaults{Input: policy.Reject, Forward: policy.Accept, Output: policy.Accept}},
			`defaults.input: "reject" is not a default verdict`},
		{"unknown default", &policy.Policy{Version: 1, Defaults: policy.Defaults{Input: policy.Drop, Forward: policy.Accept, Output: "allow"}},
			`defaults.output: "allow" is not a default verdict`},
		{"no action", rule(func(r *policy.Rule) { r.Action = "" }), `rule "x": action "" is not one of`},
		{"unknown action", rule(func(r *policy.Rule) { r.Action = "log" }), `rule "x": action "log" is not one of`},
		{"no direction", rule(func(r *policy.Rule) { r.Direction = "" }), `rule "x": direction "" is not one of`},
		{"rate 0 per source", rule(func(r *policy.Rule) { r.Limit = &policy.Limit{Rate: 0, Per: "second", PerSource: true} }),
			`rule "x": limit: a rate of 0`},
		{"rate 0", rule(func(r *policy.Rule) { r.Limit = &policy.Limit{Rate: 0, Per: "second"} }), `rule "x": limit: a rate of 0`},
		{"unknown rate unit", rule(func(r *policy.Rule) { r.Limit = &policy.Limit{Rate: 5, Per: "week", PerSource: true} }),
			`rule "x": limit: "week" is not a rate unit`},
		{"connLimit 0", rule(func(r *policy.Rule) { r.ConnLimit = &policy.ConnLimit{Max: 0} }), `rule "x": connLimit: a max of 0`},
		{"unknown mode", rule(func(r *policy.Rule) { r.Action, r.Mode = policy.Drop, "Audit" }), `rule "x": mode "Audit" is not one of enforce, audit`},
		{"audit of an accept", rule(func(r *policy.Rule) { r.Mode = policy.Audit }), `rule "x": mode audit on an accept rule`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Compile panicked: %v", p)
				}
			}()
			rs, err := Compile(tc.p)
			if err == nil {
				t.Fatalf("Compile accepted it:\n%s", rs)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestEncoderFailsClosed gives the encoder rulesets without a known
// verdict: plan refuses them before anything is sent, and a rule without
// a verdict does not encode.
func TestEncoderFailsClosed(t *testing.T) {
	valid := func() *Ruleset {
		rs, err := Compile(&policy.Policy{Version: 1, Defaults: policy.Defaults{Input: policy.Drop, Forward: policy.Accept, Output: policy.Accept}})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	for name, mutate := range map[string]func(rs *Ruleset){
		"chain policy empty":     func(rs *Ruleset) { rs.Chains[0].Policy = "" },
		"chain policy reject":    func(rs *Ruleset) { rs.Chains[1].Policy = policy.Reject },
		"rule without verdict":   func(rs *Ruleset) { rs.Chains[0].Rules[0].Verdict = "" },
		"rule with odd verdict":  func(rs *Ruleset) { rs.Chains[2].Rules[0].Verdict = "continue" },
		"return in a base chain": func(rs *Ruleset) { rs.Chains[0].Rules[0].Verdict = VerdictReturn },
		"goto from a base chain": func(rs *Ruleset) {
			rs.Chains = append(rs.Chains, &Chain{Name: "r"})
			rs.Chains[0].Rules[0].Verdict, rs.Chains[0].Rules[0].Jump, rs.Chains[0].Rules[0].Goto = "", "r", true
		},
		"goto without a chain": func(rs *Ruleset) { rs.Chains[0].Rules[0].Goto = true },
		"jump back to an earlier regular chain": func(rs *Ruleset) {
			rs.Chains = append(rs.Chains, &Chain{Name: "a"}, &Chain{Name: "b", Rules: []*Rule{{Owner: "x", Jump: "a"}}})
		},
		"goto itself": func(rs *Ruleset) {
			rs.Chains = append(rs.Chains, &Chain{Name: "a", Rules: []*Rule{{Owner: "x", Jump: "a", Goto: true}}})
		},
	} {
		rs := valid()
		mutate(rs)
		if _, err := plan(&TableState{}, rs, false); err == nil || !strings.Contains(err.Error(), "invalid ruleset") {
			t.Errorf("%s: plan = %v, want an invalid ruleset error", name, err)
		}
	}
	eb := &exprBuilder{table: table}
	if _, err := eb.ruleExprs(&Rule{Counter: "x"}); err == nil {
		t.Error("a rule without a verdict encoded")
	}
	if _, err := eb.ruleExprs(&Rule{Stmt: MSSClampStmt{}}); err != nil {
		t.Errorf("a statement rule without a verdict: %v", err)
	}
	if p := chainPolicy(""); p != nftables.ChainPolicyDrop {
		t.Errorf("chainPolicy(\"\") = %v, want drop", p)
	}
}
