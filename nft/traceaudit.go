package nft

import (
	"fmt"
	"strings"

	"github.com/edgefw/edgefw/policy"
)

// TraceAudit is a rule in audit mode that matched a packet: it would have
// dropped or rejected it, and counted it instead.
type TraceAudit struct {
	// Rule is the policy rule; Counter the counter the packet counts in:
	// the rule's own, or its limit's when the packet is over the limit.
	Rule    string `json:"rule"`
	Counter string `json:"counter"`
	// Action is what the rule would have done in enforce mode.
	Action policy.Action `json:"action"`
	// Chain, Position and Nft locate the kernel rule that counted it.
	Chain    string `json:"chain"`
	Position int    `json:"position"`
	Nft      string `json:"nft"`
	// Matched says what of the packet the rule matched.
	Matched []string `json:"matched"`
	// Logged is true when the rule logs the packet to the daemon.
	Logged bool `json:"logged"`
}

// String renders the audit for people.
func (a TraceAudit) String() string {
	s := fmt.Sprintf("rule %s (audit mode) would have %s it; counted in %s", a.Rule, traceActionPast(a.Action), a.Counter)
	if a.Logged {
		s += " and logged"
	}
	return s + ", and the packet went on"
}

// returned records a rule that returned a packet it matched, and says
// why: for the counters of a rule in audit mode, what the rule would have
// done.
func (t *tracer) returned(ch *Chain, i int, r *Rule, matched []string) string {
	why := "back to the rule after the jump"
	if len(matched) > 0 {
		why = strings.Join(matched, "; ") + ": " + why
	}
	info, ok := t.rs.Rule(r.Counter)
	if !ok || info.Mode != policy.Audit {
		return why
	}
	a := TraceAudit{Rule: info.Name, Counter: r.Counter, Action: info.Action, Chain: ch.Name, Position: i + 1,
		Nft: r.String(), Matched: matched, Logged: r.LogPrefix != ""}
	if info.Kind == KindLimited {
		a.Rule = info.Rule
	}
	if a.Matched == nil {
		a.Matched = []string{}
	}
	t.v.Audited = append(t.v.Audited, a)
	return fmt.Sprintf("would %s: audit mode; counted in %s, and the packet goes on", info.Action, r.Counter)
}
