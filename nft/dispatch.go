package nft

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/edgefw/edgefw/policy"
)

// Dispatch: new connections find the rules of their destination port
// through a verdict map instead of walking the port rules one by one, as
// kube-proxy's nftables mode does.
//
// A direction's policy rules are cut into runs of consecutive rules that
// each match on a transport protocol and destination ports (every one of
// their alternatives does). A run of at least dispatchMinRules rules
// compiles into one rule per protocol, `tcp dport vmap { 22 : jump C, ...
// }`, whose keys are the disjoint port intervals the run's rules use.
// Each key jumps to a regular chain holding, in declared order and
// unchanged, exactly the run's kernel rules whose ports include the key's
// ports. A rule left out of a key's chain cannot match the key's packets,
// so a packet meets the same rules in the same order as in the base chain
// and first match still wins; a packet no chain decides comes back to
// the rule after the map, the next rule in declared order. Counters stay
// one named counter per rule, shared by every chain the rule is in.
//
// A rule that cannot be dispatched (no ports, every port of a protocol,
// ICMP) ends a run and stays in the base chain, in its place.
//
// Most keys need no chain: the one rule of the run that holds the key's
// ports matches on nothing else, so every packet of the key is counted
// in its counter and gets its verdict. Such keys go to a direct map,
// `counter name tcp dport map { 22 : "ssh" } tcp dport vmap { 22 :
// accept }`, which counts through a map of named counters (an object
// map) and decides through a verdict map, in one kernel rule. A chain
// costs the kernel far more than a map element (the transaction of
// 10,000 port rules took 0.2-0.3 s of system time with a chain each,
// 0.1 s with direct maps). A key whose chain would hold several rules,
// or a rule with other matches, a log, a limit or a reject (not a
// verdict a map can hold), keeps its chain. The keys of a run are
// disjoint, so a packet finds its key in at most one map of its
// protocol, and the order of the maps does not matter; the direct ones
// come first, as they are the common case.
//
// A direct map holds keys of one verdict only: accept keys and drop keys
// go to maps of their own. Its counters then all count one direction and
// action, which its kernel rule records (udataCounted) as a rule with a
// counter of its own does, and a read lists the counters of its object
// map (RuleState.MapCounters): a counter whose rule's action changes is
// reset wherever its rule is (see countersToReset).

// dispatchMinRules is the shortest run of port rules that is dispatched.
// A map lookup and a jump cost about what walking a few port comparisons
// does, and below that the base chain reads better as it is; from there
// on the walk grows with the rules and the lookup does not.
const dispatchMinRules = 8

// maxKeysPerMap bounds a verdict map's keys. Its elements go to the
// kernel in one netlink attribute whose length is 16 bits (LAB.md: past
// 64 KiB it silently wraps), and a key takes up to about 150 bytes: a
// start element with a jump to a chain name of up to 81 bytes, and an
// end element. A run with more keys gets several maps, each with its
// share of the keys: the keys are disjoint, so a packet finds its chain
// in at most one of them and goes past the others.
const maxKeysPerMap = 400

// compileOptions are how Compile lays rules out; the zero value is what the
// daemon applies.
type compileOptions struct {
	// linear keeps every rule in its base chain, walked one by one: the
	// reference the dispatched layout is tested against.
	linear bool
}

// PortDispatch is a verdict map on the destination port of one transport
// protocol: a packet of the protocol whose port is in an element's
// interval jumps to the element's chain, or, in a direct map, is counted
// in the element's rule's counter and gets its verdict.
type PortDispatch struct {
	Proto    policy.Protocol
	Elements []DispatchElement // disjoint, in port order
	// Direct maps hold only elements with a Rule, jump maps only
	// elements with a Chain.
	Direct bool
}

// DispatchElement is one key of a PortDispatch and the chain it jumps to,
// or the rule whose counter and verdict it stands for.
type DispatchElement struct {
	Ports PortSpan
	Chain string
	// Rule, in a direct map, is the kernel rule the key would have
	// been the only rule of in its chain: a protocol and ports, its
	// counter, accept or drop. It is in no chain.
	Rule *Rule
}

