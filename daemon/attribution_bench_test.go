package daemon

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/edgefw/edgefw/audit"
)

// fillAttribution records, for each rule, more distinct flows than every
// bucket of every ring keeps (400 days, 26 hours, 72 minutes, 8 times 10
// seconds back from now), as audit's own memory tests do through its
// internals, and an hourly counter reading: the attribution of rules
// with full rings.
func fillAttribution(a *audit.Attributor, rules []string, now time.Time) {
	var seq uint32
	var samples []audit.Sample
	add := func(rule string, t time.Time, n int) {
		for i := range n {
			seq++
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], seq*2654435761)
			samples = append(samples, audit.Sample{Rule: rule, Time: t.Add(time.Duration(i)), Source: netip.AddrFrom4(b),
				Protocol: []audit.Protocol{audit.TCP, audit.UDP, audit.SCTP}[seq%3], Port: uint16(seq)})
		}
	}
	day := now.Truncate(24 * time.Hour)
	for _, rule := range rules {
		for d := 399; d >= 0; d-- {
			add(rule, day.AddDate(0, 0, -d), 12)
		}
		for h := 25; h >= 0; h-- {
			add(rule, now.Truncate(time.Hour).Add(-time.Duration(h)*time.Hour), 70)
		}
		for m := 71; m >= 0; m-- {
			add(rule, now.Truncate(time.Minute).Add(-time.Duration(m)*time.Minute), 70)
		}
		for s := 7; s >= 0; s-- {
			add(rule, now.Truncate(10*time.Second).Add(-time.Duration(s)*10*time.Second), 40)
		}
	}
	slices.SortStableFunc(samples, func(x, y audit.Sample) int { return x.Time.Compare(y.Time) })
	for _, s := range samples {
		a.Record(s)
	}
	for t := day.AddDate(0, 0, -399); !t.After(now); t = t.Add(time.Hour) {
		rs := map[string]audit.Reading{}
		for i, rule := range rules {
			v := uint64(t.Unix()) * uint64(i+1)
			rs[rule] = audit.Reading{Packets: v, Bytes: 100 * v, Epoch: "boot/1"}
		}
		a.Observe(t, rs)
	}
}

// BenchmarkScrapeAttribution scrapes /metrics of a daemon whose
// attribution is empty, and of one holding ten rules with full rings:
// the collector reads the kernel's counters and never the attribution,
// so the two should take the same time, unless the attribution's heap
// slows the garbage collector.
func BenchmarkScrapeAttribution(b *testing.B) {
	for _, full := range []bool{false, true} {
		name := map[bool]string{false: "empty", true: "10 full rules"}[full]
		b.Run(name, func(b *testing.B) {
			h := newHarness(b)
			h.write(b, attribPolicy)
			c := newTestClock()
			d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Now: c.now, BootID: "boot"})
			if err != nil {
				b.Fatal(err)
			}
			if err := d.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			if full {
				fillAttribution(d.attrib.attr, fullRuleNames(10), c.now())
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			reg := NewRegistry()
			reg.MustRegister(NewCollector(d, nil, time.Now))
			handler := NewMetricsHandler(reg, nil)
			b.ResetTimer()
			for range b.N {
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				if rec.Code != 200 {
					b.Fatal(rec.Code)
				}
			}
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MB")
		})
	}
}

// BenchmarkAttributionSnapshot writes the snapshot of ten rules with full
// rings to the state directory, as the daemon does every 5 minutes.
func BenchmarkAttributionSnapshot(b *testing.B) {
	h := newHarness(b)
	c := newTestClock()
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Now: c.now, BootID: "boot"})
	if err != nil {
		b.Fatal(err)
	}
	fillAttribution(d.attrib.attr, fullRuleNames(10), c.now())
	b.ResetTimer()
	for range b.N {
		d.attrib.snapshot()
	}
	b.StopTimer()
	st, err := os.Stat(filepath.Join(h.state, attributionFile))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size()), "bytes")
}

func fullRuleNames(n int) []string {
	rules := make([]string, n)
	for i := range rules {
		rules[i] = fmt.Sprintf("rule-%02d", i)
	}
	return rules
}
