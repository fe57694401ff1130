package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/edgefw/edgefw/policy"
)

// spacedRanges returns n disjoint ranges of one family, not touching,
// starting at 10.0.0.0 (or 2001:db8::), each size addresses long, step
// apart.
func spacedRanges(n int, v6 bool, step, size uint32) []AddrRange {
	out := make([]AddrRange, n)
	for i := range out {
		from := addrAt(v6, 10<<24+uint32(i)*step)
		out[i] = AddrRange{From: from, To: addrAt(v6, 10<<24+uint32(i)*step+size-1)}
	}
	return out
}

// addrAt is the IPv4 address v, or 2001:db8:: plus v.
func addrAt(v6 bool, v uint32) netip.Addr {
	if !v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	}
	b := netip.MustParseAddr("2001:db8::").As16()
	binary.BigEndian.PutUint32(b[12:], v)
	return netip.AddrFrom16(b)
}

// shardRuleset has set "big" of the given ranges, looked up by a drop rule
// from its sources and an accept rule of TCP to its destinations, with a
// small set between them in another rule.
func shardRuleset(v6 bool, ranges []AddrRange) *Ruleset {
	big := &AddrSet{Name: "big", V6: v6, Ranges: ranges}
	small := &AddrSet{Name: "small", V6: v6, Ranges: spacedRanges(2, v6, 1<<20, 1)}
	return &Ruleset{
		Counters: []string{"drop-big", "other", "to-big"},
		Sets:     []*AddrSet{small, big},
		Chains: []*Chain{{Name: "input", Hook: policy.Input, Policy: policy.Drop, Rules: []*Rule{
			{Owner: "drop-big", Matches: []Match{AddrMatch{V6: v6, Set: "big"}}, Counter: "drop-big", LogPrefix: "drop-big", Verdict: policy.Drop},
			{Owner: "other", Matches: []Match{AddrMatch{V6: v6, Set: "small"}}, Counter: "other", Verdict: policy.Accept},
			{Owner: "to-big", Matches: []Match{L4Match{Protos: []policy.Protocol{policy.TCP}}, AddrMatch{Dst: true, V6: v6, Set: "big"}}, Counter: "to-big", Verdict: policy.Accept},
		}}},
		Rules: []RuleInfo{{Name: "drop-big"}, {Name: "other"}, {Name: "to-big"}},
	}
}

// stateOf is the table a kernel holds after rs was written to it, as far
// as sharding looks: its sets.
func stateOf(rs *Ruleset) *TableState {
	ks := &TableState{Exists: true, Sets: map[string]*SetState{}}
	for _, s := range rs.Sets {
		ks.Sets[s.Name] = &SetState{Name: s.Name, KeyType: addrType(s.V6), Interval: true, Elements: s.Ranges}
	}
	return ks
}

