package nfttest

import (
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// refusal is the kernel's answer to one message it refuses.
type refusal struct {
	errno syscall.Errno
	// msg is the extended ack message the kernel gives, if any.
	msg string
}

func (r *refusal) Error() string { return r.errno.Error() }

func refuse(errno syscall.Errno) error { return &refusal{errno: errno} }

// maxNameLen is the longest name of a chain, set or object: NFT_NAME_MAXLEN
// (256) with its terminating zero. Longer ones fail the attribute policy.
const maxNameLen = 255

func checkName(names ...string) error {
	for _, n := range names {
		if len(n) > maxNameLen {
			return &refusal{errno: syscall.ERANGE, msg: "Attribute failed policy validation"}
		}
	}
	return nil
}

func kernelError(what string, err error) error {
	var r *refusal
	if !errors.As(err, &r) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return &nft.KernelError{What: what, Errno: r.errno, Message: r.msg}
}

// work is a transaction in progress: a copy of the table its ops change.
type work struct {
	t *table // nil: no table
}

// apply applies one op of an Applier's plan as the kernel would, or says
// why the kernel would refuse it.
func (w *work) apply(op nft.Op) error {
	if _, ok := op.(nft.AddTable); ok {
		w.addTable()
		return nil
	}
	if w.t == nil {
		return refuse(syscall.ENOENT)
	}
	switch op := op.(type) {
	case nft.DeleteTable:
		w.t = nil
		return nil
	case nft.AddCounter:
		return w.t.addCounter(op.Name, nft.Counter{})
	case nft.DeleteCounter:
		return w.t.deleteCounter(op.Name)
	case nft.ResetCounter:
		if err := w.t.deleteCounter(op.Name); err != nil {
			return err
		}
		return w.t.addCounter(op.Name, nft.Counter{})
	case nft.SetChainPolicy:
		return w.t.addChain(op.Chain.Name, baseOf(op.Chain))
	case nft.AddChain:
		return w.t.addChain(op.Chain.Name, baseOf(op.Chain))
	case nft.FlushChain:
		return w.t.flushChain(op.Chain)
	case nft.DeleteChain:
		return w.t.deleteChain(op.Name)
	case nft.DeleteRule:
		return w.t.deleteRule(op.Chain, op.Handle)
	case nft.AddRule:
		return w.t.addRule(op.Chain, op.Before, ruleOf(op))
	default:
		return w.t.applySetOp(op)
	}
}

// applySetOp applies the ops on sets and their elements.
func (t *table) applySetOp(op nft.Op) error {
	switch op := op.(type) {
	case nft.AddSet:
		return t.addSet(addrSet(op.Set), nil, op.Set.Ranges)
	case nft.AddMeter:
		return t.addSet(meter(op.Meter), nil, nil)
	case nft.DeleteSet:
		return t.deleteSet(op.Name)
	case nft.AddElements:
		return t.addElements(op.Set.Name, op.Set.V6, op.Ranges)
	case nft.DeleteElements:
		return t.deleteElements(op.Set.Name, op.Set.V6, op.Ranges)
	case nft.ReplaceElements:
		if err := t.flushSet(op.Set.Name); err != nil {
			return err
		}
		return t.addElements(op.Set.Name, op.Set.V6, op.Set.Ranges)
	}
	return fmt.Errorf("the fake kernel does not know op %T", op)
}

func (w *work) addTable() {
	if w.t == nil {
		w.t = newTable()
	}
}

// addCounter adds a counter with a value; one that exists is left as it
// is, value included (AddObj without NLM_F_EXCL).
func (t *table) addCounter(name string, value nft.Counter) error {
	if err := checkName(name); err != nil {
		return err
	}
	if _, ok := t.counters[name]; !ok {
		t.handle()
		t.counters[name] = value
	}
	return nil
}

func (t *table) deleteCounter(name string) error {
	if _, ok := t.counters[name]; !ok {
		return refuse(syscall.ENOENT)
	}
	if t.counterUsed(name) {
		return refuse(syscall.EBUSY)
	}
	delete(t.counters, name)
	return nil
}

// addChain adds a chain, or updates one that exists: a base chain takes
// the new policy; its hook, type and priority cannot change, nor can a
// regular chain become a base chain. A message without a hook leaves a
// base chain as it is.
func (t *table) addChain(name string, base *nft.BaseChain) error {
	if err := checkName(name); err != nil {
		return err
	}
	old, ok := t.chains[name]
	switch {
	case !ok:
		t.handle()
		t.chains[name] = &chain{name: name, base: base}
	case base == nil:
	case old.base == nil || old.base.Hook != base.Hook || old.base.Type != base.Type || old.base.Priority != base.Priority:
		return refuse(syscall.EOPNOTSUPP)
	default:
		b := *old.base
		b.Policy = base.Policy
		old.base = &b
	}
	return nil
}

func (t *table) flushChain(name string) error {
	ch, ok := t.chains[name]
	if !ok {
		return refuse(syscall.ENOENT)
	}
	ch.rules = nil
	return nil
}

// deleteChain deletes a chain and its rules, unless another chain's rule
// or a map jumps to it.
func (t *table) deleteChain(name string) error {
	if _, ok := t.chains[name]; !ok {
		return refuse(syscall.ENOENT)
	}
	if t.chainUsed(name) {
		return refuse(syscall.EBUSY)
	}
	delete(t.chains, name)
	return nil
}

func (t *table) deleteRule(chainName string, handle uint64) error {
	ch, ok := t.chains[chainName]
	if !ok {
		return refuse(syscall.ENOENT)
	}
	i := slices.IndexFunc(ch.rules, func(r *rule) bool { return r.handle == handle })
	if i < 0 {
		return refuse(syscall.ENOENT)
	}
	ch.rules = slices.Delete(ch.rules, i, i+1)
	return nil
}

// addRule adds a rule before the rule with handle before (0: at the
// end), checking what it refers to in the order of its expressions.
func (t *table) addRule(chainName string, before uint64, r *ruleSpec) error {
	ch, ok := t.chains[chainName]
	if !ok {
		return refuse(syscall.ENOENT)
	}
	at := len(ch.rules)
	if before != 0 {
		if at = slices.IndexFunc(ch.rules, func(r *rule) bool { return r.handle == before }); at < 0 {
			return refuse(syscall.ENOENT)
		}
	}
	if err := t.checkRule(ch, r); err != nil {
		return err
	}
	r.rule.handle = t.handle()
	ch.rules = slices.Insert(ch.rules, at, &r.rule)
	return nil
}

// checkRule checks what a rule refers to and what its chain allows.
func (t *table) checkRule(ch *chain, r *ruleSpec) error {
	if err := checkName(slices.Concat(r.sets, r.counters, r.mapCounters, r.jumps)...); err != nil {
		return err
	}
	for _, name := range r.sets {
		if _, ok := t.sets[name]; !ok {
			return refuse(syscall.ENOENT)
		}
	}
	if r.zeroRate {
		return refuse(syscall.EINVAL)
	}
	for _, name := range slices.Concat(r.counters, r.mapCounters) {
		if _, ok := t.counters[name]; !ok {
			return refuse(syscall.ENOENT)
		}
	}
	for _, name := range r.jumps {
		target, ok := t.chains[name]
		switch {
		case !ok:
			return refuse(syscall.ENOENT)
		case target.base != nil:
			return refuse(syscall.EOPNOTSUPP)
		}
	}
	// rt mtu, which MSS clamping reads, exists only on the way out.
	if r.clampsMSS && ch.base != nil && !slices.Contains([]string{"forward", "output", "postrouting"}, ch.base.Hook) {
		return refuse(syscall.EOPNOTSUPP)
	}
	return nil
}

// addSet adds a set with elements. A set that exists with the same key,
// data and flags is kept, and the elements are added to it; another kind
// is EEXIST.
func (t *table) addSet(s nft.SetState, jumps []string, ranges []nft.AddrRange) error {
	if err := checkName(s.Name); err != nil {
		return err
	}
	if old, ok := t.sets[s.Name]; ok {
		if !sameKind(old.state, s) {
			return refuse(syscall.EEXIST)
		}
	} else {
		t.handle()
		t.sets[s.Name] = &set{state: s, jumps: jumps}
	}
	return t.addElements(s.Name, s.KeyType == "ipv6_addr", ranges)
}

func sameKind(a, b nft.SetState) bool {
	return a.KeyType == b.KeyType && a.IsMap == b.IsMap && a.DataType == b.DataType &&
		a.Constant == b.Constant && a.Dynamic == b.Dynamic && a.Interval == b.Interval && a.HasTimeout == b.HasTimeout
}

func (t *table) deleteSet(name string) error {
	if _, ok := t.sets[name]; !ok {
		return refuse(syscall.ENOENT)
	}
	if t.setUsed(name) {
		return refuse(syscall.EBUSY)
	}
	delete(t.sets, name)
	return nil
}

// addElements adds ranges one by one: the very range a set holds is no
// error, one that overlaps another is EEXIST.
func (t *table) addElements(name string, v6 bool, ranges []nft.AddrRange) error {
	s, ok := t.sets[name]
	if !ok {
		return refuse(syscall.ENOENT)
	}
	if len(ranges) > 0 && v6 != (s.state.KeyType == "ipv6_addr") {
		return refuse(syscall.EINVAL) // keys of another length
	}
	for _, r := range ranges {
		i, found := slices.BinarySearchFunc(s.ranges, r, byStart)
		switch {
		case found && s.ranges[i] == r:
		case found, i > 0 && s.ranges[i-1].To.Compare(r.From) >= 0, i < len(s.ranges) && s.ranges[i].From.Compare(r.To) <= 0:
			return refuse(syscall.EEXIST)
		default:
			s.ranges = slices.Insert(s.ranges, i, r)
		}
	}
	return nil
}

// deleteElements deletes ranges, each exactly as the set holds it.
func (t *table) deleteElements(name string, v6 bool, ranges []nft.AddrRange) error {
	s, ok := t.sets[name]
	if !ok {
		return refuse(syscall.ENOENT)
	}
	if len(ranges) > 0 && v6 != (s.state.KeyType == "ipv6_addr") {
		return refuse(syscall.EINVAL)
	}
	for _, r := range ranges {
		i, found := slices.BinarySearchFunc(s.ranges, r, byStart)
		if !found || s.ranges[i] != r {
			return refuse(syscall.ENOENT)
		}
		s.ranges = slices.Delete(s.ranges, i, i+1)
	}
	return nil
}

func (t *table) flushSet(name string) error {
	s, ok := t.sets[name]
	if !ok {
		return refuse(syscall.ENOENT)
	}
	s.ranges = nil
	return nil
}

func byStart(a, b nft.AddrRange) int { return a.From.Compare(b.From) }

// ruleSpec is a rule to add and what the kernel checks of it.
type ruleSpec struct {
	rule
	// zeroRate is a limit of rate 0; clampsMSS reads rt mtu.
	zeroRate, clampsMSS bool
}

// ruleOf returns what an Applier's rule refers to, in the order of the
// expressions it is encoded in.
func ruleOf(op nft.AddRule) *ruleSpec {
	r := op.Rule
	s := &ruleSpec{rule: rule{hash: r.Hash(), counted: op.Counted, exprs: op.Expressions(), jumps: r.Targets()}}
	for _, m := range r.Matches {
		switch m := m.(type) {
		case nft.AddrMatch:
			if m.Set != "" {
				s.sets = append(s.sets, m.Set)
			}
		case nft.MeterMatch:
			s.sets = append(s.sets, m.Set)
			s.zeroRate = s.zeroRate || m.Limit != nil && m.Limit.Rate == 0
		}
	}
	s.zeroRate = s.zeroRate || r.Limit != nil && r.Limit.Rate == 0
	_, s.clampsMSS = r.Stmt.(nft.MSSClampStmt)
	// A direct map's counters are in its object map's elements, which
	// the kernel checks before the rule, and a read lists with it.
	if r.Dispatch != nil && r.Dispatch.Direct {
		s.mapCounters = r.Counters()
	} else {
		s.counters = r.Counters()
	}
	return s
}

// baseOf returns where a ruleset's chain hooks, as the kernel lists it.
func baseOf(ch *nft.Chain) *nft.BaseChain {
	if ch.Regular() {
		return nil
	}
	p := "drop"
	if ch.Policy == policy.Accept {
		p = "accept"
	}
	return &nft.BaseChain{Type: "filter", Hook: string(ch.Hook), Priority: 0, Policy: p}
}

func addrSet(s *nft.AddrSet) nft.SetState {
	return nft.SetState{Name: s.Name, KeyType: addrType(s.V6), Interval: true}
}

func meter(m *nft.Meter) nft.SetState {
	return nft.SetState{Name: m.Name, KeyType: addrType(m.V6), Dynamic: true,
		HasTimeout: m.Timeout > 0, Timeout: m.Timeout, Size: m.Size}
}

func addrType(v6 bool) string {
	if v6 {
		return "ipv6_addr"
	}
	return "ipv4_addr"
}
