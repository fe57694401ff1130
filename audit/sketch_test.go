package audit

import (
	"cmp"
	"container/list"
	"math/rand/v2"
	"slices"
	"testing"
)

// stream is a sequence of keys with their exact counts.
type stream struct {
	keys  []uint32
	truth map[uint32]uint64
}

func newStream() *stream { return &stream{truth: map[uint32]uint64{}} }

func (s *stream) add(k uint32) {
	s.keys = append(s.keys, k)
	s.truth[k]++
}

func zipfStream(seed uint64, skew float64, keys uint64, n int) *stream {
	z := rand.NewZipf(rand.New(rand.NewPCG(seed, seed+1)), skew, 1, keys-1)
	s := newStream()
	for range n {
		s.add(uint32(z.Uint64()))
	}
	return s
}

func uniformStream(seed uint64, keys uint32, n int) *stream {
	r := rand.New(rand.NewPCG(seed, seed+1))
	s := newStream()
	for range n {
		s.add(r.Uint32N(keys))
	}
	return s
}

func sketchOf(k int, s *stream) *Sketch[uint32] {
	sk := NewSketch[uint32](k)
	for _, key := range s.keys {
		sk.Offer(key, 1)
	}
	return sk
}

// exactTop is the n heaviest keys, ties by key.
func exactTop(truth map[uint32]uint64, n int) []uint32 {
	keys := make([]uint32, 0, len(truth))
	for k := range truth {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b uint32) int { return cmp.Or(cmp.Compare(truth[b], truth[a]), cmp.Compare(a, b)) })
	return keys[:min(n, len(keys))]
}

// checkSummary checks the Space-Saving guarantees of a summary of a
// stream of total weight total: bounds for every monitored key, the floor
// for every other, every key heavier than total/k monitored, and no error
// above total/k.
func checkSummary(t *testing.T, sum Summary[uint32], truth map[uint32]uint64, total uint64, k int) {
	t.Helper()
	if sum.Total != total {
		t.Errorf("Total = %d, want %d", sum.Total, total)
	}
	monitored := map[uint32]bool{}
	for _, it := range sum.Items {
		monitored[it.Key] = true
		if tr := truth[it.Key]; it.Count-it.Err > tr || tr > it.Count {
			t.Errorf("key %d: count %d err %d, true %d: want count-err <= true <= count", it.Key, it.Count, it.Err, tr)
		}
		if it.Err > total/uint64(k) {
			t.Errorf("key %d: err %d > total/k = %d", it.Key, it.Err, total/uint64(k))
		}
	}
	for key, tr := range truth {
		if monitored[key] {
			continue
		}
		if tr > sum.Floor {
			t.Errorf("key %d not monitored: true %d > floor %d", key, tr, sum.Floor)
		}
		if tr > total/uint64(k) {
			t.Errorf("key %d not monitored: true %d > total/k = %d", key, tr, total/uint64(k))
		}
	}
}

func keysOf(items []Counter[uint32]) []uint32 {
	out := make([]uint32, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

func TestSketchAgainstExactCounts(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *stream
		k    int
		// exactTop is how many of the heaviest keys must come out in
		// exactly their true order (skewed streams).
		exactTop int
	}{
		{"zipf 1.1 k=128", zipfStream(1, 1.1, 100_000, 200_000), 128, 10},
		{"zipf 1.5 k=32", zipfStream(2, 1.5, 1_000_000, 100_000), 32, 10},
		{"zipf 2.0 k=16", zipfStream(3, 2.0, 1_000_000, 100_000), 16, 8},
		{"zipf 1.05 k=256 many keys", zipfStream(4, 1.05, 10_000_000, 300_000), 256, 10},
		{"uniform 10000 keys k=64", uniformStream(5, 10_000, 100_000), 64, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sk := sketchOf(tc.k, tc.s)
			total := uint64(len(tc.s.keys))
			if sk.Len() != tc.k || sk.Total() != total {
				t.Fatalf("Len, Total = %d, %d, want %d, %d", sk.Len(), sk.Total(), tc.k, total)
			}
			checkSummary(t, sk.Summary(-1), tc.s.truth, total, tc.k)
			if tc.exactTop > 0 {
				got, want := keysOf(sk.Top(tc.exactTop)), exactTop(tc.s.truth, tc.exactTop)
				if !slices.Equal(got, want) {
					t.Errorf("Top(%d) = %v, want %v", tc.exactTop, got, want)
				}
			}
		})
	}
}

