package nft

import (
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/edgefw/edgefw/policy"
)

// Compiler compiles policies as Compile does, and remembers each set's
// merged ranges from one compile to the next: after one line of a set
// file of 100,000 CIDRs changed, sorting and merging every prefix of the
// set again took 12 to 16 ms of the daemon's reload (120 to 155 ms at a
// million). A set whose prefixes are the very slice of the last compile
// (policy.SetFileCache hands an unchanged file's back) keeps its ranges;
// one whose prefixes differ from the last compile's in a few places
// (an edited file's) has only the ranges around those merged again.
//
// A set is known by its name and its prefixes' slice, so the prefixes of
// a policy given to Compile must not be modified afterwards (those of
// the policies policy loads never are). The rulesets it returns share
// their sets' ranges, which nothing modifies.
//
// The zero value is ready to use; it is safe for concurrent use.
type Compiler struct {
	mu   sync.Mutex
	memo setMemo
}

// Compile returns what the package's Compile returns for p.
func (c *Compiler) Compile(p *policy.Policy) (*Ruleset, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.memo.next = make(map[string]*setRanges, len(p.Sets))
	defer func() { c.memo.last, c.memo.next = c.memo.next, nil }()
	return compileWith(p, compileOptions{}, &c.memo)
}

// setMemo holds the sets of the last compile (last) and those of the
// compile in progress (next), by set name. Sets the last compile had
// and the next has not are forgotten.
type setMemo struct {
	last, next map[string]*setRanges
	// reused, patched and merged count the sets whose ranges were those
	// of the last compile, patched from them, or merged anew (tests).
	reused, patched, merged int
}

// setRanges is a set's prefixes and their merged ranges per family.
type setRanges struct {
	prefixes []netip.Prefix
	// v4keys are the keys of the IPv4 prefixes (ipv4PrefixKey), sorted,
	// repeats kept: a prefix that changed is found in them, and the
	// ranges around it merged again from them.
	v4keys []uint64
	v4, v6 []AddrRange
}

// ranges returns the merged ranges of a set's prefixes, per family. On a
// nil memo it merges them all.
func (m *setMemo) ranges(name string, ps []netip.Prefix) (v4, v6 []AddrRange) {
	if m == nil {
		v4p, v6p := splitFamilies(ps)
		return prefixesToRanges(v4p), prefixesToRanges(v6p)
	}
	var r *setRanges
	if _, twice := m.next[name]; twice {
		// No validated policy names a set twice; the first is kept.
		r = newSetRanges(ps)
	} else {
		r = m.follow(m.last[name], ps)
		m.next[name] = r
	}
	return r.v4, r.v6
}

// maxPatchShare bounds the share of a set's prefixes that may differ
// from the last compile's for its ranges to be patched rather than
// merged anew.
const maxPatchShare = 8

// follow returns the ranges of ps, from r's when it is not nil. r's keys
// may be changed in place: r is not to be used again.
func (m *setMemo) follow(r *setRanges, ps []netip.Prefix) *setRanges {
	if r == nil {
		m.merged++
		return newSetRanges(ps)
	}
	if len(r.prefixes) == len(ps) && (len(ps) == 0 || &r.prefixes[0] == &ps[0]) {
		m.reused++
		return r
	}
	next := r.patched(ps)
	if next == nil {
		m.merged++
		return newSetRanges(ps)
	}
	m.patched++
	return next
}

// patched returns the ranges of ps from r's, or nil if ps differs from
// r's prefixes too much (or r's keys disagree with its ranges). r's keys
// may be changed in place.
func (r *setRanges) patched(ps []netip.Prefix) *setRanges {
	// An edited set file's prefixes are those of its last parse with
	// the run of the changed lines' replaced (SetFileCache).
	head, tail := commonEnds(r.prefixes, ps)
	removed, added := r.prefixes[head:len(r.prefixes)-tail], ps[head:len(ps)-tail]
	if (len(removed)+len(added))*maxPatchShare > len(ps)+64 {
		return nil
	}
	next := &setRanges{prefixes: ps, v4keys: r.v4keys, v4: r.v4, v6: r.v6}
	var gone, fresh []uint64
	v6Changed := false
	for _, p := range removed {
		if p.Addr().Is4() {
			gone = append(gone, ipv4PrefixKey(p))
		} else {
			v6Changed = true
		}
	}
	for _, p := range added {
		if p.Addr().Is4() {
			fresh = append(fresh, ipv4PrefixKey(p))
		} else {
			v6Changed = true
		}
	}
	if v6Changed {
		_, v6p := splitFamilies(ps)
		next.v6 = prefixesToRanges(v6p)
	}
	if len(gone)+len(fresh) == 0 {
		return next
	}
	keys, ok := replaceKeys(r.v4keys, gone, fresh)
	if !ok {
		return nil
	}
	next.v4keys = keys
	changed := slices.Concat(gone, fresh)
	slices.Sort(changed)
	if next.v4, ok = patchIPv4Ranges(r.v4, keys, changed); !ok {
		return nil
	}
	return next
}

