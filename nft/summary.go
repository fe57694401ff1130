package nft

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// Summary says what a plan changes in the policy's terms, for people and
// the audit journal: rules by the name of their counter (a policy rule's
// name, or the reserved name of an implicit rule or default policy), and
// set elements as the address ranges written.
type Summary struct {
	// RulesAdded and RulesRemoved are the rules whose counter the plan
	// adds or deletes; RulesChanged those that stay with other kernel
	// rules or a counter that starts again from zero. Sorted.
	RulesAdded, RulesRemoved, RulesChanged []string
	// ElementsAdded and ElementsRemoved count the address ranges written
	// to and deleted from named sets, those of sets added or deleted
	// included.
	ElementsAdded, ElementsRemoved int
}

// Empty reports whether the summary names no change.
func (s Summary) Empty() bool {
	return len(s.RulesAdded)+len(s.RulesRemoved)+len(s.RulesChanged)+s.ElementsAdded+s.ElementsRemoved == 0
}

// summarize says what ops, planned over ks to make rs, change. It is
// pure, like plan. Rules whose hash is in resharded are rewritten only
// because their sets' shards moved (see shardLayout.resharded): they do
// not count as changed.
func summarize(ks *TableState, rs *Ruleset, ops []Op, resharded map[string]bool) Summary {
	before, after := map[string]bool{}, map[string]bool{}
	for name := range ks.Counters {
		before[ruleOfCounter(name)] = true
	}
	for _, name := range rs.Counters {
		after[ruleOfCounter(name)] = true
	}
	touched := map[string]bool{}
	copied := copiedRules(ks, ops)
	var s Summary
	for _, op := range ops {
		switch op := op.(type) {
		case AddRule:
			if !copied(op) && !resharded[op.ruleHash()] {
				touched[ruleOfCounter(cmp.Or(op.Rule.Owner, op.Rule.Counter))] = true
			}
		case DeleteRule:
			r := ruleAt(ks, op.Chain, op.Handle)
			if r == nil || resharded[r.Hash] {
				continue
			}
			for _, name := range r.Counters {
				touched[ruleOfCounter(name)] = true
			}
		case ResetCounter:
			touched[ruleOfCounter(op.Name)] = true
		case AddCounter:
			touched[ruleOfCounter(op.Name)] = true
		case DeleteCounter:
			touched[ruleOfCounter(op.Name)] = true
		case AddElements:
			s.ElementsAdded += len(op.Ranges)
		case DeleteElements:
			s.ElementsRemoved += len(op.Ranges)
		case AddSet:
			s.ElementsAdded += len(op.Set.Ranges)
		case ReplaceElements:
			s.ElementsAdded += len(op.Set.Ranges)
			if old, ok := ks.Sets[op.Set.Name]; ok {
				s.ElementsRemoved += len(old.Elements)
			}
		case DeleteSet:
			if old, ok := ks.Sets[op.Name]; ok {
				s.ElementsRemoved += len(old.Elements)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(after)) {
		if !before[name] {
			s.RulesAdded = append(s.RulesAdded, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(before)) {
		if !after[name] {
			s.RulesRemoved = append(s.RulesRemoved, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(touched)) {
		if name != "" && before[name] && after[name] {
			s.RulesChanged = append(s.RulesChanged, name)
		}
	}
	return s
}

// copiedRules returns whether an AddRule puts a rule the kernel holds
// unchanged into a chain the plan adds: the chain of a verdict map's key
// whose rules changed also holds the unchanged rules of its ports (see
// dispatch.go), which changes nothing of those rules.
func copiedRules(ks *TableState, ops []Op) func(AddRule) bool {
	added := map[string]bool{}
	for _, op := range ops {
		if op, ok := op.(AddChain); ok {
			added[op.Chain.Name] = true
		}
	}
	held := map[string]bool{}
	for _, ch := range ks.Chains {
		for _, r := range ch.Rules {
			held[r.Hash] = true
		}
	}
	return func(op AddRule) bool { return added[op.Chain] && held[op.ruleHash()] }
}

// ruleOfCounter names the rule a counter belongs to: a limited counter
// belongs to the rule it limits.
func ruleOfCounter(name string) string {
	if rule, ok := strings.CutPrefix(name, LimitedCounter("")); ok {
		return rule
	}
	return name
}

// ruleAt returns the kernel's rule with this handle, or nil.
func ruleAt(ks *TableState, chain string, handle uint64) *RuleState {
	ch, ok := ks.Chains[chain]
	if !ok {
		return nil
	}
	for i := range ch.Rules {
		if ch.Rules[i].Handle == handle {
			return &ch.Rules[i]
		}
	}
	return nil
}