func TestSketchExactWhenKeysFit(t *testing.T) {
	sk := NewSketch[string](4)
	for _, tc := range []struct {
		key string
		w   uint64
	}{{"a", 3}, {"b", 1}, {"a", 2}, {"c", 7}, {"d", 0}, {"b", 5}} {
		sk.Offer(tc.key, tc.w)
	}
	want := []Counter[string]{{"c", 7, 0}, {"b", 6, 0}, {"a", 5, 0}}
	if got := sk.Top(10); !slices.Equal(got, want) {
		t.Errorf("Top = %v, want %v", got, want)
	}
	if sk.Capacity() != 4 || sk.Len() != 3 {
		t.Errorf("Capacity, Len = %d, %d, want 4, 3", sk.Capacity(), sk.Len())
	}
	if sk.Floor() != 0 || sk.Total() != 18 {
		t.Errorf("Floor, Total = %d, %d, want 0, 18", sk.Floor(), sk.Total())
	}
	// A fifth key takes over the smallest counter and inherits it.
	sk.Offer("d", 1)
	sk.Offer("e", 2)
	want = []Counter[string]{{"c", 7, 0}, {"b", 6, 0}, {"a", 5, 0}, {"e", 3, 1}}
	if got := sk.Top(10); !slices.Equal(got, want) {
		t.Errorf("after e: Top = %v, want %v", got, want)
	}
	if sk.Floor() != 3 {
		t.Errorf("Floor = %d, want 3", sk.Floor())
	}
	sk.Reset()
	if sk.Len() != 0 || sk.Total() != 0 || len(sk.Top(3)) != 0 {
		t.Errorf("after Reset: Len %d Total %d", sk.Len(), sk.Total())
	}
}

func TestSketchMerge(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b *stream
		k    int
	}{
		{"zipf halves", zipfStream(10, 1.2, 100_000, 80_000), zipfStream(11, 1.2, 100_000, 120_000), 64},
		{"different skews", zipfStream(12, 1.6, 1_000, 50_000), zipfStream(13, 1.05, 1_000_000, 50_000), 32},
		{"one side not full", zipfStream(14, 3, 1_000, 20), zipfStream(15, 1.1, 1_000_000, 60_000), 64},
		{"uniform", uniformStream(16, 5_000, 40_000), uniformStream(17, 5_000, 40_000), 128},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sa, sb := sketchOf(tc.k, tc.a), sketchOf(tc.k, tc.b)
			sa.Merge(sb)
			truth := map[uint32]uint64{}
			for _, s := range []*stream{tc.a, tc.b} {
				for k, n := range s.truth {
					truth[k] += n
				}
			}
			total := uint64(len(tc.a.keys) + len(tc.b.keys))
			checkSummary(t, sa.Summary(-1), truth, total, tc.k)
			// The merged sketch goes on counting with the same guarantees.
			more := zipfStream(18, 1.2, 100_000, 30_000)
			for _, key := range more.keys {
				sa.Offer(key, 1)
				truth[key]++
			}
			checkSummary(t, sa.Summary(-1), truth, total+uint64(len(more.keys)), tc.k)
		})
	}
}

