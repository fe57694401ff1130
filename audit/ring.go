package audit

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"time"
)

// levelSpec is one resolution of a rule's history: a ring of buckets of
// one width. The open bucket counts in sketches of live counters; when it
// closes, its keep heaviest keys per dimension stay.
type levelSpec struct {
	width time.Duration
	slots int // buckets in the ring, the open one included
	live  int // counters of the open bucket's sketches
	keep  int // keys kept per dimension when the bucket closes
}

// numLevels is the number of resolutions; dayLevel is the coarsest.
const (
	numLevels = 5
	dayLevel  = numLevels - 1
)

// levels are the resolutions, finest first. Each ring holds one bucket
// more than its window needs, because a window is covered from the open
// bucket of a coarser level back to a boundary of the finer one: the
// 1-minute window needs the 10-second buckets of the minute before the
// open one, the 1-hour window the minutes and 10-minute buckets of the
// hour before, the 24-hour window the hours of the day before.
//
// Sizes: the kernel logs at most 20 packets a second per rule (burst 50,
// nft.logRate), so a bucket holds at most about 250 samples at 10 s,
// 1,250 at 1 min, 12,000 at 10 min, 72,000 an hour and 1.7 million a day.
// The live counters make any key above 1/live of a bucket's sample
// certain to be monitored (3% at 10 s, 1.6% a minute, 0.8% at 10 min,
// 0.4% an hour, 0.2% a day). A window merges closed buckets, whose error
// adds up: a key's error in a window is at most the sum of its buckets'
// floors, each under the bucket's sample ÷ (keep+1). The 10-minute level
// exists so that an hour is merged from at most 5 such buckets and 9
// minutes rather than 59 minutes: a slow scanner (one packet a minute)
// then still stands out of a flood of one-off sources in the 1-hour
// window. Days keep 10 keys per dimension: the report shows a day's top
// ten; a period of days is merged from them with the same bound.
var levels = [numLevels]levelSpec{
	{width: 10 * time.Second, slots: 7, live: 32, keep: 32},
	{width: time.Minute, slots: 61, live: 64, keep: 16},
	{width: 10 * time.Minute, slots: 7, live: 128, keep: 64},
	{width: time.Hour, slots: 25, live: 256, keep: 64},
	{width: 24 * time.Hour, slots: 400, live: 512, keep: 10},
}

// index is the number of the bucket holding t.
func (sp levelSpec) index(t time.Time) int64 { return floorDiv(t.UnixNano(), int64(sp.width)) }

// start is when bucket idx begins.
func (sp levelSpec) start(idx int64) time.Time { return time.Unix(0, idx*int64(sp.width)).UTC() }

// tops are the heavy hitters of a closed bucket.
type tops struct {
	sources Summary[addrKey]
	ports   Summary[portKey]
	flows   Summary[flowKey]
}

// liveTops are the heavy hitters of an open bucket.
type liveTops struct {
	sources *Sketch[addrKey]
	ports   *Sketch[portKey]
	flows   *Sketch[flowKey]
}

func newLiveTops(k int) *liveTops {
	return &liveTops{sources: NewSketch[addrKey](k), ports: NewSketch[portKey](k), flows: NewSketch[flowKey](k)}
}

func (l *liveTops) offer(f flowKey) {
	l.sources.Offer(f.src, 1)
	l.ports.Offer(portKey{f.proto, f.port}, 1)
	l.flows.Offer(f, 1)
}

// summary returns the n heaviest keys per dimension (all when n < 0),
// ties broken by key, so that the same counts give the same summary
// whatever order the sketch holds them in (a restored sketch holds them
// in another).
func (l *liveTops) summary(n int) tops {
	return tops{
		sources: byKey(l.sources.Summary(-1), addrKey.compare).Truncate(n),
		ports:   byKey(l.ports.Summary(-1), portKey.compare).Truncate(n),
		flows:   byKey(l.flows.Summary(-1), flowKey.compare).Truncate(n),
	}
}

// byKey sorts a summary's items by count descending, then by error, then
// by key.
func byKey[K comparable](s Summary[K], compare func(K, K) int) Summary[K] {
	slices.SortFunc(s.Items, func(a, b Counter[K]) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Err, b.Err), compare(a.Key, b.Key))
	})
	return s
}

func (l *liveTops) load(t tops) {
	l.sources.load(t.sources)
	l.ports.load(t.ports)
	l.flows.load(t.flows)
}

func (l *liveTops) reset() {
	l.sources.Reset()
	l.ports.Reset()
	l.flows.Reset()
}

