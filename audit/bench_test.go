package audit

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// BenchmarkRecord offers one sampled packet: from a pool of 4,096
// sources to 64 ports, at the kernel's log rate of 20 a second (so the
// buckets close as they do in the daemon), or all at one instant.
func BenchmarkRecord(b *testing.B) {
	pool := make([]Sample, 4096)
	for i := range pool {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(i+1)*2654435761)
		pool[i] = Sample{Rule: "default", Source: netip.AddrFrom4(a), Protocol: TCP, Port: uint16(i % 64)}
	}
	for _, step := range []time.Duration{50 * time.Millisecond, 0} {
		b.Run(fmt.Sprintf("every %s", step), func(b *testing.B) {
			start := at("2026-03-10T10:00:00Z")
			a := New(newClock(start).now)
			for i := range 100_000 { // warm: every level's sketches full
				s := pool[i%len(pool)]
				s.Time = start.Add(time.Duration(i) * 50 * time.Millisecond)
				a.Record(s)
			}
			t := start.Add(100_000 * 50 * time.Millisecond)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				s := pool[i%len(pool)]
				t = t.Add(step)
				s.Time = t
				a.Record(s)
			}
		})
	}
}

// BenchmarkFlood records 100,000 packets from distinct random sources
// into one rule and reports the heap the rule takes after it.
func BenchmarkFlood(b *testing.B) {
	start := at("2026-03-10T10:00:00Z")
	var used uint64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a := New(newClock(start.Add(10 * time.Minute)).now)
		flood(a, "default", start, 100_000)
		a.Drops(Query{})
		runtime.GC()
		runtime.ReadMemStats(&after)
		used = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(a)
	}
	b.ReportMetric(float64(used), "bytes/rule")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/packet")
}

func fullRules(n int) []string {
	rules := make([]string, n)
	for i := range rules {
		rules[i] = fmt.Sprintf("rule-%02d", i)
	}
	return rules
}

// BenchmarkSnapshot encodes and decodes ten rules with every bucket
// full, their sources IPv4 or IPv6.
func BenchmarkSnapshot(b *testing.B) {
	now := at("2026-03-10T10:37:23Z")
	for _, v6 := range []bool{false, true} {
		a := New(newClock(now).now)
		fill(a, fullRules(10), now, v6)
		snap, err := a.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		family := map[bool]string{false: "IPv4", true: "IPv6"}[v6]
		b.Run("marshal 10 full rules "+family, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := a.MarshalBinary(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(snap)), "bytes")
		})
		b.Run("unmarshal 10 full rules "+family, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := New(newClock(now).now).UnmarshalBinary(snap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkViews asks ten full rules for the windows, and one rule for
// its days of a year, as drops and report do.
func BenchmarkViews(b *testing.B) {
	now := at("2026-03-10T10:37:23Z")
	a := New(newClock(now).now)
	fill(a, fullRules(10), now, false)
	for _, since := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 365 * 24 * time.Hour} {
		b.Run(fmt.Sprintf("drops since %s", since), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				a.Drops(Query{Since: since})
			}
		})
	}
	b.Run("days of a year", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			a.Days("rule-00", now.AddDate(-1, 0, 0), now)
		}
	})
}
