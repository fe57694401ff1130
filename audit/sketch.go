package audit

import (
	"cmp"
	"slices"
)

// Counter is a key a Sketch or a Summary monitors. Count is an upper
// bound of the key's true weight and Count−Err a lower bound: Err is the
// weight the key inherited when it took over another key's counter.
type Counter[K comparable] struct {
	Key   K
	Count uint64
	Err   uint64
}

// Sketch finds the heaviest keys of a stream in k counters: the
// Space-Saving algorithm of Metwally, Agrawal and El Abbadi ("Efficient
// Computation of Frequent and Top-k Elements in Data Streams", ICDT
// 2005). A key not monitored takes over the smallest counter and inherits
// its count as its error, so for every key
//
//	Count − Err ≤ true weight ≤ Count,
//
// every key whose weight exceeds Total/k is monitored, and no Err exceeds
// Total/k. Unlike a least-recently-used table, a key keeps its counter as
// long as its weight is among the k largest, however long ago it was last
// seen: a burst of new keys does not erase the history of a slow, steady
// one.
//
// The counters stay in place while their keys are monitored; a min-heap
// of their positions, with each counter's place in the heap, finds the
// smallest, so an offer costs one map lookup (and, for a key not
// monitored, one deletion and one insertion) and O(log k) array writes.
// A Sketch is not safe for concurrent use.
type Sketch[K comparable] struct {
	k        int
	counters []Counter[K]
	heap     []int32     // counter numbers, a min-heap on their Count
	pos      []int32     // each counter's position in heap
	index    map[K]int32 // each monitored key's counter
	floor    uint64      // bound of an unmonitored key's weight while not full
	total    uint64
}

// NewSketch returns an empty sketch of k counters (at least one).
func NewSketch[K comparable](k int) *Sketch[K] {
	k = max(k, 1)
	return &Sketch[K]{k: k, counters: make([]Counter[K], 0, k), heap: make([]int32, 0, k),
		pos: make([]int32, 0, k), index: make(map[K]int32, k)}
}

// Offer adds weight to key.
func (s *Sketch[K]) Offer(key K, weight uint64) {
	if weight == 0 {
		return
	}
	s.total += weight
	if c, ok := s.index[key]; ok {
		s.counters[c].Count += weight
		s.down(int(s.pos[c]))
		return
	}
	if len(s.counters) < s.k {
		c := int32(len(s.counters))
		s.counters = append(s.counters, Counter[K]{Key: key, Count: s.floor + weight, Err: s.floor})
		s.heap = append(s.heap, c)
		s.pos = append(s.pos, int32(len(s.heap)-1))
		s.index[key] = c
		s.up(len(s.heap) - 1)
		return
	}
	c := s.heap[0]
	least := s.counters[c]
	delete(s.index, least.Key)
	s.counters[c] = Counter[K]{Key: key, Count: least.Count + weight, Err: least.Count}
	s.index[key] = c
	s.down(0)
}

// Capacity is k, the number of counters.
func (s *Sketch[K]) Capacity() int { return s.k }

// Len is the number of keys monitored.
func (s *Sketch[K]) Len() int { return len(s.counters) }

// Total is the weight offered (merged sketches add theirs).
func (s *Sketch[K]) Total() uint64 { return s.total }

// Floor bounds the true weight of every key the sketch does not monitor.
func (s *Sketch[K]) Floor() uint64 {
	if len(s.counters) == s.k {
		return s.counters[s.heap[0]].Count
	}
	return s.floor
}

// Top returns the n heaviest counters, heaviest first (ties: the smaller
// error first, then in an order fixed by the offers).
func (s *Sketch[K]) Top(n int) []Counter[K] { return s.Summary(n).Items }

// Summary returns the n heaviest counters (all when n < 0) with the
// sketch's total and the bound of every key left out.
func (s *Sketch[K]) Summary(n int) Summary[K] {
	items := slices.Clone(s.counters)
	sortCounters(items)
	return Summary[K]{Items: items, Floor: s.Floor(), Total: s.total}.Truncate(n)
}

// Merge adds other's stream to the sketch, which keeps its k counters:
// the mergeable summaries of Agarwal et al. (PODS 2012) in the form of
// Cafaro et al. for Space-Saving. A key's counts add up, a sketch that
// does not monitor it contributing its Floor to the key's count and
// error; the k heaviest stay. The guarantees hold for the union of the
// streams, with Err ≤ (Total₁+Total₂)/k.
func (s *Sketch[K]) Merge(other *Sketch[K]) {
	s.load(MergeSummaries(s.Summary(-1), other.Summary(-1)))
}

