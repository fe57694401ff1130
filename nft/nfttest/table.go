package nfttest

import (
	"maps"
	"slices"

	"github.com/edgefw/edgefw/nft"
)

// table is the fake's table inet edgefw.
type table struct {
	// handles numbers the table's chains, rules, sets and counters, as
	// the kernel's per-table handle generator does. It is shared by the
	// working copies of a transaction: as in the kernel, a refused
	// transaction does not give back the handles it took.
	handles  *uint64
	counters map[string]nft.Counter
	sets     map[string]*set
	chains   map[string]*chain
}

type chain struct {
	name  string
	base  *nft.BaseChain // nil: a regular chain
	rules []*rule
}

// rule is a rule as the fake checks it: what it refers to.
type rule struct {
	handle        uint64
	hash, counted string
	exprs         int
	counters      []string // named counters it counts into by name
	mapCounters   []string // and through its object map
	sets          []string // named sets and meters it looks up or updates
	jumps         []string // the chains it jumps or goes to, itself or through its verdict map
}

type set struct {
	state nft.SetState // Elements aside
	// ranges are the set's elements as they were added, in order of
	// their start; never overlapping (the kernel refuses that).
	ranges []nft.AddrRange
	// jumps are the chains a verdict map's elements jump to.
	jumps []string
}

func newTable() *table {
	return &table{handles: new(uint64), counters: map[string]nft.Counter{},
		sets: map[string]*set{}, chains: map[string]*chain{}}
}

func (t *table) handle() uint64 {
	*t.handles++
	return *t.handles
}

// clone copies what a transaction may change; rules are never changed in
// place, so they are shared.
func (t *table) clone() *table {
	if t == nil {
		return nil
	}
	c := &table{handles: t.handles, counters: maps.Clone(t.counters),
		sets: make(map[string]*set, len(t.sets)), chains: make(map[string]*chain, len(t.chains))}
	for name, s := range t.sets {
		cs := *s
		cs.ranges = slices.Clone(s.ranges)
		c.sets[name] = &cs
	}
	for name, ch := range t.chains {
		cc := *ch
		cc.rules = slices.Clone(ch.rules)
		c.chains[name] = &cc
	}
	return c
}

// state returns what the table holds as a Kernel reads it.
func (t *table) state() *nft.TableState {
	if t == nil {
		return &nft.TableState{}
	}
	ks := &nft.TableState{Exists: true, Counters: maps.Clone(t.counters),
		Sets: make(map[string]*nft.SetState, len(t.sets)), Chains: make(map[string]*nft.ChainState, len(t.chains))}
	for name, s := range t.sets {
		ss := s.state
		if !ss.Dynamic {
			ss.Elements = slices.Clone(s.ranges)
		}
		ks.Sets[name] = &ss
	}
	for name, ch := range t.chains {
		cs := &nft.ChainState{Name: name, Rules: make([]nft.RuleState, len(ch.rules))}
		if ch.base != nil {
			b := *ch.base
			cs.Base = &b
		}
		for i, r := range ch.rules {
			cs.Rules[i] = nft.RuleState{Handle: r.handle, Hash: r.hash, Counted: r.counted,
				Counters: slices.Clone(r.counters), MapCounters: slices.Clone(r.mapCounters), Exprs: r.exprs}
		}
		ks.Chains[name] = cs
	}
	return ks
}

// counterUsed, setUsed and chainUsed report whether something still
// refers to the object, which the kernel then refuses to delete.
func (t *table) counterUsed(name string) bool {
	return t.anyRule(func(_ *chain, r *rule) bool {
		return slices.Contains(r.counters, name) || slices.Contains(r.mapCounters, name)
	})
}

func (t *table) setUsed(name string) bool {
	return t.anyRule(func(_ *chain, r *rule) bool { return slices.Contains(r.sets, name) })
}

func (t *table) chainUsed(name string) bool {
	for _, s := range t.sets {
		if slices.Contains(s.jumps, name) {
			return true
		}
	}
	return t.anyRule(func(ch *chain, r *rule) bool { return ch.name != name && slices.Contains(r.jumps, name) })
}

func (t *table) anyRule(f func(ch *chain, r *rule) bool) bool {
	for _, ch := range t.chains {
		for _, r := range ch.rules {
			if f(ch, r) {
				return true
			}
		}
	}
	return false
}