// TestMergeSummariesOfBuckets merges truncated summaries of consecutive
// parts of one stream, as a window merges its buckets.
func TestMergeSummariesOfBuckets(t *testing.T) {
	s := zipfStream(20, 1.3, 100_000, 120_000)
	const k, keep, parts = 128, 32, 12
	var sums []Summary[uint32]
	per := len(s.keys) / parts
	for i := range parts {
		sums = append(sums, sketchOf(k, &stream{keys: s.keys[i*per : (i+1)*per]}).Summary(keep))
	}
	merged := MergeSummaries(sums...)
	// The bound of a merge of parts truncated to keep items is the total
	// over keep+1.
	checkSummary(t, merged, s.truth, uint64(len(s.keys)), keep+1)
	if got, want := keysOf(merged.Items[:5]), exactTop(s.truth, 5); !slices.Equal(got, want) {
		t.Errorf("top 5 = %v, want %v", got, want)
	}
	if !slices.IsSortedFunc(merged.Items, func(a, b Counter[uint32]) int { return cmp.Compare(b.Count, a.Count) }) {
		t.Error("merged items not by count descending")
	}
	tr := merged.Truncate(10)
	if len(tr.Items) != 10 || tr.Floor != merged.Items[10].Count {
		t.Errorf("Truncate(10): %d items, floor %d, want 10, %d", len(tr.Items), tr.Floor, merged.Items[10].Count)
	}
	checkSummary(t, tr, s.truth, uint64(len(s.keys)), keep+1)
}

// lru counts keys in a table of n entries that evicts the least recently
// seen, as the daemon's drops table did before this package.
type lru struct {
	n     int
	order *list.List // most recent first
	at    map[uint32]*list.Element
}

type lruEntry struct {
	key   uint32
	count uint64
}

func (l *lru) offer(key uint32) {
	if e, ok := l.at[key]; ok {
		e.Value.(*lruEntry).count++
		l.order.MoveToFront(e)
		return
	}
	if l.order.Len() == l.n {
		delete(l.at, l.order.Remove(l.order.Back()).(*lruEntry).key)
	}
	l.at[key] = l.order.PushFront(&lruEntry{key: key, count: 1})
}

func (l *lru) count(key uint32) uint64 {
	if e, ok := l.at[key]; ok {
		return e.Value.(*lruEntry).count
	}
	return 0
}

// TestSlowScannerAmongOneOffs: a scanner sends one packet a minute for
// six hours, among one-off random sources — a steady trickle and, every
// hour, a burst of thousands — the shape of a slow scan hidden in a
// spoofed flood. Space-Saving keeps the scanner on top with its whole
// count bounded; a least-recently-used table of the same size loses its
// history at every burst.
func TestSlowScannerAmongOneOffs(t *testing.T) {
	const scanner = 0xC0000207 // 192.0.2.7
	for _, tc := range []struct {
		name             string
		k                int
		perMinute, burst int
	}{
		{"trickle 100/min, bursts of 5000", 256, 100, 5000},
		{"trickle 20/min, bursts of 1000", 64, 20, 1000},
		{"trickle 150/min, no bursts", 256, 150, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 8))
			s := newStream()
			for minute := range 360 {
				n := tc.perMinute
				if minute%60 == 59 {
					n += tc.burst
				}
				for range n {
					s.add(r.Uint32() | 1<<31 | 1) // never the scanner
				}
				s.add(scanner)
			}
			sk := sketchOf(tc.k, s)
			table := &lru{n: tc.k, order: list.New(), at: map[uint32]*list.Element{}}
			for _, key := range s.keys {
				table.offer(key)
			}
			total := uint64(len(s.keys))
			checkSummary(t, sk.Summary(-1), s.truth, total, tc.k)
			top := sk.Top(1)[0]
			if top.Key != scanner || top.Count-top.Err > 360 || top.Count < 360 {
				t.Errorf("top = %+v, want the scanner with count-err <= 360 <= count", top)
			}
			if tc.burst > tc.k {
				if got := table.count(scanner); got >= 60 {
					t.Errorf("LRU count of the scanner = %d, want it to have lost all but the last hour (< 60)", got)
				}
			}
		})
	}
}