// Reset empties the sketch, keeping its memory.
func (s *Sketch[K]) Reset() {
	clear(s.index)
	s.counters, s.heap, s.pos = s.counters[:0], s.heap[:0], s.pos[:0]
	s.floor, s.total = 0, 0
}

// load replaces the sketch's counters with a summary's k heaviest.
func (s *Sketch[K]) load(sum Summary[K]) {
	sum = sum.Truncate(s.k)
	s.Reset()
	for i := len(sum.Items) - 1; i >= 0; i-- { // ascending counts form a min-heap
		c := int32(len(s.counters))
		s.counters = append(s.counters, sum.Items[i])
		s.heap = append(s.heap, c)
		s.pos = append(s.pos, c)
		s.index[sum.Items[i].Key] = c
	}
	s.floor, s.total = sum.Floor, sum.Total
}

func (s *Sketch[K]) count(i int) uint64 { return s.counters[s.heap[i]].Count }

// down moves the counter at heap position i towards the leaves while a
// child counts less.
func (s *Sketch[K]) down(i int) {
	h, x := s.heap, s.heap[i]
	xc := s.counters[x].Count
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && s.count(r) < s.count(c) {
			c = r
		}
		if s.count(c) >= xc {
			break
		}
		h[i] = h[c]
		s.pos[h[i]] = int32(i)
		i = c
	}
	h[i] = x
	s.pos[x] = int32(i)
}

func (s *Sketch[K]) up(i int) {
	h, x := s.heap, s.heap[i]
	xc := s.counters[x].Count
	for i > 0 {
		p := (i - 1) / 2
		if s.count(p) <= xc {
			break
		}
		h[i] = h[p]
		s.pos[h[i]] = int32(i)
		i = p
	}
	h[i] = x
	s.pos[x] = int32(i)
}

// Summary is a frozen, truncated sketch: its heaviest counters, the bound
// of every key it left out, and the weight it saw.
type Summary[K comparable] struct {
	// Items are the counters kept, by Count descending.
	Items []Counter[K]
	// Floor bounds the true weight of every key not in Items.
	Floor uint64
	// Total is the weight offered.
	Total uint64
}

// Truncate keeps the n heaviest items (all when n < 0), in a slice of
// their own, and raises Floor to the heaviest count left out. Items must
// be sorted by Count descending.
func (s Summary[K]) Truncate(n int) Summary[K] {
	if n < 0 || n >= len(s.Items) {
		s.Items = slices.Clip(s.Items)
		return s
	}
	s.Floor = max(s.Floor, s.Items[n].Count)
	s.Items = slices.Clone(s.Items[:n])
	return s
}

// MergeSummaries merges summaries of disjoint parts of a stream (buckets
// of time) into one of their union, keeping every key: a key's count and
// error are the sums of its counts and errors where it is monitored and
// of the parts' floors where it is not, so Count−Err ≤ true ≤ Count still
// holds, and the result's Floor is the sum of the floors. Items are
// sorted by Count descending, then by Err ascending, then in the order
// the keys first appear.
func MergeSummaries[K comparable](parts ...Summary[K]) Summary[K] {
	var out Summary[K]
	n := 0
	for _, p := range parts {
		out.Floor += p.Floor
		out.Total += p.Total
		n += len(p.Items)
	}
	type sum struct {
		Counter[K]
		floors uint64 // floors of the parts that monitor the key
	}
	at := make(map[K]int, n)
	sums := make([]sum, 0, n)
	for _, p := range parts {
		for _, it := range p.Items {
			i, ok := at[it.Key]
			if !ok {
				i = len(sums)
				at[it.Key] = i
				sums = append(sums, sum{Counter: Counter[K]{Key: it.Key}})
			}
			sums[i].Count += it.Count
			sums[i].Err += it.Err
			sums[i].floors += p.Floor
		}
	}
	out.Items = make([]Counter[K], len(sums))
	for i, s := range sums {
		rest := out.Floor - s.floors // the floors of the parts that do not monitor it
		out.Items[i] = Counter[K]{Key: s.Key, Count: s.Count + rest, Err: s.Err + rest}
	}
	sortCounters(out.Items)
	return out
}

func sortCounters[K comparable](items []Counter[K]) {
	slices.SortStableFunc(items, func(a, b Counter[K]) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Err, b.Err))
	})
}
