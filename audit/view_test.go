package audit

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func f(v float64) *float64 { return &v }

// dropsFixture is two denying rules, sampled and counted, and a rule
// only counted, at 10:37:23.
func dropsFixture() (*Attributor, *clock) {
	clk := newClock(at("2026-03-10T10:37:23Z"))
	a := New(clk.now)
	rec := func(rule, when, src string, proto Protocol, port uint16, n int) {
		for range n {
			a.Record(Sample{Rule: rule, Time: at(when), Source: addr(src), Protocol: proto, Port: port})
		}
	}
	rec("drop-blocklisted", "2026-03-10T10:05:00Z", "192.0.2.1", TCP, 22, 4)
	rec("drop-blocklisted", "2026-03-10T10:37:00Z", "203.0.113.7", TCP, 22, 3)
	rec("drop-blocklisted", "2026-03-10T10:37:10Z", "203.0.113.7", TCP, 23, 1)
	rec("drop-blocklisted", "2026-03-10T10:37:20Z", "2001:db8::5", UDP, 53, 2)
	rec("edgefw-default-input", "2026-03-10T10:37:21Z", "198.51.100.1", ICMP, 0, 1)
	a.Record(Sample{Rule: "", Time: at("2026-03-10T10:37:21Z"), Source: addr("198.51.100.1")}) // ignored
	a.Record(Sample{Rule: "x", Time: at("2026-03-10T10:37:21Z")})                              // ignored
	for _, r := range []struct {
		at       string
		blocked  uint64
		defaults uint64
	}{{"2026-03-10T10:00:20Z", 1000, 50}, {"2026-03-10T10:36:20Z", 1040, 50}, {"2026-03-10T10:37:20Z", 1100, 60}} {
		a.Observe(at(r.at), map[string]Reading{
			"drop-blocklisted":     {Packets: r.blocked, Bytes: 60 * r.blocked},
			"edgefw-default-input": {Packets: r.defaults, Bytes: 100 * r.defaults},
			"ssh-from-mgmt":        {Packets: 7, Bytes: 700}, // counted, nothing since
		})
	}
	return a, clk
}

func TestDrops(t *testing.T) {
	a, clk := dropsFixture()
	lastMinute := RuleView{
		Rule: "drop-blocklisted", Packets: 60, Bytes: 3600, CountedTo: at("2026-03-10T10:37:20Z"), Sampled: 6, Share: f(0.1),
		TopSources: []SourceCount{{Source: addr("203.0.113.7"), Count: 4}, {Source: addr("2001:db8::5"), Count: 2}},
		TopPorts:   []PortCount{{Protocol: TCP, Port: 22, Count: 3}, {Protocol: UDP, Port: 53, Count: 2}, {Protocol: TCP, Port: 23, Count: 1}},
		TopFlows: []FlowCount{{Source: addr("203.0.113.7"), Protocol: TCP, Port: 22, Count: 3},
			{Source: addr("2001:db8::5"), Protocol: UDP, Port: 53, Count: 2}, {Source: addr("203.0.113.7"), Protocol: TCP, Port: 23, Count: 1}},
	}
	defaults := RuleView{
		Rule: "edgefw-default-input", Packets: 10, Bytes: 1000, CountedTo: at("2026-03-10T10:37:20Z"), Sampled: 1, Share: f(0.1),
		TopSources: []SourceCount{{Source: addr("198.51.100.1"), Count: 1}},
		TopPorts:   []PortCount{{Protocol: ICMP, Count: 1}},
		TopFlows:   []FlowCount{{Source: addr("198.51.100.1"), Protocol: ICMP, Count: 1}},
	}
	for _, tc := range []struct {
		name string
		q    Query
		want DropsView
	}{
		{
			name: "the last minute, every rule that counted or sampled",
			q:    Query{Since: time.Minute},
			want: DropsView{From: at("2026-03-10T10:36:20Z"), To: clk.now(), Rules: []RuleView{lastMinute, defaults}},
		},
		{
			name: "one rule, top 1",
			q:    Query{Since: time.Minute, Rules: []string{"drop-blocklisted", "unknown"}, Top: 1},
			want: DropsView{From: at("2026-03-10T10:36:20Z"), To: clk.now(), Rules: []RuleView{{
				Rule: "drop-blocklisted", Packets: 60, Bytes: 3600, CountedTo: at("2026-03-10T10:37:20Z"), Sampled: 6, Share: f(0.1),
				TopSources: lastMinute.TopSources[:1], TopPorts: lastMinute.TopPorts[:1], TopFlows: lastMinute.TopFlows[:1],
			}}},
		},
		{
			name: "the last hour: the earlier sample, a 10/100 share",
			q:    Query{Since: time.Hour, Rules: []string{"drop-blocklisted"}},
			want: DropsView{From: at("2026-03-10T09:37:00Z"), To: clk.now(), Rules: []RuleView{{
				Rule: "drop-blocklisted", Packets: 100, Bytes: 6000, CountedTo: at("2026-03-10T10:37:20Z"), Sampled: 10, Share: f(0.1),
				TopSources: []SourceCount{{Source: addr("192.0.2.1"), Count: 4}, {Source: addr("203.0.113.7"), Count: 4}, {Source: addr("2001:db8::5"), Count: 2}},
				TopPorts:   []PortCount{{Protocol: TCP, Port: 22, Count: 7}, {Protocol: UDP, Port: 53, Count: 2}, {Protocol: TCP, Port: 23, Count: 1}},
				TopFlows: []FlowCount{{Source: addr("192.0.2.1"), Protocol: TCP, Port: 22, Count: 4}, {Source: addr("203.0.113.7"), Protocol: TCP, Port: 22, Count: 3},
					{Source: addr("2001:db8::5"), Protocol: UDP, Port: 53, Count: 2}, {Source: addr("203.0.113.7"), Protocol: TCP, Port: 23, Count: 1}},
			}}},
		},
		{
			name: "a rule that only counted, asked by name: no share of nothing",
			q:    Query{Since: time.Hour, Rules: []string{"ssh-from-mgmt"}},
			want: DropsView{From: at("2026-03-10T09:37:00Z"), To: clk.now(), Rules: []RuleView{{
				Rule: "ssh-from-mgmt", CountedTo: at("2026-03-10T10:37:20Z"), TopSources: []SourceCount{}, TopPorts: []PortCount{}, TopFlows: []FlowCount{},
			}}},
		},
		{
			name: "a period in the past with nothing",
			q:    Query{From: at("2026-03-09T00:00:00Z"), To: at("2026-03-10T00:00:00Z")},
			want: DropsView{From: at("2026-03-09T00:00:00Z"), To: at("2026-03-10T00:00:00Z"), Rules: []RuleView{}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, a.Drops(tc.q), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("Drops (-want +got):\n%s", diff)
			}
		})
	}
}

