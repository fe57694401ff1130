package audit

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
)

// fullSamples returns samples that fill every bucket of a rule's rings
// up to now: more distinct sources, ports and pairs than each bucket
// keeps, and than each open bucket's sketches count. Every sample is a
// new key; with v6 the sources are IPv6 (a snapshot's worst case).
func fullSamples(rule string, now time.Time, v6 bool, seq *uint32) []Sample {
	var out []Sample
	add := func(t time.Time, n int) {
		for i := range n {
			*seq++
			var src netip.Addr
			if v6 {
				var b [16]byte
				b[0], b[1] = 0x20, 0x01
				binary.BigEndian.PutUint32(b[8:], *seq*2654435761)
				binary.BigEndian.PutUint32(b[12:], *seq)
				src = netip.AddrFrom16(b)
			} else {
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], *seq*2654435761)
				src = netip.AddrFrom4(b)
			}
			proto := []Protocol{TCP, UDP, SCTP}[*seq%3]
			out = append(out, Sample{Rule: rule, Time: t.Add(time.Duration(i)), Source: src, Protocol: proto, Port: uint16(*seq)})
		}
	}
	day := levels[dayLevel]
	for d := range int64(day.slots) {
		add(day.start(day.index(now)-d), day.keep+2)
	}
	for h := range 26 {
		add(now.Truncate(time.Hour).Add(-time.Duration(h)*time.Hour), 70)
	}
	for m := range 72 {
		add(now.Truncate(time.Minute).Add(-time.Duration(m)*time.Minute), 70)
	}
	for s := range 8 {
		add(now.Truncate(10*time.Second).Add(-time.Duration(s)*10*time.Second), 40)
	}
	slices.SortStableFunc(out, func(a, b Sample) int { return a.Time.Compare(b.Time) })
	return out
}

// fill records full samples and a counter reading a minute for every
// rule, so that every bucket of every ring holds what it can.
func fill(a *Attributor, rules []string, now time.Time, v6 bool) {
	var seq uint32
	for _, rule := range rules {
		for _, s := range fullSamples(rule, now, v6, &seq) {
			a.Record(s)
		}
	}
	day := levels[dayLevel]
	for t := day.start(day.index(now) - int64(day.slots) + 1); !t.After(now); t = t.Add(time.Hour) {
		rs := map[string]Reading{}
		for i, rule := range rules {
			v := uint64(t.Unix()) * uint64(i+1)
			rs[rule] = Reading{Packets: v, Bytes: 100 * v, Epoch: "boot-0123456789abcdef/12"}
		}
		a.Observe(t, rs)
	}
}

// entries counts the keys a rule holds, per level: in closed buckets and
// in the open bucket's sketches, the three dimensions together.
func entries(r *rule) (closed, open [numLevels]int) {
	for l := range r.rings {
		g := &r.rings[l]
		for idx := g.live - int64(g.spec.slots) + 1; idx < g.live; idx++ {
			if b := g.get(idx); b != nil && b.tops != nil {
				closed[l] += len(b.tops.sources.Items) + len(b.tops.ports.Items) + len(b.tops.flows.Items)
			}
		}
		if g.open != nil {
			open[l] = g.open.sources.Len() + g.open.ports.Len() + g.open.flows.Len()
		}
	}
	return closed, open
}

// TestMemoryPerRule fills a rule's rings to the brim and checks that it
// holds exactly what the levels allow and that its heap stays under
// MaxBytesPerRule.
func TestMemoryPerRule(t *testing.T) {
	now := at("2026-03-10T10:37:23Z")
	clk := newClock(now)
	samples := fullSamples("drop", now, false, new(uint32))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a := New(clk.now)
	for _, s := range samples {
		a.Record(s)
	}
	a.Drops(Query{}) // advance to now
	runtime.GC()
	runtime.ReadMemStats(&after)
	closed, open := entries(a.rules["drop"])
	for l, sp := range levels {
		if want := 3 * sp.keep * (sp.slots - 1); closed[l] != want {
			t.Errorf("level %s: %d keys in closed buckets, want %d", sp.width, closed[l], want)
		}
		if want := 3 * sp.live; open[l] != want {
			t.Errorf("level %s: %d keys in the open bucket, want %d", sp.width, open[l], want)
		}
	}
	used := after.HeapAlloc - before.HeapAlloc
	t.Logf("one full rule: %d bytes on the heap (%d keys closed, %d open)", used, sum(closed), sum(open))
	if used > MaxBytesPerRule {
		t.Errorf("a full rule takes %d bytes, more than MaxBytesPerRule = %d", used, MaxBytesPerRule)
	}
	runtime.KeepAlive(samples)
	runtime.KeepAlive(a)
}

// TestFloodKeepsMemoryFlat: 100,000 packets from random sources in ten
// minutes leave a rule within its bounds.
func TestFloodKeepsMemoryFlat(t *testing.T) {
	start := at("2026-03-10T10:00:00Z")
	clk := newClock(start.Add(10 * time.Minute))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a := New(clk.now)
	flood(a, "default", start, 100_000)
	a.Drops(Query{})
	runtime.GC()
	runtime.ReadMemStats(&after)
	closed, open := entries(a.rules["default"])
	maxClosed, maxOpen := 0, 0
	for _, sp := range levels {
		maxClosed += 3 * sp.keep * (sp.slots - 1)
		maxOpen += 3 * sp.live
	}
	if sum(closed) > maxClosed || sum(open) > maxOpen {
		t.Errorf("keys after a flood: %d closed, %d open; at most %d, %d", sum(closed), sum(open), maxClosed, maxOpen)
	}
	used := after.HeapAlloc - before.HeapAlloc
	t.Logf("after a flood of 100,000 sources: %d bytes on the heap (%d keys closed, %d open)", used, sum(closed), sum(open))
	if used > MaxBytesPerRule {
		t.Errorf("a flooded rule takes %d bytes, more than MaxBytesPerRule = %d", used, MaxBytesPerRule)
	}
	runtime.KeepAlive(a)
}

// flood records n packets from distinct random sources to random ports,
// 6 ms apart from start.
func flood(a *Attributor, rule string, start time.Time, n int) {
	for i := range n {
		seq := uint32(i + 1)
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], seq*2654435761)
		a.Record(Sample{Rule: rule, Time: start.Add(time.Duration(i) * 6 * time.Millisecond), Source: netip.AddrFrom4(b), Protocol: TCP, Port: uint16(seq)})
	}
}

func sum(xs [numLevels]int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
