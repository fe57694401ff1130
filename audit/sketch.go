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
// The counters form a min-heap with an index from key to position, so an
// offer costs O(log k). A Sketch is not safe for concurrent use.
type Sketch[K comparable] struct {
	k     int
	heap  []Counter[K] // a min-heap on Count
	index map[K]int32  // each monitored key's position in heap
	floor uint64       // bound of an unmonitored key's weight while not full
	total uint64
}

// NewSketch returns an empty sketch of k counters (at least one).
func NewSketch[K comparable](k int) *Sketch[K] {
	k = max(k, 1)
	return &Sketch[K]{k: k, heap: make([]Counter[K], 0, k), index: make(map[K]int32, k)}
}

// Offer adds weight to key.
func (s *Sketch[K]) Offer(key K, weight uint64) {
	if weight == 0 {
		return
	}
	s.total += weight
	if i, ok := s.index[key]; ok {
		s.heap[i].Count += weight
		s.down(int(i))
		return
	}
	if len(s.heap) < s.k {
		s.heap = append(s.heap, Counter[K]{Key: key, Count: s.floor + weight, Err: s.floor})
		s.up(len(s.heap) - 1)
		return
	}
	least := s.heap[0]
	delete(s.index, least.Key)
	s.heap[0] = Counter[K]{Key: key, Count: least.Count + weight, Err: least.Count}
	s.down(0)
}

// K is the number of counters.
func (s *Sketch[K]) K() int { return s.k }

// Len is the number of keys monitored.
func (s *Sketch[K]) Len() int { return len(s.heap) }

// Total is the weight offered (merged sketches add theirs).
func (s *Sketch[K]) Total() uint64 { return s.total }

// Floor bounds the true weight of every key the sketch does not monitor.
func (s *Sketch[K]) Floor() uint64 {
	if len(s.heap) == s.k {
		return s.heap[0].Count
	}
	return s.floor
}

// Top returns the n heaviest counters, heaviest first (ties: the smaller
// error first, then in an order fixed by the offers).
func (s *Sketch[K]) Top(n int) []Counter[K] { return s.Summary(n).Items }

// Summary returns the n heaviest counters with the sketch's total and the
// bound of every key left out.
func (s *Sketch[K]) Summary(n int) Summary[K] {
	items := slices.Clone(s.heap)
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
	s.load(MergeSummaries(s.Summary(s.k), other.Summary(other.k)))
}

// Reset empties the sketch, keeping its memory.
func (s *Sketch[K]) Reset() {
	clear(s.index)
	s.heap = s.heap[:0]
	s.floor, s.total = 0, 0
}

// load replaces the sketch's counters with a summary's k heaviest.
func (s *Sketch[K]) load(sum Summary[K]) {
	sum = sum.Truncate(s.k)
	s.Reset()
	for i := len(sum.Items) - 1; i >= 0; i-- { // ascending counts form a min-heap
		s.heap = append(s.heap, sum.Items[i])
		s.index[sum.Items[i].Key] = int32(len(s.heap) - 1)
	}
	s.floor, s.total = sum.Floor, sum.Total
}

// down moves the counter at i towards the leaves while a child counts
// less, moving a hole instead of swapping to write the index once a level.
func (s *Sketch[K]) down(i int) {
	h, x := s.heap, s.heap[i]
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && h[r].Count < h[c].Count {
			c = r
		}
		if h[c].Count >= x.Count {
			break
		}
		h[i] = h[c]
		s.index[h[i].Key] = int32(i)
		i = c
	}
	h[i] = x
	s.index[x.Key] = int32(i)
}

func (s *Sketch[K]) up(i int) {
	h, x := s.heap, s.heap[i]
	for i > 0 {
		p := (i - 1) / 2
		if h[p].Count <= x.Count {
			break
		}
		h[i] = h[p]
		s.index[h[i].Key] = int32(i)
		i = p
	}
	h[i] = x
	s.index[x.Key] = int32(i)
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