// String renders the map as nft lists it.
func (d *PortDispatch) String() string {
	if d.Direct {
		// Hashed and rendered on every apply: built in one buffer.
		var b strings.Builder
		b.Grow(len(d.Elements) * (24 + len(d.Elements[0].Rule.Counter)))
		b.WriteString("counter name " + string(d.Proto) + " dport map { ")
		for i, e := range d.Elements {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(portsName(e.Ports))
			b.WriteString(" : ")
			b.WriteString(strconv.Quote(e.Rule.Counter))
		}
		b.WriteString(" } " + string(d.Proto) + " dport vmap { ")
		for i, e := range d.Elements {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(portsName(e.Ports))
			b.WriteString(" : ")
			b.WriteString(string(e.Rule.Verdict))
		}
		b.WriteString(" }")
		return b.String()
	}
	items := make([]string, len(d.Elements))
	for i, e := range d.Elements {
		items[i] = renderPorts([]PortSpan{e.Ports}) + " : jump " + e.Chain
	}
	return fmt.Sprintf("%s dport vmap { %s }", d.Proto, strings.Join(items, ", "))
}

// Counters returns the named counters the rule counts into: its Counter,
// or the counters of its direct map's keys, each once, in port order.
func (r *Rule) Counters() []string {
	if r.Dispatch == nil || !r.Dispatch.Direct {
		if r.Counter == "" {
			return nil
		}
		return []string{r.Counter}
	}
	out := make([]string, 0, len(r.Dispatch.Elements))
	seen := make(map[string]bool, len(r.Dispatch.Elements))
	for _, e := range r.Dispatch.Elements {
		if !seen[e.Rule.Counter] {
			seen[e.Rule.Counter] = true
			out = append(out, e.Rule.Counter)
		}
	}
	return out
}

// directRule reports whether r can be a key of a direct map: it matches a
// protocol's ports and nothing else, counts, and accepts or drops.
// Reject is a statement, not a verdict a map can hold.
func directRule(r *Rule) bool {
	if len(r.Matches) != 1 || r.Counter == "" || r.Limit != nil || r.LogPrefix != "" ||
		r.Stmt != nil || r.Jump != "" || r.Dispatch != nil {
		return false
	}
	if l, ok := r.Matches[0].(L4Match); !ok || len(l.Ports) == 0 || len(l.Protos) != 1 {
		return false
	}
	return r.Verdict == policy.Accept || r.Verdict == policy.Drop
}

// elementFor returns the element of a packet of proto to port, or false.
func (d *PortDispatch) elementFor(proto policy.Protocol, port uint16) (DispatchElement, bool) {
	if proto != d.Proto {
		return DispatchElement{}, false
	}
	i, found := slices.BinarySearchFunc(d.Elements, port, func(e DispatchElement, p uint16) int {
		switch {
		case e.Ports.To < p:
			return -1
		case e.Ports.From > p:
			return 1
		}
		return 0
	})
	if !found {
		return DispatchElement{}, false
	}
	return d.Elements[i], true
}

// chains returns the chains the map jumps to, each once, in key order.
func (d *PortDispatch) chains() []string {
	var out []string
	seen := make(map[string]bool, len(d.Elements))
	for _, e := range d.Elements {
		if e.Chain != "" && !seen[e.Chain] {
			seen[e.Chain] = true
			out = append(out, e.Chain)
		}
	}
	return out
}

// Targets returns the chains the rule jumps or goes to: its Jump, or the
// chains of its Dispatch.
func (r *Rule) Targets() []string {
	if r.Dispatch != nil {
		return r.Dispatch.chains()
	}
	if r.Jump != "" {
		return []string{r.Jump}
	}
	return nil
}

// portKey is a protocol and the destination ports a kernel rule needs.
type portKey struct {
	proto policy.Protocol
	ports []PortSpan
}

// ruleUnit is one policy rule compiled: its kernel rules for the base
// chain, and when it can be dispatched, the ports each of them needs.
type ruleUnit struct {
	name  string // the policy rule's
	rules []*Rule
	// keys are the ports of each kernel rule; nil when the rule cannot
	// be dispatched.
	keys [][]portKey
}

func (u *ruleUnit) dispatchable() bool { return u.keys != nil || len(u.rules) == 0 }

// unit compiles a policy rule as rule does, and works out whether and
// how it can be dispatched.
func (c *compiler) unit(ch *Chain, r *policy.Rule) (ruleUnit, error) {
	start := len(ch.Rules)
	err := c.rule(ch, r)
	u := ruleUnit{name: r.Name, rules: slices.Clone(ch.Rules[start:])}
	ch.Rules = ch.Rules[:start]
	if err != nil || len(u.rules) == 0 {
		return u, err
	}
	// all are the ports of every alternative, once per protocol.
	var all []portKey
	for _, alt := range c.alternatives(r) {
		k, ok := altPortKey(alt)
		if !ok {
			return u, nil
		}
		i := slices.IndexFunc(all, func(a portKey) bool { return a.proto == k.proto })
		if i < 0 {
			all = append(all, k)
			continue
		}
		all[i].ports = mergePorts(slices.Concat(all[i].ports, k.ports))
	}
	u.keys = make([][]portKey, len(u.rules))
	for i, kr := range u.rules {
		if k, ok := altPortKey(kr.Matches); ok {
			u.keys[i] = []portKey{k}
		} else {
			// The jump to an audit chain, which matches the
			// alternatives there.
			u.keys[i] = all
		}
	}
	return u, nil
}

