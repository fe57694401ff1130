package nfttest

import (
	"fmt"
	"slices"
	"syscall"

	"github.com/edgefw/edgefw/nft"
)

// Drift: changes to table inet edgefw behind the Applier's back, as nft
// or another tool makes them. Each is one transaction, checked as the
// kernel checks it, and moves the generation when it succeeds; a refused
// one returns a *nft.KernelError and changes nothing.

// AddTable adds the table, as `nft add table inet edgefw`.
func (k *Kernel) AddTable() error {
	return k.change("add table inet "+nft.TableName, func(w *work) error { w.addTable(); return nil })
}

// DeleteTable deletes the table and everything in it, as `nft delete
// table inet edgefw` or `nft flush ruleset`.
func (k *Kernel) DeleteTable() error {
	return k.change("delete table inet "+nft.TableName, func(w *work) error { return w.apply(nft.DeleteTable{}) })
}

// AddCounter adds a named counter holding value, as `nft add counter inet
// edgefw NAME { packets N bytes M }`; a counter that exists keeps its own.
func (k *Kernel) AddCounter(name string, value nft.Counter) error {
	return k.change(fmt.Sprintf("add counter %q", name), func(w *work) error {
		if w.t == nil {
			return refuse(syscall.ENOENT)
		}
		return w.t.addCounter(name, value)
	})
}

// Count adds traffic to a named counter, as packets matching its rules
// would. Traffic is no commit: the generation stays.
func (k *Kernel) Count(name string, packets, bytes uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.t == nil {
		return nft.ErrNoTable
	}
	c, ok := k.t.counters[name]
	if !ok {
		return fmt.Errorf("count into counter %q: %w", name, syscall.ENOENT)
	}
	c.Packets += packets
	c.Bytes += bytes
	k.t.counters[name] = c
	return nil
}

// AddChain adds a chain (regular when base is nil), as `nft add chain`;
// for a base chain that exists at the same hook, type and priority, that
// sets its policy.
func (k *Kernel) AddChain(name string, base *nft.BaseChain) error {
	return k.change("add chain "+name, func(w *work) error {
		if w.t == nil {
			return refuse(syscall.ENOENT)
		}
		return w.t.addChain(name, base)
	})
}

// SetPolicy sets the policy of a base chain, accept or drop, as `nft
// chain inet edgefw NAME { policy accept; }`.
func (k *Kernel) SetPolicy(chainName, policy string) error {
	return k.change(fmt.Sprintf("set policy of chain %s to %s", chainName, policy), func(w *work) error {
		if w.t == nil || w.t.chains[chainName] == nil {
			return refuse(syscall.ENOENT)
		}
		ch := w.t.chains[chainName]
		if ch.base == nil {
			return refuse(syscall.EOPNOTSUPP)
		}
		b := *ch.base
		b.Policy = policy
		return w.t.addChain(chainName, &b)
	})
}

// FlushChain deletes every rule of a chain, as `nft flush chain`.
func (k *Kernel) FlushChain(name string) error {
	return k.change("flush chain "+name, func(w *work) error { return w.apply(nft.FlushChain{Chain: name}) })
}

// DeleteChain deletes a chain and its rules, as `nft delete chain` (which
// the kernel refuses while something jumps to the chain).
func (k *Kernel) DeleteChain(name string) error {
	return k.change("delete chain "+name, func(w *work) error { return w.apply(nft.DeleteChain{Name: name}) })
}

// Rule is a rule someone else adds to a chain: what it refers to, which
// the kernel checks, and how many expressions it has (`tcp dport 23
// accept` has 5).
type Rule struct {
	// Insert puts the rule first in its chain, as `nft insert rule`;
	// otherwise it goes last, as `nft add rule`.
	Insert bool
	// Counters and Sets are the named counters it counts into and the
	// named sets, maps and meters it looks up.
	Counters, Sets []string
	// Jump is a chain it jumps or goes to.
	Jump  string
	Exprs int
}

// AddRule adds a rule that edgefw did not write, and returns its handle.
func (k *Kernel) AddRule(chainName string, r Rule) (uint64, error) {
	spec := &ruleSpec{rule: rule{exprs: r.Exprs, counters: slices.Clone(r.Counters), sets: slices.Clone(r.Sets)}}
	if r.Jump != "" {
		spec.jumps = []string{r.Jump}
	}
	err := k.change("add rule in chain "+chainName, func(w *work) error {
		if w.t == nil {
			return refuse(syscall.ENOENT)
		}
		var before uint64
		if ch := w.t.chains[chainName]; r.Insert && ch != nil && len(ch.rules) > 0 {
			before = ch.rules[0].handle
		}
		return w.t.addRule(chainName, before, spec)
	})
	return spec.handle, err
}

// DeleteRule deletes a rule by its handle, as `nft delete rule inet edgefw
// CHAIN handle N`.
func (k *Kernel) DeleteRule(chainName string, handle uint64) error {
	op := nft.DeleteRule{Chain: chainName, Handle: handle}
	return k.change(op.Change(), func(w *work) error { return w.apply(op) })
}

// AddSet adds a named set or map with the ranges of s.Elements, as `nft
// add set` or `nft add map`; jumps are the chains a verdict map's
// elements jump to.
func (k *Kernel) AddSet(s nft.SetState, jumps ...string) error {
	return k.change("add set "+s.Name, func(w *work) error {
		if w.t == nil {
			return refuse(syscall.ENOENT)
		}
		ranges := s.Elements
		s.Elements = nil
		return w.t.addSet(s, slices.Clone(jumps), ranges)
	})
}

// DeleteSet deletes a named set, map or meter, as `nft delete set`.
func (k *Kernel) DeleteSet(name string) error {
	return k.change("delete set "+name, func(w *work) error { return w.apply(nft.DeleteSet{Name: name}) })
}

// AddElements adds address ranges to a set, as `nft add element`.
func (k *Kernel) AddElements(setName string, ranges ...nft.AddrRange) error {
	return k.change("add elements to set "+setName, func(w *work) error {
		if w.t == nil || w.t.sets[setName] == nil {
			return refuse(syscall.ENOENT)
		}
		return w.t.addElements(setName, w.t.sets[setName].state.KeyType == "ipv6_addr", ranges)
	})
}

// DeleteElements deletes address ranges from a set, each exactly as the
// set holds it, as `nft delete element`.
func (k *Kernel) DeleteElements(setName string, ranges ...nft.AddrRange) error {
	return k.change("delete elements from set "+setName, func(w *work) error {
		if w.t == nil || w.t.sets[setName] == nil {
			return refuse(syscall.ENOENT)
		}
		return w.t.deleteElements(setName, w.t.sets[setName].state.KeyType == "ipv6_addr", ranges)
	})
}

// FlushSet deletes every element of a set, as `nft flush set`.
func (k *Kernel) FlushSet(setName string) error {
	return k.change("flush set "+setName, func(w *work) error {
		if w.t == nil {
			return refuse(syscall.ENOENT)
		}
		return w.t.flushSet(setName)
	})
}

// CommitElsewhere commits a transaction of another tool to a table of its
// own, as `nft add table ip other`: the generation moves, table inet
// edgefw stays as it is, and no change of it is reported.
func (k *Kernel) CommitElsewhere() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gen++
}
