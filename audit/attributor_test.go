package audit

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestProtocolText(t *testing.T) {
	for _, tc := range []struct {
		text string
		p    Protocol
		ok   bool
	}{
		{"tcp", TCP, true}, {"udp", UDP, true}, {"sctp", SCTP, true}, {"icmp", ICMP, true}, {"icmpv6", ICMPv6, true},
		{"47", 47, true}, {"0", 0, true}, {"255", 255, true},
		{"256", 0, false}, {"TCP", 0, false}, {"", 0, false}, {"-1", 0, false},
	} {
		var p Protocol
		err := p.UnmarshalText([]byte(tc.text))
		if (err == nil) != tc.ok || p != tc.p {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d, ok %v", tc.text, p, err, tc.p, tc.ok)
		}
		if tc.ok {
			if b, _ := p.MarshalText(); string(b) != tc.text {
				t.Errorf("MarshalText(%d) = %q, want %q", p, b, tc.text)
			}
		}
	}
}

// TestLateAndEarlySamples: a sample older than the open buckets counts
// in them; one later closes them.
func TestLateAndEarlySamples(t *testing.T) {
	clk := newClock(at("2026-03-10T10:37:23Z"))
	a := New(clk.now)
	for _, s := range []struct {
		at  string
		src string
	}{
		{"2026-03-10T10:37:21Z", "192.0.2.1"},
		{"2026-03-10T10:37:05Z", "192.0.2.2"}, // late: counts in the open 10 s bucket
		{"2026-03-09T23:00:00Z", "192.0.2.3"}, // a day late: in the open day
	} {
		a.Record(Sample{Rule: "drop", Time: at(s.at), Source: addr(s.src), Protocol: TCP, Port: 22})
	}
	for _, tc := range []struct {
		since time.Duration
		want  uint64
	}{{5 * time.Second, 3}, {time.Minute, 3}, {24 * time.Hour, 3}} {
		v := a.Drops(Query{Since: tc.since})
		if len(v.Rules) != 1 || v.Rules[0].Sampled != tc.want {
			t.Errorf("since %s: %+v, want %d sampled", tc.since, v.Rules, tc.want)
		}
	}
	if days := a.Days("drop", at("2026-03-09T00:00:00Z"), clk.now()); len(days) != 1 || days[0].Date != "2026-03-10" {
		t.Errorf("days = %+v, want the one open day", days)
	}
}

// TestConcurrentUse feeds samples and readings while views and snapshots
// are taken (run with -race).
func TestConcurrentUse(t *testing.T) {
	start := at("2026-03-10T10:00:00Z")
	clk := newClock(start)
	a := New(clk.now)
	var wg sync.WaitGroup
	const n = 2000
	wg.Go(func() {
		for i := range n {
			a.Record(Sample{Rule: "drop", Time: start.Add(time.Duration(i) * 50 * time.Millisecond),
				Source: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Protocol: UDP, Port: 53})
		}
	})
	wg.Go(func() {
		for i := range n / 100 {
			a.Observe(start.Add(time.Duration(i)*5*time.Second), map[string]Reading{"drop": {Packets: uint64(100 * i)}})
		}
	})
	wg.Go(func() {
		for i := range 20 {
			clk.set(start.Add(time.Duration(i) * 5 * time.Second))
			a.Drops(Query{Since: time.Hour})
			a.Days("drop", start, clk.now())
			if _, err := a.MarshalBinary(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	clk.set(start.Add(n * 50 * time.Millisecond))
	if v := a.Drops(Query{Since: time.Hour}); len(v.Rules) != 1 || v.Rules[0].Sampled != n || v.Rules[0].Packets != 100*(n/100-1) {
		t.Errorf("after: %+v", v.Rules)
	}
}