// newSetRanges merges the prefixes ps into ranges.
func newSetRanges(ps []netip.Prefix) *setRanges {
	v4p, v6p := splitFamilies(ps)
	keys := ipv4PrefixKeys(v4p)
	slices.Sort(keys)
	r := &setRanges{prefixes: ps, v4keys: keys, v6: prefixesToRanges(v6p)}
	if len(keys) > 0 {
		r.v4 = mergeSortedIPv4Keys(keys, make([]AddrRange, 0, len(keys)))
	}
	return r
}

// commonEnds returns how many elements a and b have in common at their
// start (head) and then at their end (tail).
func commonEnds[T comparable](a, b []T) (head, tail int) {
	n := min(len(a), len(b))
	for head < n && a[head] == b[head] {
		head++
	}
	for tail < n-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	return head, tail
}

// maxInPlaceKeys bounds the keys replaceKeys removes and inserts one by
// one, each moving the keys after it; more are merged in one pass.
const maxInPlaceKeys = 16

// replaceKeys returns the sorted keys with one of each of gone removed
// and fresh inserted, reusing keys' memory for a few; false if a key of
// gone is not in keys.
func replaceKeys(keys, gone, fresh []uint64) ([]uint64, bool) {
	slices.Sort(gone)
	slices.Sort(fresh)
	if len(gone)+len(fresh) <= maxInPlaceKeys {
		for _, k := range gone {
			i, found := slices.BinarySearch(keys, k)
			if !found {
				return nil, false
			}
			keys = slices.Delete(keys, i, i+1)
		}
		for _, k := range fresh {
			i, _ := slices.BinarySearch(keys, k)
			keys = slices.Insert(keys, i, k)
		}
		return keys, true
	}
	out := make([]uint64, 0, len(keys)-len(gone)+len(fresh))
	i, j := 0, 0
	for _, k := range keys {
		if i < len(gone) && gone[i] == k {
			i++
			continue
		}
		for j < len(fresh) && fresh[j] < k {
			out = append(out, fresh[j])
			j++
		}
		out = append(out, k)
	}
	return append(out, fresh[j:]...), i == len(gone)
}

// patchIPv4Ranges returns the merged ranges of keys (sorted), given old,
// the merged ranges of keys before the keys changed (sorted) were
// removed or inserted: old's ranges away from every changed key are
// kept, and those each touches are merged again from keys.
//
// A changed key's window is the old ranges it overlaps or is adjacent
// to, and the addresses from the first of them (or the key) to the
// last. A key now in keys whose first address is in a window lies in it
// whole: it is unchanged, so inside an old range there, or changed.
// Windows that share an old range, or the gap between two, are one:
// then old ranges kept are never adjacent to a window's merged ranges.
// It reports false if keys and old disagree (a range merged from a
// window's keys ends past it).
func patchIPv4Ranges(old []AddrRange, keys, changed []uint64) ([]AddrRange, bool) {
	type window struct {
		i, j   int // old[i:j] are merged again
		lo, hi uint64
	}
	var ws []window
	for _, k := range changed {
		lo, hi := k>>32, k&0xffffffff
		i := sort.Search(len(old), func(x int) bool { return uint64(ipv4(old[x].To))+1 >= lo })
		j := sort.Search(len(old), func(x int) bool { return uint64(ipv4(old[x].From)) > hi+1 })
		if i < j {
			lo, hi = min(lo, uint64(ipv4(old[i].From))), max(hi, uint64(ipv4(old[j-1].To)))
		}
		if n := len(ws); n > 0 && i <= ws[n-1].j {
			w := &ws[n-1]
			w.j, w.lo, w.hi = max(w.j, j), min(w.lo, lo), max(w.hi, hi)
			continue
		}
		ws = append(ws, window{i: i, j: j, lo: lo, hi: hi})
	}
	out := make([]AddrRange, 0, len(old)+len(changed))
	kept := 0
	for _, w := range ws {
		out = append(out, old[kept:w.i]...)
		a := sort.Search(len(keys), func(x int) bool { return keys[x]>>32 >= w.lo })
		b := sort.Search(len(keys), func(x int) bool { return keys[x]>>32 > w.hi })
		out = mergeSortedIPv4Keys(keys[a:b], out)
		if b > a && uint64(ipv4(out[len(out)-1].To)) > w.hi {
			return nil, false
		}
		kept = w.j
	}
	out = append(out, old[kept:]...)
	if len(out) == 0 {
		return nil, true
	}
	return out, true
}