// checkShards checks that sharded is rs with set big split into shards:
// spans that cover the family, each shard's ranges within its span, folded
// back exactly big's ranges; every rule that looks big up once per shard
// in order, matching the shard's span on the same field, the rest of the
// rule as it was. It returns the shards' names.
func checkShards(t *testing.T, rs, sharded *Ruleset, threshold int) []string {
	t.Helper()
	big := rs.Set("big")
	var names []string
	var spans []AddrRange
	next := wholeFamily(big.V6).From
	for _, s := range sharded.Sets {
		set, from, ok := parseShardName(s.Name)
		if !ok {
			if s.Name != "small" {
				t.Errorf("set %s is neither a shard nor small", s.Name)
			}
			continue
		}
		if set != "big" || from != next {
			t.Fatalf("shard %s of %s starts at %v, want %v", s.Name, set, from, next)
		}
		names = append(names, s.Name)
		if n := len(s.Ranges); n > 2*threshold {
			t.Errorf("shard %s holds %d ranges, more than twice the threshold %d", s.Name, n, threshold)
		}
		var span AddrRange
		for _, r := range sharded.Chains[0].Rules {
			if ms := r.Matches; len(ms) >= 2 && ms[len(ms)-1].(AddrMatch).Set == s.Name {
				span = ms[len(ms)-2].(AddrMatch).Ranges[0]
			}
		}
		if span.From != from {
			t.Fatalf("the rules of shard %s match the span %v", s.Name, span)
		}
		for _, r := range s.Ranges {
			if r.From.Less(span.From) || span.To.Less(r.To) {
				t.Errorf("shard %s of span %v holds %v", s.Name, span, r)
			}
		}
		spans = append(spans, span)
		next = span.To.Next()
	}
	if len(names) < 2 || spans[len(spans)-1].To != wholeFamily(big.V6).To {
		t.Fatalf("shards %q do not cover the family: spans %v", names, spans)
	}
	if got := foldShards(stateOf(sharded)).Sets["big"].Elements; !slices.Equal(got, big.Ranges) {
		t.Fatalf("the shards folded hold %d ranges, not the set's %d", len(got), len(big.Ranges))
	}
	var want []string
	for _, r := range rs.Chains[0].Rules {
		if r.Matches[len(r.Matches)-1].(AddrMatch).Set != "big" {
			want = append(want, r.String())
			continue
		}
		for i, name := range names {
			am := r.Matches[len(r.Matches)-1].(AddrMatch)
			sr := *r
			sr.Matches = append(slices.Clone(r.Matches[:len(r.Matches)-1]),
				AddrMatch{Dst: am.Dst, V6: am.V6, Ranges: []AddrRange{spans[i]}}, AddrMatch{Dst: am.Dst, V6: am.V6, Set: name})
			want = append(want, sr.String())
		}
	}
	var got []string
	for _, r := range sharded.Chains[0].Rules {
		got = append(got, r.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("sharded rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Equal(sharded.Counters, rs.Counters) || !slices.Equal(sharded.Rules, rs.Rules) {
		t.Errorf("sharding changed the counters or their descriptions")
	}
	return names
}

func TestShardRoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			const threshold = 64
			rs := shardRuleset(v6, spacedRanges(1000, v6, 4, 2))
			before := rs.String()
			sharded := shard(rs, &TableState{}, threshold)
			names := checkShards(t, rs, sharded, threshold)
			if want := (1000 + threshold - 1) / threshold; len(names) != want {
				t.Errorf("%d shards, want %d", len(names), want)
			}
			for _, s := range sharded.Sets {
				if _, _, ok := parseShardName(s.Name); ok && (len(s.Ranges) < threshold/2 || len(s.Ranges) > threshold) {
					t.Errorf("new shard %s holds %d ranges, not threshold/2 to threshold", s.Name, len(s.Ranges))
				}
			}
			if rs.String() != before {
				t.Error("sharding changed the ruleset it was given")
			}
			if err := sharded.validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestShardSmallSetsStay(t *testing.T) {
	rs := shardRuleset(false, spacedRanges(64, false, 4, 2))
	if got := shard(rs, &TableState{}, 64); got != rs {
		t.Errorf("a set of threshold ranges was sharded")
	}
	if got := shard(shardRuleset(false, spacedRanges(1000, false, 4, 2)), &TableState{}, 0); got.Set("big") == nil {
		t.Errorf("threshold 0 sharded")
	}
}

// TestShardBoundsSticky: one range added or removed changes one shard
// and keeps every shard's name, so no rule changes.
func TestShardBoundsSticky(t *testing.T) {
	const threshold = 64
	ranges := spacedRanges(1000, false, 4, 2)
	first := shard(shardRuleset(false, ranges), &TableState{}, threshold)
	ks := stateOf(first)
	for name, ranges := range map[string][]AddrRange{
		"added":   mergeRanges(append(slices.Clone(ranges), spacedRanges(1, false, 0, 1)[0], AddrRange{From: addrAt(false, 10<<24+2), To: addrAt(false, 10<<24+2)})),
		"removed": slices.Delete(slices.Clone(ranges), 500, 501),
	} {
		t.Run(name, func(t *testing.T) {
			rs := shardRuleset(false, ranges)
			again := shard(rs, ks, threshold)
			checkShards(t, rs, again, threshold)
			changed := 0
			for _, s := range again.Sets {
				old, ok := ks.Sets[s.Name]
				if !ok {
					t.Fatalf("shard %s is new", s.Name)
				}
				if !slices.Equal(old.Elements, s.Ranges) {
					changed++
				}
			}
			if len(again.Sets) != len(first.Sets) || changed != 1 {
				t.Errorf("%d of %d sets changed, %d before; want 1 of as many", changed, len(again.Sets), len(first.Sets))
			}
			if !slices.EqualFunc(again.Chains[0].Rules, first.Chains[0].Rules, func(a, b *Rule) bool { return a.Hash() == b.Hash() }) {
				t.Error("the rules changed")
			}
		})
	}
}

// TestReshard: a shard that grows past twice the threshold or shrinks
// below an eighth of it gets new bounds; a set sharded keeps its shards
// while they fit, also at or below the threshold (no flapping between
// one set and two around it), and is one set again when they do not.
func TestReshard(t *testing.T) {
	const threshold = 64
	ranges := spacedRanges(1000, false, 4, 1) // 16 shards of 62 or 63
	names := func(rs *Ruleset) []string {
		var out []string
		for _, s := range rs.Sets {
			out = append(out, s.Name)
		}
		return out
	}
	// Ranges below 10.0.0.0: the first shard grows past 2x.
	grown := slices.Clone(ranges)
	for i := range 2*threshold + 8 {
		grown = append(grown, AddrRange{From: addrAt(false, 9<<24+uint32(i)*2), To: addrAt(false, 9<<24+uint32(i)*2)})
	}
	grown = mergeRanges(grown)
	// The third shard (ranges 125 to 186) keeps 3.
	shrunk := slices.Delete(slices.Clone(ranges), 128, 187)
	for name, tc := range map[string]struct {
		before, after []AddrRange
		sharded       bool // after
		kept          bool // the shards of before
	}{
		"overflow":        {ranges, grown, true, false},
		"underflow":       {ranges, shrunk, true, false},
		"one changed":     {ranges, ranges[1:], true, true},
		"below threshold": {ranges[:100], ranges[:60], true, true},
		"one set again":   {ranges[:100], ranges[:7], false, false},
	} {
		t.Run(name, func(t *testing.T) {
			first := shard(shardRuleset(false, tc.before), &TableState{}, threshold)
			rs := shardRuleset(false, tc.after)
			got := shard(rs, stateOf(first), threshold)
			if !tc.sharded {
				if got.Set("big") == nil || len(got.Sets) != 2 {
					t.Fatalf("sets %q, want small and big", names(got))
				}
				return
			}
			checkShards(t, rs, got, threshold)
			if slices.Equal(names(got), names(first)) != tc.kept {
				t.Errorf("shards %q, before %q; want them kept: %v", names(got), names(first), tc.kept)
			}
		})
	}
}

// TestShardSplitsCrossingRange: a range across a kept bound is split into
// both shards, and folds back whole.
func TestShardSplitsCrossingRange(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		const threshold = 64
		ranges := spacedRanges(1000, v6, 4, 2)
		ks := stateOf(shard(shardRuleset(v6, ranges), &TableState{}, threshold))
		bounds := keptBounds(ks, &AddrSet{Name: "big", V6: v6})
		// From the middle of the range before the third bound into the
		// range after it.
		at := slices.IndexFunc(ranges, func(r AddrRange) bool { return r.From == bounds[2] })
		wide := AddrRange{From: ranges[at-1].To, To: ranges[at].From}
		crossing := mergeRanges(append(slices.Clone(ranges), wide))
		rs := shardRuleset(v6, crossing)
		got := shard(rs, ks, threshold)
		checkShards(t, rs, got, threshold)
		before := got.Set(shardName("big", bounds[1])).Ranges
		after := got.Set(shardName("big", bounds[2])).Ranges
		if before[len(before)-1].To != bounds[2].Prev() || after[0].From != bounds[2] {
			t.Errorf("v6=%v: the range across %v ends its shard at %v and starts the next at %v", v6, bounds[2], before[len(before)-1], after[0])
		}
	}
}

// TestShardTwoSetsInOneRule: a rule that looks up two sharded sets is one
// rule per pair of shards.
func TestShardTwoSetsInOneRule(t *testing.T) {
	rs := shardRuleset(false, spacedRanges(200, false, 4, 2))
	rs.Sets[0].Ranges = spacedRanges(150, false, 8, 1)
	rs.Chains[0].Rules[1].Matches = append(rs.Chains[0].Rules[1].Matches, AddrMatch{Dst: true, Set: "big"})
	got := shard(rs, &TableState{}, 64)
	var pairs []string
	for _, r := range got.Chains[0].Rules {
		if r.Owner == "other" {
			pairs = append(pairs, r.Matches[1].(AddrMatch).Set+" "+r.Matches[3].(AddrMatch).Set)
		}
	}
	if len(pairs) != 3*4 || len(got.Sets) != 3+4 {
		t.Errorf("%d rules for two sets of 3 and 4 shards (%d sets): %q", len(pairs), len(got.Sets), pairs)
	}
}

func TestParseShardName(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  string
		from string
	}{
		{"blocklist-v4.s.0a000000", "blocklist-v4", "10.0.0.0"},
		{"blocklist-v6.s.20010db8000000000000000000000000", "blocklist-v6", "2001:db8::"},
		{"blocklist-v4", "", ""},
		{"blocklist-v4.s.0a0000", "", ""},
		{"blocklist-v4.s.zz000000", "", ""},
		{".s.0a000000", "", ""},
	} {
		set, from, ok := parseShardName(tc.name)
		if ok != (tc.set != "") || set != tc.set || (ok && from.String() != tc.from) {
			t.Errorf("parseShardName(%q) = %q, %v, %v", tc.name, set, from, ok)
		}
	}
}

func TestKernelSet(t *testing.T) {
	names := []string{"small-v4", "big-v4.s.00000000", "big-v4.s.0a000000", "big-v4.s.c0000000", "big-v6.s.00000000000000000000000000000000"}
	for addr, want := range map[string]string{
		"9.255.255.255":   "big-v4.s.00000000",
		"10.0.0.0":        "big-v4.s.0a000000",
		"191.1.1.1":       "big-v4.s.0a000000",
		"255.255.255.255": "big-v4.s.c0000000",
	} {
		if got := KernelSet("big-v4", names, netip.MustParseAddr(addr)); got != want {
			t.Errorf("KernelSet(big-v4, %s) = %s, want %s", addr, got, want)
		}
	}
	if got := KernelSet("small-v4", names, netip.MustParseAddr("10.0.0.1")); got != "small-v4" {
		t.Errorf("an unsharded set: %s", got)
	}
}