// bucket is one period of a rule at one level.
type bucket struct {
	idx     int64  // emptyIdx in a slot never used
	packets uint64 // counted by the kernel, spread over the buckets of each reading's interval
	bytes   uint64
	counted bool  // a counter reading covered part of the bucket
	tops    *tops // the sample's heavy hitters once closed; nil if nothing was sampled
}

const emptyIdx = math.MinInt64

// ring is a rule's history at one level.
type ring struct {
	spec  levelSpec
	live  int64 // the open bucket
	slots []bucket
	open  *liveTops // the open bucket's sample; nil until the rule's first sample
}

func newRing(spec levelSpec, t time.Time) ring {
	g := ring{spec: spec, live: spec.index(t), slots: make([]bucket, spec.slots)}
	for i := range g.slots {
		g.slots[i].idx = emptyIdx
	}
	g.claim(g.live)
	return g
}

// advance closes the open bucket if idx is later, and opens idx.
func (g *ring) advance(idx int64) {
	if idx <= g.live {
		return
	}
	if g.open != nil && g.open.sources.Total() > 0 {
		t := g.open.summary(g.spec.keep)
		g.claim(g.live).tops = &t
		g.open.reset()
	}
	g.live = idx
	g.claim(idx)
}

// record adds a sample to the open bucket (a late sample too).
func (g *ring) record(f flowKey) {
	if g.open == nil {
		g.open = newLiveTops(g.spec.live)
	}
	g.open.offer(f)
}

func (g *ring) retained(idx int64) bool { return idx <= g.live && idx > g.live-int64(g.spec.slots) }

func (g *ring) slot(idx int64) *bucket {
	n := int64(len(g.slots))
	return &g.slots[(idx%n+n)%n]
}

// claim returns bucket idx, emptying the slot if it held an older bucket.
func (g *ring) claim(idx int64) *bucket {
	b := g.slot(idx)
	if b.idx != idx {
		*b = bucket{idx: idx}
	}
	return b
}

// get returns bucket idx, or nil if it is gone or was never used.
func (g *ring) get(idx int64) *bucket {
	if !g.retained(idx) {
		return nil
	}
	if b := g.slot(idx); b.idx == idx {
		return b
	}
	return nil
}

// sampled is what bucket idx sampled, open or closed.
func (g *ring) sampled(idx int64, n int) (tops, bool) {
	if idx == g.live {
		if g.open == nil || g.open.sources.Total() == 0 {
			return tops{}, false
		}
		return g.open.summary(n), true
	}
	if b := g.get(idx); b != nil && b.tops != nil {
		return *b.tops, true
	}
	return tops{}, false
}

// spread adds a counter increase seen over [from, to] to the buckets of
// the interval in proportion to their overlap with it (the kernel's
// counters say how much, not when), so that each level's buckets sum to
// the increase, less what fell before the ring's oldest bucket. A reading
// no later than the one before adds at its own time.
func (g *ring) spread(from, to time.Time, packets, bytes uint64) {
	w := int64(g.spec.width)
	a, b := from.UnixNano(), to.UnixNano()
	if b <= a {
		g.add(floorDiv(b, w), packets, bytes)
		return
	}
	a = max(a, b-maxSpread)
	first, last := floorDiv(a, w), min(floorDiv(b-1, w), g.live)
	lo := max(first, g.live-int64(g.spec.slots)+1)
	if lo > last {
		return
	}
	span := uint64(b - a)
	var doneP, doneB uint64
	if lo > first {
		cut := uint64(lo*w - a)
		doneP, doneB = mulDiv(packets, cut, span), mulDiv(bytes, cut, span)
	}
	for idx := lo; idx <= last; idx++ {
		cut := uint64(min((idx+1)*w, b) - a)
		p, by := mulDiv(packets, cut, span), mulDiv(bytes, cut, span)
		g.add(idx, p-doneP, by-doneB)
		doneP, doneB = p, by
	}
}

// maxSpread bounds the interval of a reading (a century, far beyond any
// ring), so that its arithmetic in nanoseconds cannot overflow.
const maxSpread = int64(100 * 365 * 24 * time.Hour)

func (g *ring) add(idx int64, packets, bytes uint64) {
	if !g.retained(idx) {
		return
	}
	b := g.claim(idx)
	b.packets += packets
	b.bytes += bytes
	b.counted = true
}

// mulDiv is x·y/z rounded down, for y ≤ z, without overflow.
func mulDiv(x, y, z uint64) uint64 {
	hi, lo := bits.Mul64(x, y)
	q, _ := bits.Div64(hi, lo, z)
	return q
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