// altPortKey returns the protocol and ports an alternative matches on.
func altPortKey(ms []Match) (portKey, bool) {
	for _, m := range ms {
		if l, ok := m.(L4Match); ok && len(l.Ports) > 0 {
			return portKey{proto: l.Protos[0], ports: l.Ports}, true
		}
	}
	return portKey{}, false
}

// layout puts a direction's compiled rules into its base chain: inline,
// or runs of port rules through verdict maps.
func (c *compiler) layout(ch *Chain, units []ruleUnit) {
	for i := 0; i < len(units); {
		if !units[i].dispatchable() {
			ch.Rules = append(ch.Rules, units[i].rules...)
			i++
			continue
		}
		j, n := i, 0
		for ; j < len(units) && units[j].dispatchable(); j++ {
			if len(units[j].rules) > 0 {
				n++
			}
		}
		if c.opts.linear || n < dispatchMinRules {
			for _, u := range units[i:j] {
				ch.Rules = append(ch.Rules, u.rules...)
			}
		} else {
			c.dispatch(ch, units[i:j])
		}
		i = j
	}
}

// dispatch compiles one run of port rules into a verdict map per
// protocol and the chains its keys jump to. A key's chain is named after
// the run's first rule and the key's first ports, so that a change in
// one run or one key leaves the names of the others as they were.
func (c *compiler) dispatch(ch *Chain, units []ruleUnit) {
	first := units[slices.IndexFunc(units, func(u ruleUnit) bool { return len(u.rules) > 0 })].name
	type entry struct {
		rule  *Rule
		ports []PortSpan
	}
	byProto := map[policy.Protocol][]entry{}
	if len(units) > 0 && len(units[0].keys) > 0 && len(units[0].keys[0]) > 0 {
		// Runs are mostly of one protocol: size its entries once.
		byProto[units[0].keys[0][0].proto] = make([]entry, 0, len(units))
	}
	for _, u := range units {
		for i, kr := range u.rules {
			for _, k := range u.keys[i] {
				byProto[k.proto] = append(byProto[k.proto], entry{kr, k.ports})
			}
		}
	}
	protos := slices.SortedFunc(maps.Keys(byProto), func(a, b policy.Protocol) int {
		return cmp.Compare(protoNumber(a), protoNumber(b))
	})
	for _, proto := range protos {
		entries := byProto[proto]
		var jumps []DispatchElement
		intervals := disjointIntervals(len(entries), func(i int) []PortSpan { return entries[i].ports })
		direct := make([]DispatchElement, 0, len(intervals))
		chains := map[string]*Chain{} // by the indexes of their entries
		for _, iv := range intervals {
			if r := entries[iv.members[0]].rule; len(iv.members) == 1 && directRule(r) {
				direct = append(direct, DispatchElement{Ports: iv.span, Rule: r})
				continue
			}
			key := fmt.Sprint(iv.members)
			dc, ok := chains[key]
			if !ok {
				dc = &Chain{Name: DispatchChain(first, proto, iv.span)}
				for _, m := range iv.members {
					dc.Rules = append(dc.Rules, entries[m].rule)
				}
				chains[key] = dc
				c.dispatched = append(c.dispatched, dc)
			}
			jumps = append(jumps, DispatchElement{Ports: iv.span, Chain: dc.Name})
		}
		// A direct map's keys share a verdict (see above): accept first.
		for _, verdict := range []policy.Action{policy.Accept, policy.Drop} {
			same := slices.DeleteFunc(slices.Clone(direct), func(e DispatchElement) bool { return e.Rule.Verdict != verdict })
			for keys := range slices.Chunk(same, maxKeysPerMap) {
				ch.Rules = append(ch.Rules, &Rule{Owner: ch.Name, Dispatch: &PortDispatch{Proto: proto, Elements: keys, Direct: true}})
			}
		}
		for keys := range slices.Chunk(jumps, maxKeysPerMap) {
			ch.Rules = append(ch.Rules, &Rule{Owner: ch.Name, Dispatch: &PortDispatch{Proto: proto, Elements: keys}})
		}
	}
}

