package nft

import (
	"slices"
	"time"

	"github.com/edgefw/edgefw/policy"
)

// The regular chains a policy rule jumps to: the chain of its limit and
// connLimit, and the chain of a rule in audit mode.

// LimitChain is the name of the regular chain that holds a rule's limit
// and connLimit.
func LimitChain(rule string) string { return prefixReserved + "limit-" + rule }

// AuditChain is the name of the regular chain that holds a rule in audit
// mode.
func AuditChain(rule string) string { return prefixReserved + "audit-" + rule }

// auditRule compiles a rule in audit mode: what it would drop or reject
// is counted in its counter and logged (up to the log rate, with the
// rule's name as the prefix, as a logged enforcing rule is) and goes on
// to the next rule. Audit mode implies log: watching what a rule would
// deny is its purpose.
//
// The base chain jumps to a chain of the rule's own, where each
// alternative ends with return: a packet that matches several
// alternatives is counted once, as the enforcing rule's first matching
// alternative would decide it once. The log's rate limit ends a rule
// whose packet is over it before its return, so, as for an enforcing
// rule, an unlogged copy of each alternative follows the logged one.
//
// A limit or connLimit keeps its meaning, "would be limited": the
// alternatives go to the limit chain, which counts what is over the
// limits in the rule's limited counter and returns, and counts the rest in
// the rule's counter, as enforcing would split them. The counters keep
// their values when the rule is switched to enforce: they count the same
// packets under the same direction and action.
func (c *compiler) auditRule(ch *Chain, r *policy.Rule, alts [][]Match) {
	ac := &Chain{Name: AuditChain(r.Name)}
	c.regular = append(c.regular, ac)
	ch.Rules = append(ch.Rules, &Rule{Owner: r.Name, Jump: ac.Name})
	c.counter(r.Name, RuleInfo{Direction: r.Direction, Action: r.Action, Kind: KindUser, Mode: policy.Audit})
	if r.Limit != nil || r.ConnLimit != nil {
		lc := c.limitChain(r, alts)
		for _, alt := range alts {
			ac.Rules = append(ac.Rules, &Rule{Owner: r.Name, Matches: alt, Jump: lc.Name, Goto: true})
		}
		lc.Rules = append(lc.Rules, auditCount(r.Name, nil)...)
		return
	}
	for _, alt := range alts {
		ac.Rules = append(ac.Rules, auditCount(r.Name, alt)...)
	}
}

// auditCount counts and logs the packets of an audit-mode rule that match
// ms, and returns them.
func auditCount(rule string, ms []Match) []*Rule {
	return []*Rule{
		{Owner: rule, Matches: ms, Limit: &logRate, Counter: rule, LogPrefix: rule, Verdict: VerdictReturn},
		{Owner: rule, Matches: ms, Counter: rule, Verdict: VerdictReturn},
	}
}

// limitChain builds the chain that drops, and counts apart, the packets of
// r beyond its limits: first its rate (over all its packets, or per source
// address in a meter), then its connection limit (over all its new
// connections, or per source address in a meter). Packets within the
// limits return to the rule's alternatives. In audit mode, packets beyond
// the limits are counted apart and returned, not dropped.
func (c *compiler) limitChain(r *policy.Rule, alts [][]Match) *Chain {
	lc := &Chain{Name: LimitChain(r.Name)}
	c.regular = append(c.regular, lc)
	limited := LimitedCounter(r.Name)
	mode, verdict := ruleMode(r), policy.Drop
	if mode == policy.Audit {
		verdict = VerdictReturn
	}
	c.counter(limited, RuleInfo{Direction: r.Direction, Action: policy.Drop, Kind: KindLimited, Rule: r.Name, Mode: mode})
	add := func(m ...Match) {
		lc.Rules = append(lc.Rules, &Rule{Owner: limited, Counter: limited, Verdict: verdict, Matches: m})
	}
	// Per source, a meter for each family an alternative may match.
	var families []bool
	for _, v6 := range []bool{false, true} {
		for _, alt := range alts {
			if slices.Contains(matchFamilies(alt), v6) {
				families = append(families, v6)
				break
			}
		}
	}
	if l := r.Limit; l != nil {
		rate := &RateLimit{Over: true, Rate: l.Rate, Per: l.Per, Burst: l.Burst}
		if !l.PerSource {
			lc.Rules = append(lc.Rules, &Rule{Owner: limited, Counter: limited, Verdict: verdict, Limit: rate})
		} else {
			for _, v6 := range families {
				m := c.meter(meterName("meter", r.Name, v6), v6, meterTimeout(l))
				add(MeterMatch{Set: m.Name, V6: v6, Limit: rate})
			}
		}
	}
	if cl := r.ConnLimit; cl != nil {
		isNew := CtStateMatch{States: []string{"new"}}
		if !cl.PerSource {
			add(isNew, ConnCountMatch{Max: cl.Max})
		} else {
			for _, v6 := range families {
				// No timeout: a source's entry must live as long as its
				// connections; the kernel collects it once its count is zero.
				m := c.meter(meterName("conns", r.Name, v6), v6, 0)
				add(isNew, MeterMatch{Set: m.Name, V6: v6, ConnMax: cl.Max})
			}
		}
	}
	return lc
}

// meterSize bounds the sources a meter tracks (nft's default for meters).
// Beyond it new sources are not limited individually; they are still
// subject to the rule itself.
const meterSize = 65535

func (c *compiler) meter(name string, v6 bool, timeout time.Duration) *Meter {
	for _, m := range c.rs.Meters {
		if m.Name == name {
			return m
		}
	}
	m := &Meter{Name: name, V6: v6, Size: meterSize, Timeout: timeout}
	c.rs.Meters = append(c.rs.Meters, m)
	return m
}

// meterName is the kernel name of the dynamic set holding per-source state
// of a rule's perSource limit (kind "meter") or connLimit (kind "conns").
func meterName(kind, rule string, v6 bool) string {
	return SetName(prefixReserved+kind+"-"+rule, v6)
}

// meterTimeout is how long a source's token bucket outlives its last
// packet: the time an empty bucket takes to fill up again (burst packets
// at the rate), at least one unit of the rate. A source that comes back
// later finds a full bucket, which it would have had anyway.
func meterTimeout(l *policy.Limit) time.Duration {
	unit := rateUnits[l.Per]
	burst := uint64(l.Burst)
	if burst == 0 {
		burst = defaultBurst
	}
	rate := max(l.Rate, 1) // checkRule refuses 0; never divide by it
	units := max(1, burst/rate+min(burst%rate, 1))
	return time.Duration(units) * unit
}

// defaultBurst is the kernel's burst for a packet limit given none
// (NFT_LIMIT_PKT_BURST_DEFAULT).
const defaultBurst = 5

var rateUnits = map[string]time.Duration{
	"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour,
}

// matchFamilies returns the families a meter is needed for: the one the
// matches restrict the packets to, or both.
func matchFamilies(ms []Match) []bool {
	for _, m := range ms {
		switch m := m.(type) {
		case NFProtoMatch:
			return []bool{m.V6}
		case AddrMatch:
			return []bool{m.V6}
		case L4Match:
			if len(m.Protos) == 1 && (m.Protos[0] == policy.ICMP || m.Protos[0] == policy.ICMPv6) {
				return []bool{m.Protos[0] == policy.ICMPv6}
			}
		}
	}
	return []bool{false, true}
}
