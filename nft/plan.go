package nft

import (
	"maps"
	"slices"

	"github.com/edgefw/edgefw/policy"

	"github.com/edgefw/edgefw/internal/lcs"
)

// Planning: what turns the table a Kernel holds (a TableState) into a
// Ruleset, as ordered ops. It is pure: no I/O, no clock; the same state
// and ruleset always give the same plan.

// plan returns the ops that turn ks into rs. With full, every rule and
// named set is rewritten; counters are kept either way.
//
// The order of the ops matters, because the kernel refuses to delete what
// is still referenced (EBUSY), also within a transaction:
//
//  1. add the table and new counters; patch the elements of kept sets;
//     set the policy of kept chains;
//  2. delete the rules we do not want from the chains we keep;
//  3. flush every chain we do not want (or must replace): their rules may
//     jump to one another or look up sets;
//  4. delete the sets and meters we do not want (or must recreate): a map
//     may refer to chains;
//  5. delete the chains we do not want (or must replace);
//  6. delete the counters we do not want, and delete and add again those
//     whose direction or action changed (their rules were deleted in 2):
//     nothing refers to them now;
//  7. add chains, sets and meters, then insert the rules.
func plan(ks *TableState, rs *Ruleset, full bool) ([]Op, error) {
	if err := rs.validate(); err != nil {
		return nil, err
	}
	p := newPlanner(ks, rs, full)
	p.addTableAndCounters()
	p.patchSets()
	p.checkMeters()
	p.patchChains()
	p.diffRules()
	p.flushChains()
	p.deleteSets()
	p.deleteChains()
	p.deleteCounters()
	p.addNew()
	return p.ops, nil
}

// planner holds what the steps of plan work out for the later ones.
type planner struct {
	ks   *TableState
	rs   *Ruleset
	full bool
	ops  []Op

	infos map[string]RuleInfo // by counter
	reset map[string]bool     // counters that start again from zero
	// wantSets are the named sets and meters of rs; recreate those the
	// kernel holds of another kind.
	wantSets, recreate map[string]bool
	// wantChains are the chains of rs; replace those the kernel holds at
	// another hook, type or priority, which addChains adds again with
	// the new ones.
	wantChains, replace map[string]bool
	addChains           []*Chain
	// dropChains are the kernel's chains that go or are replaced, by name.
	dropChains []string
	// inserts are the rules to add, chain by chain, in order.
	inserts []AddRule
}

func newPlanner(ks *TableState, rs *Ruleset, full bool) *planner {
	p := &planner{ks: ks, rs: rs, full: full,
		infos:    make(map[string]RuleInfo, len(rs.Rules)),
		reset:    countersToReset(ks, rs),
		wantSets: map[string]bool{}, recreate: map[string]bool{},
		wantChains: make(map[string]bool, len(rs.Chains)), replace: map[string]bool{},
	}
	for _, info := range rs.Rules {
		p.infos[info.Name] = info
	}
	return p
}

func (p *planner) add(op Op) { p.ops = append(p.ops, op) }

// addTableAndCounters is step 1's additions nothing depends on.
func (p *planner) addTableAndCounters() {
	if !p.ks.Exists {
		p.add(AddTable{})
	}
	for _, name := range p.rs.Counters {
		if _, ok := p.ks.Counters[name]; !ok {
			p.add(AddCounter{Name: name})
		}
	}
}

// patchSets patches the kept sets element by element (step 1); those of
// another kind are recreated (steps 4 and 7).
func (p *planner) patchSets() {
	for _, s := range p.rs.Sets {
		p.wantSets[s.Name] = true
		old, ok := p.ks.Sets[s.Name]
		switch {
		case ok && (old.KeyType != addrType(s.V6) || !old.Interval || old.Dynamic):
			p.recreate[s.Name] = true
		case ok && p.full:
			p.add(ReplaceElements{Set: s})
		case ok:
			del, add := diffRanges(old.Elements, s.Ranges)
			if len(del) > 0 {
				p.add(DeleteElements{Set: s, Ranges: del})
			}
			if len(add) > 0 {
				p.add(AddElements{Set: s, Ranges: add})
			}
		}
	}
}

// checkMeters keeps the meters that are as wanted, with their state, and
// recreates the others.
func (p *planner) checkMeters() {
	for _, m := range p.rs.Meters {
		p.wantSets[m.Name] = true
		if old, ok := p.ks.Sets[m.Name]; ok && !sameMeter(old, m) {
			p.recreate[m.Name] = true
		}
	}
}