// DispatchChain is the name of the chain a verdict map's key jumps to:
// the first rule of the run of port rules the map dispatches, and the
// key's first ports.
func DispatchChain(firstRule string, proto policy.Protocol, ports PortSpan) string {
	return fmt.Sprintf("%sdispatch-%s-%s-%s", prefixReserved, firstRule, proto, portsName(ports))
}

func portsName(p PortSpan) string {
	if p.From == p.To {
		return strconv.Itoa(int(p.From))
	}
	return strconv.Itoa(int(p.From)) + "-" + strconv.Itoa(int(p.To))
}

// interval is a span of ports and the entries (by index, ascending) whose
// ports hold all of it.
type interval struct {
	span    PortSpan
	members []int
}

// disjointIntervals cuts the ports of n entries into disjoint intervals,
// each with the entries that hold it; adjacent intervals with the same
// entries are one, and ports no entry holds are left out.
func disjointIntervals(n int, ports func(int) []PortSpan) []interval {
	var cuts []uint32
	for i := range n {
		for _, p := range ports(i) {
			cuts = append(cuts, uint32(p.From), uint32(p.To)+1)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	// members[k] are the entries that hold cuts[k] to cuts[k+1]-1.
	members := make([][]int, len(cuts))
	for i := range n {
		for _, p := range ports(i) {
			first, _ := slices.BinarySearch(cuts, uint32(p.From))
			for k := first; cuts[k] <= uint32(p.To); k++ {
				if l := len(members[k]); l == 0 || members[k][l-1] != i {
					members[k] = append(members[k], i)
				}
			}
		}
	}
	var out []interval
	for k := 0; k+1 < len(cuts); k++ {
		from, to := cuts[k], cuts[k+1]-1
		if len(members[k]) == 0 {
			continue
		}
		if l := len(out); l > 0 && uint32(out[l-1].span.To)+1 == from && slices.Equal(out[l-1].members, members[k]) {
			out[l-1].span.To = uint16(to)
			continue
		}
		out = append(out, interval{span: PortSpan{From: uint16(from), To: uint16(to)}, members: members[k]})
	}
	return out
}

// dispatchExprs loads the destination port of packets of the map's
// protocol and jumps through an anonymous verdict map, as nft compiles
// `tcp dport vmap { ... }`. A direct map counts through its map of named
// counters first, with the port still in the register: nft loads it
// again, to the same effect.
func (b *exprBuilder) dispatchExprs(d *PortDispatch) ([]expr.Any, error) {
	out := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmpEq([]byte{protoNumber(d.Proto)}),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
	if d.Direct {
		ref, err := b.counterMap(d.Elements)
		if err != nil {
			return nil, err
		}
		out = append(out, ref)
	}
	s := &nftables.Set{Table: b.table, Anonymous: true, Constant: true, Interval: true, IsMap: true,
		KeyType: nftables.TypeInetService, DataType: nftables.TypeVerdict}
	if err := b.addSet(s, dispatchElements(d.Elements)); err != nil {
		return nil, err
	}
	return append(out, &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, IsDestRegSet: true, DestRegister: 0}), nil
}

// dispatchElements encodes a map's keys as interval elements: a start
// element carrying the jump or verdict, and an end element one past it
// unless the next key starts there, as nft encodes adjacent intervals.
func dispatchElements(es []DispatchElement) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, 2*len(es))
	// google/nftables only reads an element's verdict: the keys of a
	// direct map share theirs.
	accept, drop := &expr.Verdict{Kind: expr.VerdictAccept}, &expr.Verdict{Kind: expr.VerdictDrop}
	forEachInterval(es, func(from uint16, e *DispatchElement) {
		var v *expr.Verdict
		switch {
		case e.Rule == nil:
			v = &expr.Verdict{Kind: expr.VerdictJump, Chain: e.Chain}
		case e.Rule.Verdict == policy.Drop:
			v = drop
		default:
			v = accept
		}
		out = append(out, nftables.SetElement{Key: be16(from), VerdictData: v})
	}, func(end uint16) {
		out = append(out, nftables.SetElement{Key: be16(end), IntervalEnd: true})
	})
	return out
}

// forEachInterval calls start for each key of a map in order and end
// where one ends: one past it, unless the next key starts there or it
// ends at the last port.
func forEachInterval(es []DispatchElement, start func(from uint16, e *DispatchElement), end func(uint16)) {
	for i := range es {
		e := &es[i]
		start(e.Ports.From, e)
		adjacent := i+1 < len(es) && uint32(es[i+1].Ports.From) == uint32(e.Ports.To)+1
		if e.Ports.To < 0xffff && !adjacent {
			end(e.Ports.To + 1)
		}
	}
}
