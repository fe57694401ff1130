package nft

import (
	"fmt"

	"github.com/google/nftables"
)

// An Op is one step of a plan: one change to table inet edgefw, which
// takes one or more netlink messages of the transaction. Plans are made
// by the Applier; other packages read them (a fake Kernel commits them)
// but cannot make new kinds.
type Op interface {
	// Change says what the op does, as Result.Changes lists it and as
	// KernelError.What names it when the kernel refuses it.
	Change() string
	// encode queues the op's messages on c (see write.go).
	encode(b *batch, c *nftables.Conn) error
}

// AddTable adds table inet edgefw. Adding a table that exists changes
// nothing (the message does not ask for exclusive creation).
type AddTable struct{}

// DeleteTable deletes table inet edgefw and everything in it.
type DeleteTable struct{}

// AddCounter adds a named counter, from zero. Adding a counter that
// exists changes nothing and keeps its value.
type AddCounter struct{ Name string }

// DeleteCounter deletes a named counter no rule counts into any more.
type DeleteCounter struct{ Name string }

// ResetCounter deletes a named counter and adds it again, from zero,
// because its rules now count something else: CountsAs is what.
type ResetCounter struct {
	Name     string
	CountsAs string
}

// SetChainPolicy changes the default verdict of a base chain that stays.
type SetChainPolicy struct{ Chain *Chain }

// AddElements adds address ranges to a named set that stays.
type AddElements struct {
	Set    *AddrSet
	Ranges []AddrRange
}

// DeleteElements deletes address ranges, each exactly as the set holds
// it, from a named set that stays.
type DeleteElements struct {
	Set    *AddrSet
	Ranges []AddrRange
}

// ReplaceElements empties a named set that stays and fills it with the
// ranges of Set.
type ReplaceElements struct{ Set *AddrSet }

// DeleteRule deletes one rule of a chain by its handle.
type DeleteRule struct {
	Chain  string
	Handle uint64
}

// FlushChain deletes every rule of a chain that goes (or is replaced),
// so that nothing of it refers to what else goes.
type FlushChain struct{ Chain string }

// DeleteSet deletes a named set, meter or map.
type DeleteSet struct{ Name string }

// DeleteChain deletes a chain no rule jumps to any more.
type DeleteChain struct{ Name string }

// AddChain adds a chain, without its rules (AddRule adds them).
type AddChain struct{ Chain *Chain }

// AddSet adds a named address set with its ranges.
type AddSet struct{ Set *AddrSet }

// AddMeter adds a meter, empty: the kernel fills it as packets come.
type AddMeter struct{ Meter *Meter }

// AddRule adds a rule to a chain: before the rule with handle Before, or
// at the end when Before is 0. Its user data holds its hash and, for a
// rule that counts into a counter of the ruleset's RuleInfos, Counted:
// the direction and action it counts.
type AddRule struct {
	Chain   string
	Rule    *Rule
	Before  uint64
	Counted string
	// hash is Rule's Hash when the planner has worked it out already:
	// rendering the rule again for its user data and its summary took as
	// long as the rest of the encoding of 10,000 rules.
	hash string
}

// ruleHash is the Hash of the op's rule.
func (op AddRule) ruleHash() string {
	if op.hash != "" {
		return op.hash
	}
	return op.Rule.Hash()
}

// Change implements Op.
func (AddTable) Change() string { return "add table inet " + TableName }

// Change implements Op.
func (DeleteTable) Change() string { return "delete table inet " + TableName }

// Change implements Op.
func (op AddCounter) Change() string { return fmt.Sprintf("add counter %q", op.Name) }

// Change implements Op.
func (op DeleteCounter) Change() string { return fmt.Sprintf("delete counter %q", op.Name) }

// Change implements Op.
func (op ResetCounter) Change() string {
	return fmt.Sprintf("reset counter %q: now counts %s", op.Name, op.CountsAs)
}

// Change implements Op.
func (op SetChainPolicy) Change() string {
	return fmt.Sprintf("set policy of chain %s to %s", op.Chain.Name, op.Chain.Policy)
}

// Change implements Op.
func (op AddElements) Change() string {
	return fmt.Sprintf("add %d ranges to set %s", len(op.Ranges), op.Set.Name)
}

// Change implements Op.
func (op DeleteElements) Change() string {
	return fmt.Sprintf("delete %d ranges from set %s", len(op.Ranges), op.Set.Name)
}

// Change implements Op.
func (op ReplaceElements) Change() string {
	return fmt.Sprintf("replace elements of set %s", op.Set.Name)
}

// Change implements Op.
func (op DeleteRule) Change() string {
	return fmt.Sprintf("delete rule %d of chain %s", op.Handle, op.Chain)
}

// Change implements Op.
func (op FlushChain) Change() string { return "flush chain " + op.Chain }

// Change implements Op.
func (op DeleteSet) Change() string { return "delete set " + op.Name }

// Change implements Op.
func (op DeleteChain) Change() string { return "delete chain " + op.Name }

// Change implements Op.
func (op AddChain) Change() string { return "add chain " + op.Chain.Name }

// Change implements Op.
func (op AddSet) Change() string {
	return fmt.Sprintf("add set %s (%d ranges)", op.Set.Name, len(op.Set.Ranges))
}

// Change implements Op.
func (op AddMeter) Change() string { return "add meter " + op.Meter.Name }

// Change implements Op.
func (op AddRule) Change() string {
	return fmt.Sprintf("add rule %q in chain %s", op.Rule.Owner, op.Chain)
}

// Expressions is the number of the rule's expressions once added, as the
// netlink Kernel lists them (RuleState.Exprs).
func (op AddRule) Expressions() int {
	eb := &exprBuilder{table: table, addSet: func(*nftables.Set, []nftables.SetElement) error { return nil }}
	exprs, err := eb.ruleExprs(op.Rule)
	if err != nil {
		return 0
	}
	return len(exprs)
}