// patchChains updates the policy of kept base chains (step 1); a chain
// whose hook, type or priority differs cannot change in place and is
// replaced.
func (p *planner) patchChains() {
	for _, ch := range p.rs.Chains {
		p.wantChains[ch.Name] = true
		old, ok := p.ks.Chains[ch.Name]
		switch {
		case !ok:
			p.addChains = append(p.addChains, ch)
		case !sameKind(old, ch):
			p.replace[ch.Name] = true
			p.addChains = append(p.addChains, ch)
		case !ch.Regular() && old.Base.Policy != policyName(ch):
			p.add(SetChainPolicy{Chain: ch})
		}
	}
}

// diffRules deletes what is not wanted from the chains we keep, and works
// out where the missing rules go (step 2). Sets to be recreated force
// their chains to be rewritten.
func (p *planner) diffRules() {
	for _, ch := range p.rs.Chains {
		var old []RuleState
		if kc, ok := p.ks.Chains[ch.Name]; ok && !p.replace[ch.Name] {
			old = kc.Rules
		}
		p.diffChain(ch, old)
	}
}

// ruleKey is what the planner compares a kernel rule with a wanted one
// by: its hash, and what it records of its counters' meaning, which must
// be what the planner would record now. The zero key never matches.
type ruleKey struct{ hash, counted string }

func (p *planner) diffChain(ch *Chain, old []RuleState) {
	// Rules that count into a counter being reset are rewritten: the
	// counter cannot go while they refer to it.
	oldKeys := make([]ruleKey, len(old))
	for i, r := range old {
		oldKeys[i] = ruleKey{r.Hash, r.Counted}
		for _, names := range [][]string{r.Counters, r.MapCounters} {
			for _, name := range names {
				if p.reset[name] {
					oldKeys[i] = ruleKey{}
				}
			}
		}
	}
	newKeys := make([]ruleKey, len(ch.Rules))
	for i, r := range ch.Rules {
		if !p.resets(r) {
			newKeys[i] = ruleKey{r.Hash(), p.counted(r)}
		}
	}
	keepOld, keepNew := lcs.Keep(oldKeys, newKeys)
	if p.full || referencesAny(ch, p.recreate) {
		keepOld, keepNew = make([]bool, len(old)), make([]bool, len(ch.Rules))
	}
	for i, r := range old {
		if !keepOld[i] {
			p.add(DeleteRule{Chain: ch.Name, Handle: r.Handle})
		}
	}
	// Walk the new rules backwards to know the next kept rule's handle.
	var next uint64
	oi := len(old) - 1
	pending := []AddRule{}
	for ni := len(ch.Rules) - 1; ni >= 0; ni-- {
		if keepNew[ni] {
			for oi >= 0 && !(keepOld[oi] && oldKeys[oi] == newKeys[ni]) {
				oi--
			}
			next = old[oi].Handle
			oi--
			continue
		}
		op := p.addRule(ch, ch.Rules[ni], next)
		op.hash = newKeys[ni].hash // "" for a rule whose counter is reset
		pending = append(pending, op)
	}
	slices.Reverse(pending)
	p.inserts = append(p.inserts, pending...)
}

func (p *planner) addRule(ch *Chain, r *Rule, before uint64) AddRule {
	return AddRule{Chain: ch.Name, Rule: r, Before: before, Counted: p.counted(r)}
}

// resets reports whether a rule counts into a counter being reset.
func (p *planner) resets(r *Rule) bool {
	if len(p.reset) == 0 {
		return false
	}
	if r.Dispatch != nil && r.Dispatch.Direct {
		return slices.ContainsFunc(r.Dispatch.Elements, func(e DispatchElement) bool { return p.reset[e.Rule.Counter] })
	}
	return p.reset[r.Counter]
}

// counted is what a rule records of the meaning of the counters it counts
// into (udataCounted): their direction and action, as the ruleset's
// RuleInfos give them, when they all have one and the same; "" when not.
// A direct map's keys share a verdict and a direction (see dispatch.go),
// so its counters share a meaning.
func (p *planner) counted(r *Rule) string {
	if r.Dispatch == nil || !r.Dispatch.Direct {
		if info, ok := p.infos[r.Counter]; ok {
			return countedAs(info)
		}
		return ""
	}
	var first RuleInfo
	for i, e := range r.Dispatch.Elements {
		info, ok := p.infos[e.Rule.Counter]
		if !ok || (i > 0 && (info.Direction != first.Direction || info.Action != first.Action)) {
			return ""
		}
		first = info
	}
	if len(r.Dispatch.Elements) == 0 {
		return ""
	}
	return countedAs(first)
}

