package nft

import (
	"encoding/hex"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Sharding: what keeps the commit of one changed element small in a large
// set. The kernel's interval sets (rbtree) walk the whole tree on every
// commit that touches them: one element into a set of 1M ranges costs
// 230-250 ms of kernel time here, into one of 64 sets of 15.6k 0.6 ms. So
// the Applier writes a set of more than a threshold of ranges as several
// sets of disjoint address spans, shards, and each rule that looks the set
// up as one rule per shard, which also matches its shard's span:
//
//	ip saddr @blocklist-v4 drop
//
// becomes
//
//	ip saddr 0.0.0.0-9.255.255.255 ip saddr @blocklist-v4.s.00000000 drop
//	ip saddr 10.0.0.0-255.255.255.255 ip saddr @blocklist-v4.s.0a000000 drop
//
// The spans are disjoint and cover the family, so a packet matches at most
// one of the rules, and the one the set would have matched: first-match
// semantics, counters (named, shared by the rules), logs and verdicts stay.
// The span match is redundant for correctness (the shards' elements are
// disjoint too) but lets a packet skip a shard with one comparison instead
// of a lookup.
//
// A shard's name carries the first address of its span, so the spans can
// be read back from the kernel alone: the next apply keeps them as long as
// every shard stays within bounds (shardFits), and then one changed
// element changes one shard and no rule. Otherwise it places new ones at
// quantiles of the set (a reshard): new sets and rules, the old ones
// deleted, in the one transaction the planner makes of any change.
//
// Only the Applier shards, just before planning: Compile, the goldens,
// `edgefwctl plan`, Trace and Exposure see the policy's sets, and so does
// whoever reads Inspect (shards are folded back there).

// DefaultShardThreshold is the most ranges a set is written as one kernel
// set; larger ones are sharded into sets of threshold/2 to threshold
// ranges. At this size one element's commit costs well under a
// millisecond on the kernels measured.
const DefaultShardThreshold = 16384

// shardInfix separates a shard's set name from its span's first address,
// in hex. Policy names are [a-z][a-z0-9-]*, so no policy set has it; nft
// identifiers accept dots ([a-zA-Z_][a-zA-Z0-9/\-_.]*), so `nft -f` can
// still name a shard.
const shardInfix = ".s."

// shardPart is one shard of a set: the span of addresses it may hold and
// its set.
type shardPart struct {
	span AddrRange
	set  *AddrSet
}

// shardLayout maps the names of the sets to shard to their shards.
type shardLayout map[string][]shardPart

// shard returns rs as the Applier writes it over ks: sets of more than
// threshold ranges split into shards, kept from ks where they still fit,
// and the rules that look them up once per shard. It returns rs itself
// when no set is that large; it never changes rs. A threshold of 0 or
// less shards nothing.
func shard(rs *Ruleset, ks *TableState, threshold int) *Ruleset {
	return planShards(rs, ks, threshold).apply(rs)
}

// apply returns rs with the sets of l sharded and the rules that look
// them up once per shard; rs itself when l shards nothing.
func (l shardLayout) apply(rs *Ruleset) *Ruleset {
	if len(l) == 0 {
		return rs
	}
	out := *rs
	out.Sets = make([]*AddrSet, 0, len(rs.Sets))
	for _, s := range rs.Sets {
		parts, ok := l[s.Name]
		if !ok {
			out.Sets = append(out.Sets, s)
			continue
		}
		for _, p := range parts {
			out.Sets = append(out.Sets, p.set)
		}
	}
	out.Chains = make([]*Chain, len(rs.Chains))
	for i, ch := range rs.Chains {
		c := *ch
		c.Rules = make([]*Rule, 0, len(ch.Rules))
		for _, r := range ch.Rules {
			c.Rules = append(c.Rules, l.rule(r)...)
		}
		out.Chains[i] = &c
	}
	return &out
}

// resharded returns the hashes of the rules that change only because
// their sets' shards do: for each rule of rs whose shards in l differ
// from its shards in the layout ks holds, all of which ks holds, the
// hashes of both. Such a rule is rewritten in the kernel but has not
// changed in the policy's terms (see summarize).
func (l shardLayout) resharded(rs *Ruleset, ks *TableState) map[string]bool {
	if ks == nil || !ks.Exists {
		return nil
	}
	held := shardLayout{}
	for _, s := range rs.Sets {
		if kept := keptBounds(ks, s); kept != nil {
			held[s.Name] = splitSet(s, kept)
		}
	}
	if len(held) == 0 && len(l) == 0 {
		return nil
	}
	inKernel := map[string]bool{}
	for _, ch := range ks.Chains {
		for _, r := range ch.Rules {
			inKernel[r.Hash] = true
		}
	}
	hashes := func(rules []*Rule) []string {
		out := make([]string, len(rules))
		for i, r := range rules {
			out[i] = r.Hash()
		}
		return out
	}
	moved := map[string]bool{}
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			before, after := held.rule(r), l.rule(r)
			if len(before) == 1 && len(after) == 1 && before[0] == r && after[0] == r {
				continue // looks up no sharded set
			}
			was, is := hashes(before), hashes(after)
			if slices.Equal(was, is) || slices.ContainsFunc(was, func(h string) bool { return !inKernel[h] }) {
				continue
			}
			for _, h := range slices.Concat(was, is) {
				moved[h] = true
			}
		}
	}
	return moved
}

