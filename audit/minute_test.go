package audit

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func minuteSample(rule, src string, port uint16, t time.Time) Sample {
	return Sample{Rule: rule, Time: t, Source: netip.MustParseAddr(src), Protocol: TCP, Port: port}
}

// TestMinuteSummaryCaps floods a minute with 200 one-off sources beside
// three heavy flows: the minute lists the heavy flows first and 50 flows
// in all, then sums the other 150 (and their sources and packets) in
// More, so its lines stay at 51 however many sources come.
func TestMinuteSummaryCaps(t *testing.T) {
	c := newClock(at("2026-11-23T08:00:00Z"))
	m := NewMinuteSummariser(c.now)
	t0 := at("2026-11-23T08:00:05Z")
	for range 30 {
		m.Record(minuteSample("deny-scan", "203.0.113.5", 23, t0))
	}
	for range 20 {
		m.Record(minuteSample("deny-scan", "203.0.113.5", 22, t0))
		m.Record(minuteSample("edgefw-default-input", "2001:db8::9", 9200, t0))
	}
	for i := range 200 {
		m.Record(minuteSample("edgefw-default-input", fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), 80, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if got := m.Flush(); len(got) != 0 {
		t.Fatalf("flushed %d minutes before the minute ended", len(got))
	}
	c.set(at("2026-11-23T08:01:00Z"))
	got := m.Flush()
	if len(got) != 1 {
		t.Fatalf("flushed %d minutes, want 1", len(got))
	}
	s := got[0]
	if !s.Start.Equal(at("2026-11-23T08:00:00Z")) || !s.End.Equal(at("2026-11-23T08:01:00Z")) {
		t.Errorf("minute %s to %s", s.Start, s.End)
	}
	if len(s.Flows) != DefaultMinuteFlows {
		t.Fatalf("%d flows listed, want the cap %d", len(s.Flows), DefaultMinuteFlows)
	}
	heavy := []MinuteFlow{
		{Rule: "deny-scan", Source: netip.MustParseAddr("203.0.113.5"), Protocol: TCP, Port: 23, Packets: 30},
		{Rule: "deny-scan", Source: netip.MustParseAddr("203.0.113.5"), Protocol: TCP, Port: 22, Packets: 20},
		{Rule: "edgefw-default-input", Source: netip.MustParseAddr("2001:db8::9"), Protocol: TCP, Port: 9200, Packets: 20},
		// Then the one-off sources, by address.
		{Rule: "edgefw-default-input", Source: netip.MustParseAddr("10.0.0.1"), Protocol: TCP, Port: 80, Packets: 1},
	}
	if diff := cmp.Diff(heavy, s.Flows[:4], cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("heaviest flows (-want +got):\n%s", diff)
	}
	want := MoreFlows{Flows: 153, Sources: 153, Rules: []string{"edgefw-default-input"}, Packets: 153}
	if diff := cmp.Diff(want, s.More); diff != "" {
		t.Errorf("more (-want +got):\n%s", diff)
	}
	if m.Flush() != nil {
		t.Error("a minute flushed twice")
	}
}

// TestMinuteSummaryMinutes checks how samples fall into minutes: a later
// minute's sample closes the open one, a late sample counts in the open
// minute, Flush waits for a minute's end, FlushAll takes the open minute
// up to now, and nothing is recorded without a rule or a source.
func TestMinuteSummaryMinutes(t *testing.T) {
	c := newClock(at("2026-11-23T08:00:30Z"))
	m := NewMinuteSummariser(c.now, WithMinuteFlows(2))
	m.Record(minuteSample("r", "192.0.2.1", 1, at("2026-11-23T08:00:10Z")))
	m.Record(minuteSample("r", "192.0.2.2", 1, at("2026-11-23T08:01:10Z")))
	m.Record(minuteSample("r", "192.0.2.3", 1, at("2026-11-23T08:00:59Z"))) // late
	m.Record(Sample{Rule: "", Time: at("2026-11-23T08:01:11Z"), Source: netip.MustParseAddr("192.0.2.9")})
	m.Record(Sample{Rule: "r", Time: at("2026-11-23T08:01:11Z")})
	c.set(at("2026-11-23T08:01:30Z"))
	got := m.Flush()
	if len(got) != 1 || len(got[0].Flows) != 1 || got[0].Flows[0].Source != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("first minute: %+v", got)
	}
	got = m.FlushAll()
	if len(got) != 1 {
		t.Fatalf("FlushAll returned %d minutes, want the open one", len(got))
	}
	s := got[0]
	if !s.Start.Equal(at("2026-11-23T08:01:00Z")) || !s.End.Equal(at("2026-11-23T08:01:30Z")) {
		t.Errorf("open minute flushed as %s to %s, want 08:01:00 to now", s.Start, s.End)
	}
	if len(s.Flows) != 2 || s.More.Packets != 0 {
		t.Errorf("open minute: %+v; want the two samples, the late one with them", s)
	}
	if m.FlushAll() != nil {
		t.Error("FlushAll with nothing recorded returned minutes")
	}
}

// TestMinuteSummaryTracksBoundedFlows checks that past the tracking bound
// a minute still counts every packet, as untracked, in More.
func TestMinuteSummaryTracksBoundedFlows(t *testing.T) {
	c := newClock(at("2026-11-23T08:00:00Z"))
	m := NewMinuteSummariser(c.now, WithMinuteFlows(1), WithMinuteKeys(3))
	for i := range 10 {
		m.Record(minuteSample("flood", fmt.Sprintf("198.51.100.%d", i+1), 80, at("2026-11-23T08:00:01Z")))
	}
	m.Record(minuteSample("flood", "198.51.100.1", 80, at("2026-11-23T08:00:02Z"))) // tracked: counted as itself
	s := m.FlushAll()[0]
	if len(s.Flows) != 1 || s.Flows[0].Packets != 2 {
		t.Errorf("listed %+v, want 198.51.100.1 with 2 packets", s.Flows)
	}
	want := MoreFlows{Flows: 2, Sources: 2, Rules: []string{"flood"}, Packets: 9, Untracked: 7}
	if diff := cmp.Diff(want, s.More); diff != "" {
		t.Errorf("more (-want +got):\n%s", diff)
	}
}

// TestMinuteSummaryKeepsAnHour checks that minutes nobody flushes are
// bounded: the last hour's stay.
func TestMinuteSummaryKeepsAnHour(t *testing.T) {
	start := at("2026-11-23T08:00:00Z")
	c := newClock(start)
	m := NewMinuteSummariser(c.now)
	for i := range 90 {
		m.Record(minuteSample("r", "192.0.2.1", 1, start.Add(time.Duration(i)*time.Minute)))
	}
	c.set(start.Add(2 * time.Hour))
	got := m.Flush()
	if len(got) != maxClosedMinutes || !got[len(got)-1].Start.Equal(start.Add(89*time.Minute)) {
		t.Errorf("kept %d minutes, the last from %s; want the last %d", len(got), got[len(got)-1].Start, maxClosedMinutes)
	}
}