// flushChains flushes the chains that go (step 3): after this, no rule of
// ours jumps to them or looks up a set that goes.
func (p *planner) flushChains() {
	for _, name := range slices.Sorted(maps.Keys(p.ks.Chains)) {
		if !p.wantChains[name] || p.replace[name] {
			p.dropChains = append(p.dropChains, name)
		}
	}
	for _, name := range p.dropChains {
		p.add(FlushChain{Chain: name})
	}
}

// deleteSets deletes the sets and meters that go (step 4).
func (p *planner) deleteSets() {
	for _, name := range slices.Sorted(maps.Keys(p.ks.Sets)) {
		if !p.wantSets[name] || p.recreate[name] {
			p.add(DeleteSet{Name: name})
		}
	}
}

// deleteChains deletes the chains that go (step 5).
func (p *planner) deleteChains() {
	for _, name := range p.dropChains {
		p.add(DeleteChain{Name: name})
	}
}

// deleteCounters deletes the counters that go, and those that start
// again from zero are deleted and added again (step 6).
func (p *planner) deleteCounters() {
	want := map[string]bool{}
	for _, n := range p.rs.Counters {
		want[n] = true
	}
	for _, name := range slices.Sorted(maps.Keys(p.ks.Counters)) {
		if !want[name] {
			p.add(DeleteCounter{Name: name})
		}
	}
	for _, name := range p.rs.Counters {
		if p.reset[name] {
			p.add(ResetCounter{Name: name, CountsAs: countedAs(p.infos[name])})
		}
	}
}

// addNew adds what is new: chains, sets, meters, then the rules that use
// them (step 7).
func (p *planner) addNew() {
	for _, ch := range p.addChains {
		p.add(AddChain{Chain: ch})
	}
	for _, s := range p.rs.Sets {
		if _, ok := p.ks.Sets[s.Name]; !ok || p.recreate[s.Name] {
			p.add(AddSet{Set: s})
		}
	}
	for _, m := range p.rs.Meters {
		if _, ok := p.ks.Sets[m.Name]; !ok || p.recreate[m.Name] {
			p.add(AddMeter{Meter: m})
		}
	}
	for _, in := range p.inserts {
		p.add(in)
	}
}

// countedAs is what udataCounted records for a counter.
func countedAs(info RuleInfo) string { return string(info.Direction) + " " + string(info.Action) }

// countedBefore maps each counter to what the kernel's rules recorded of
// it (udataCounted). Counters whose rules recorded nothing (written before
// the record existed, or by someone else) are left out: unknown is kept.
func countedBefore(ks *TableState) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, ch := range ks.Chains {
		for _, r := range ch.Rules {
			if r.Counted == "" {
				continue
			}
			for _, names := range [][]string{r.Counters, r.MapCounters} {
				for _, name := range names {
					if out[name] == nil {
						out[name] = map[string]bool{}
					}
					out[name][r.Counted] = true
				}
			}
		}
	}
	return out
}

// countersToReset returns the kept counters whose rules counted under
// another direction or action than rs gives them.
func countersToReset(ks *TableState, rs *Ruleset) map[string]bool {
	before := countedBefore(ks)
	reset := map[string]bool{}
	for _, info := range rs.Rules {
		was := before[info.Name]
		if _, ok := ks.Counters[info.Name]; !ok || len(was) == 0 {
			continue
		}
		if len(was) > 1 || !was[countedAs(info)] {
			reset[info.Name] = true
		}
	}
	return reset
}

func referencesAny(ch *Chain, sets map[string]bool) bool {
	if len(sets) == 0 {
		return false
	}
	for _, r := range ch.Rules {
		for _, m := range r.Matches {
			switch m := m.(type) {
			case AddrMatch:
				if sets[m.Set] {
					return true
				}
			case MeterMatch:
				if sets[m.Set] {
					return true
				}
			}
		}
	}
	return false
}

// sameKind reports whether a kernel chain is the chain ch would be, its
// policy aside: a regular chain, or a base chain at the same hook, type
// and priority.
func sameKind(k *ChainState, ch *Chain) bool {
	if ch.Regular() {
		return k.Base == nil
	}
	return k.Base != nil && k.Base.Hook == string(ch.Hook) &&
		k.Base.Type == "filter" && k.Base.Priority == 0
}

// policyName is the policy the kernel lists for a base chain of ch: only
// accept is accept, as chainPolicy writes it.
func policyName(ch *Chain) string {
	if ch.Policy == policy.Accept {
		return "accept"
	}
	return "drop"
}

// sameMeter reports whether a kernel set is the meter m.
func sameMeter(s *SetState, m *Meter) bool {
	return s.Dynamic && !s.Interval && s.KeyType == addrType(m.V6) &&
		s.HasTimeout == (m.Timeout > 0) && s.Timeout == m.Timeout && s.Size == m.Size
}