// planShards decides the shards of each set of rs that needs them.
func planShards(rs *Ruleset, ks *TableState, threshold int) shardLayout {
	if threshold <= 0 {
		return nil
	}
	var layout shardLayout
	for _, s := range rs.Sets {
		parts := shardSet(s, keptBounds(ks, s), threshold)
		if parts == nil {
			continue
		}
		if layout == nil {
			layout = shardLayout{}
		}
		layout[s.Name] = parts
	}
	return layout
}

// shardSet splits s at the kept bounds if its shards still fit there,
// else at new bounds; nil when s is not larger than threshold and has
// no kept shards that fit.
func shardSet(s *AddrSet, kept []netip.Addr, threshold int) []shardPart {
	if len(kept) > 1 {
		if parts := splitSet(s, kept); shardsFit(parts, threshold) {
			return parts
		}
	}
	n := len(s.Ranges)
	k := (n + threshold - 1) / threshold
	if k <= 1 {
		return nil
	}
	// The ranges are merged, so bounds at their starts split none.
	bounds := make([]netip.Addr, k)
	bounds[0] = wholeFamily(s.V6).From
	for i := 1; i < k; i++ {
		bounds[i] = s.Ranges[i*n/k].From
	}
	return splitSet(s, bounds)
}

// shardsFit reports whether kept shards may stay as they are: none has
// grown past twice the threshold or shrunk below an eighth of it, so a
// set that moves around the threshold is not resharded back and forth.
func shardsFit(parts []shardPart, threshold int) bool {
	for _, p := range parts {
		if n := len(p.set.Ranges); n > 2*threshold || n < threshold/8 {
			return false
		}
	}
	return true
}

// splitSet splits s into shards whose spans start at bounds (sorted, the
// first the family's first address) and end before the next. A range
// across a bound is split there. Shards share s's ranges where none is
// split, so a million ranges are not copied.
func splitSet(s *AddrSet, bounds []netip.Addr) []shardPart {
	parts := make([]shardPart, len(bounds))
	last := wholeFamily(s.V6).To
	i := 0
	for b, from := range bounds {
		span := AddrRange{From: from, To: last}
		if b+1 < len(bounds) {
			span.To = bounds[b+1].Prev()
		}
		// The ranges are sorted: the shard's end from a binary search,
		// not a walk of a million ranges.
		lo := i
		i += sort.Search(len(s.Ranges)-lo, func(j int) bool { return span.To.Less(s.Ranges[lo+j].From) })
		rs := s.Ranges[lo:i]
		if n := len(rs); n > 0 && (rs[0].From.Less(span.From) || span.To.Less(rs[n-1].To)) {
			rs = slices.Clone(rs)
			if rs[0].From.Less(span.From) {
				rs[0].From = span.From
			}
			if span.To.Less(rs[n-1].To) {
				rs[n-1].To = span.To
				i-- // the next shard holds the rest of it
			}
		}
		parts[b] = shardPart{span: span, set: &AddrSet{Name: shardName(s.Name, from), V6: s.V6, Ranges: rs}}
	}
	return parts
}

// shardName names the shard of set whose span starts at from.
func shardName(set string, from netip.Addr) string {
	return set + shardInfix + hex.EncodeToString(from.AsSlice())
}