// TestViewJSON pins the JSON the CLI and the report read.
func TestViewJSON(t *testing.T) {
	v := DropsView{From: at("2026-03-10T10:36:20Z"), To: at("2026-03-10T10:37:23Z"), Rules: []RuleView{{
		Rule: "drop-blocklisted", Packets: 60, Bytes: 3600, CountedTo: at("2026-03-10T10:37:20Z"), Sampled: 6, Share: f(0.1),
		TopSources: []SourceCount{{Source: addr("2001:db8::5"), Count: 4, ErrorBound: 1}},
		TopPorts:   []PortCount{{Protocol: TCP, Port: 22, Count: 3}},
		TopFlows:   []FlowCount{{Source: addr("203.0.113.7"), Protocol: Protocol(47), Count: 1}},
	}, {Rule: "ssh", TopSources: []SourceCount{}, TopPorts: []PortCount{}, TopFlows: []FlowCount{}}}}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"from":"2026-03-10T10:36:20Z","to":"2026-03-10T10:37:23Z","rules":[` +
		`{"rule":"drop-blocklisted","packets":60,"bytes":3600,"countedTo":"2026-03-10T10:37:20Z","sampled":6,"share":0.1,` +
		`"topSources":[{"source":"2001:db8::5","count":4,"errorBound":1}],` +
		`"topPorts":[{"protocol":"tcp","port":22,"count":3,"errorBound":0}],` +
		`"topFlows":[{"source":"203.0.113.7","protocol":"47","port":0,"count":1,"errorBound":0}]},` +
		`{"rule":"ssh","packets":0,"bytes":0,"sampled":0,"share":null,"topSources":[],"topPorts":[],"topFlows":[]}]}`
	if string(b) != want {
		t.Errorf("JSON:\n got %s\nwant %s", b, want)
	}
	var back DropsView
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v, back, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// sampled is a sample with its time, to count exactly.
type sampled struct {
	at   time.Time
	flow flowKey
}

// exact counts the samples in [from, to] by dimension.
func exact(samples []sampled, from, to time.Time) (n uint64, src map[netip.Addr]uint64, ports map[portKey]uint64, flows map[flowKey]uint64) {
	src, ports, flows = map[netip.Addr]uint64{}, map[portKey]uint64{}, map[flowKey]uint64{}
	for _, s := range samples {
		if s.at.Before(from) || s.at.After(to) {
			continue
		}
		n++
		src[s.flow.src.addr()]++
		ports[portKey{s.flow.proto, s.flow.port}]++
		flows[s.flow]++
	}
	return n, src, ports, flows
}

// checkView checks a rule's view against the exact counts of the samples
// in the period it covers: the sample's size, and count−err ≤ true ≤
// count for every item listed.
func checkView(t *testing.T, name string, v RuleView, samples []sampled, from, to time.Time) {
	t.Helper()
	n, src, ports, flows := exact(samples, from, to)
	if v.Sampled != n {
		t.Errorf("%s: sampled %d, want %d", name, v.Sampled, n)
	}
	bounds := func(what string, count, errBound, truth uint64) {
		if count-errBound > truth || truth > count {
			t.Errorf("%s: %s count %d error %d, true %d", name, what, count, errBound, truth)
		}
	}
	for _, s := range v.TopSources {
		bounds("source "+s.Source.String(), s.Count, s.ErrorBound, src[s.Source])
	}
	for _, p := range v.TopPorts {
		bounds("port "+p.Protocol.String(), p.Count, p.ErrorBound, ports[portKey{p.Protocol, p.Port}])
	}
	for _, fl := range v.TopFlows {
		bounds("flow "+fl.Source.String(), fl.Count, fl.ErrorBound, flows[flowKey{keyOf(fl.Source), fl.Protocol, fl.Port}])
	}
}

// TestScannerAmongOneOffs: a scanner knocks on tcp/22 once a minute for
// six hours among one-off random sources (100 a minute, and a burst of
// 1,000 in one minute every hour). It is the top source and the top
// (source, port) of every window that holds ten minutes of it and of the
// day; every count listed bounds the exact one.
func TestScannerAmongOneOffs(t *testing.T) {
	start := at("2026-03-10T04:00:00Z")
	clk := newClock(start)
	a := New(clk.now)
	scanner := addr("192.0.2.7")
	r := rand.New(rand.NewPCG(1, 2))
	var samples []sampled
	rec := func(when time.Time, src netip.Addr, port uint16) {
		a.Record(Sample{Rule: "default", Time: when, Source: src, Protocol: TCP, Port: port})
		samples = append(samples, sampled{when, flowKey{keyOf(src), TCP, port}})
	}
	for minute := range 360 {
		base := start.Add(time.Duration(minute) * time.Minute)
		n := 100
		if minute%60 == 30 {
			n += 1000
		}
		for i := range n {
			src := netip.AddrFrom4([4]byte{10, byte(r.UintN(256)), byte(r.UintN(256)), byte(r.UintN(256))})
			rec(base.Add(time.Duration(i)*time.Minute/time.Duration(n+1)), src, uint16(1+r.UintN(1024)))
		}
		rec(base.Add(59*time.Second), scanner, 22)
	}
	for _, after := range []time.Duration{0, 37 * time.Second, 7*time.Minute + 3*time.Second} {
		clk.set(start.Add(6*time.Hour + after))
		for _, since := range []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 3 * time.Hour, 24 * time.Hour} {
			v := a.Drops(Query{Since: since})
			name := fmt.Sprintf("%s after the stream, since %s", after, since)
			if n, _, _, _ := exact(samples, v.From, v.To); len(v.Rules) != min(int(n), 1) {
				t.Fatalf("%s: %d rules, %d samples", name, len(v.Rules), n)
			} else if n == 0 {
				continue
			}
			rv := v.Rules[0]
			checkView(t, name, rv, samples, v.From, v.To)
			t.Logf("%s (%s to %s): sampled %d, top sources %v", name, v.From.Format(time.TimeOnly), v.To.Format(time.TimeOnly), rv.Sampled, rv.TopSources[:min(2, len(rv.TopSources))])
			if _, src, _, _ := exact(samples, v.From, v.To); src[scanner] < 10 {
				continue // not a heavy hitter of so short a window
			}
			if rv.TopSources[0].Source != scanner || rv.TopFlows[0].Source != scanner || rv.TopFlows[0].Port != 22 {
				t.Errorf("%s: top source %v, top flow %+v, want the scanner", name, rv.TopSources[0], rv.TopFlows[0])
			}
		}
	}
	days := a.Days("default", start, clk.now())
	if len(days) != 1 || days[0].Date != "2026-03-10" || days[0].TopSources[0].Source != scanner || len(days[0].TopSources) != 10 {
		t.Fatalf("days = %+v", days)
	}
	checkView(t, "day", RuleView{Sampled: days[0].Sampled, TopSources: days[0].TopSources, TopPorts: days[0].TopPorts, TopFlows: days[0].TopFlows},
		samples, start, clk.now())
}