// parseShardName returns the set a shard belongs to and its span's first
// address; false for a name that is not a shard's.
func parseShardName(name string) (set string, from netip.Addr, ok bool) {
	i := strings.LastIndex(name, shardInfix)
	if i <= 0 {
		return "", netip.Addr{}, false
	}
	b, err := hex.DecodeString(name[i+len(shardInfix):])
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return "", netip.Addr{}, false
	}
	from, _ = netip.AddrFromSlice(b)
	return name[:i], from, true
}

// keptBounds returns the first addresses of the spans of the shards of s
// that ks holds, sorted; nil when they are not a usable set of shards
// (none, of another kind, or not starting at the family's first address).
func keptBounds(ks *TableState, s *AddrSet) []netip.Addr {
	if ks == nil {
		return nil
	}
	var bounds []netip.Addr
	for name, st := range ks.Sets {
		set, from, ok := parseShardName(name)
		if !ok || set != s.Name {
			continue
		}
		if from.Is6() != s.V6 || st.KeyType != addrType(s.V6) || !st.Interval || st.Dynamic || st.IsMap {
			return nil
		}
		bounds = append(bounds, from)
	}
	slices.SortFunc(bounds, netip.Addr.Compare)
	if len(bounds) == 0 || bounds[0] != wholeFamily(s.V6).From {
		return nil
	}
	return bounds
}

// rule returns r as one rule per shard of the first sharded set it looks
// up, each also matching its shard's span, and those again for the next
// sharded set; r alone when it looks up none.
func (l shardLayout) rule(r *Rule) []*Rule {
	for j, m := range r.Matches {
		am, ok := m.(AddrMatch)
		if !ok || am.Set == "" {
			continue
		}
		parts, ok := l[am.Set]
		if !ok {
			continue
		}
		var out []*Rule
		for _, p := range parts {
			nr := *r
			nr.Matches = slices.Concat(r.Matches[:j], []Match{
				AddrMatch{Dst: am.Dst, V6: am.V6, Ranges: []AddrRange{p.span}},
				AddrMatch{Dst: am.Dst, V6: am.V6, Set: p.set.Name},
			}, r.Matches[j+1:])
			out = append(out, l.rule(&nr)...)
		}
		return out
	}
	return []*Rule{r}
}

// foldShards returns ks with the shards of each set folded back into the
// set, named as the policy names it and holding its ranges as the
// policy's set does (a range split at a bound joined again): what the
// table holds in the policy's terms. Rules are left as they are.
func foldShards(ks *TableState) *TableState {
	groups := map[string][]string{}
	for name := range ks.Sets {
		if set, _, ok := parseShardName(name); ok {
			groups[set] = append(groups[set], name)
		}
	}
	if len(groups) == 0 {
		return ks
	}
	out := *ks
	out.Sets = make(map[string]*SetState, len(ks.Sets))
	for name, s := range ks.Sets {
		out.Sets[name] = s
	}
	for set, names := range groups {
		if _, clash := ks.Sets[set]; clash {
			continue // not ours to fold: show both as they are
		}
		slices.SortFunc(names, func(a, b string) int {
			_, x, _ := parseShardName(a)
			_, y, _ := parseShardName(b)
			return x.Compare(y)
		})
		folded := *ks.Sets[names[0]]
		folded.Name, folded.Elements = set, nil
		for _, name := range names {
			_, from, _ := parseShardName(name)
			elems := ks.Sets[name].Elements
			if n := len(folded.Elements); n > 0 && len(elems) > 0 && elems[0].From == from &&
				folded.Elements[n-1].To.Next() == from {
				folded.Elements[n-1].To = elems[0].To
				elems = elems[1:]
			}
			folded.Elements = append(folded.Elements, elems...)
			delete(out.Sets, name)
		}
		out.Sets[set] = &folded
	}
	return &out
}

// KernelSet returns the name of the kernel set of table inet edgefw
// that holds addr for the policy's set named set (SetName's), given the
// names of the table's sets: the shard whose span holds addr, or set
// itself when it is not sharded. For tools that look elements up in the
// kernel, such as the bench.
func KernelSet(set string, names []string, addr netip.Addr) string {
	best, bestFrom := set, netip.Addr{}
	for _, name := range names {
		if s, from, ok := parseShardName(name); ok && s == set && from.Is4() == addr.Is4() &&
			!addr.Less(from) && (best == set || bestFrom.Less(from)) {
			best, bestFrom = name, from
		}
	}
	return best
}
