package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/internal/reporttest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.md with the renderer's output")

// TestMarkdownSmall pins the Markdown of a small report exactly. Run
// with -update to rewrite testdata/small.md, then review the diff.
func TestMarkdownSmall(t *testing.T) {
	var b bytes.Buffer
	if err := Markdown(&b, Build(smallInput())); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "small.md")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestMarkdownSmall -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("markdown differs from %s (-golden +rendered):\n%s", golden, diff)
	}
}

// TestHTMLSmall parses the HTML form as a browser would: it holds a
// chart for each rule that counted traffic and for each tunnel peer, the
// exposure's sentences, and nothing from outside the file.
func TestHTMLSmall(t *testing.T) {
	var b bytes.Buffer
	if err := HTML(&b, Build(smallInput())); err != nil {
		t.Fatal(err)
	}
	doc := reporttest.CheckHTML(t, b.Bytes())
	if doc.Charts["traffic"] != 3 || doc.Charts["tunnel"] != 1 {
		t.Errorf("charts %v; want 3 of traffic (edgefw-default-input, kube-api, old-rule) and 1 of a tunnel", doc.Charts)
	}
	if doc.Scripts != 0 || len(doc.External) != 0 {
		t.Errorf("%d scripts, external references %v; want a self-contained file", doc.Scripts, doc.External)
	}
	for _, want := range []string{"Anyone may connect to TCP 6443 (kube-api).", "TCP 22 from the set mgmt-nets (2 ranges) is accepted (ssh).",
		"Everything else is dropped and counted (edgefw-default-input)", "alice (uid 1000)", "SURGE"} {
		if !strings.Contains(doc.Text, want) {
			t.Errorf("the HTML report lacks %q", want)
		}
	}
}

// TestJSONSchema validates the model, as -o json prints it, against
// docs/report.schema.json: a report with every section filled, and one
// of a host with nothing (no ruleset, journal or traffic).
func TestJSONSchema(t *testing.T) {
	for name, in := range map[string]Input{"small": smallInput(), "empty": {Host: "bare", Now: fixtureNow}} {
		t.Run(name, func(t *testing.T) {
			data, err := json.MarshalIndent(Build(in), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			reporttest.ValidateJSON(t, data)
		})
	}
}

// TestSurges marks the days over SurgeFactor times the median, in
// packets or bytes, a median of zero included.
func TestSurges(t *testing.T) {
	day := func(packets, bytes uint64) Day { return Day{Packets: packets, Bytes: bytes} }
	for _, tc := range []struct {
		name   string
		days   []Day
		median float64
		surges []bool
	}{
		{"steady", []Day{day(10, 100), day(12, 120), day(11, 110)}, 11, []bool{false, false, false}},
		{"one surge", []Day{day(10, 100), day(12, 120), day(37, 370), day(11, 110)}, 11.5, []bool{false, false, true, false}},
		{"at three times is not over", []Day{day(10, 100), day(10, 100), day(30, 300)}, 10, []bool{false, false, false}},
		{"bytes alone", []Day{day(10, 100), day(10, 100), day(10, 5000)}, 10, []bool{false, false, true}},
		{"median zero: any traffic", []Day{day(0, 0), day(0, 0), day(1, 60), day(0, 0)}, 0, []bool{false, false, true, false}},
		{"all zero", []Day{day(0, 0), day(0, 0)}, 0, []bool{false, false}},
		{"one day", []Day{day(1000, 1)}, 1000, []bool{false}},
		{"no days", nil, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := ruleTraffic("r", tc.days, Sample{})
			var got []bool
			n := 0
			for _, d := range rt.Days {
				got = append(got, d.Surge)
				if d.Surge {
					n++
				}
			}
			if rt.MedianPackets != tc.median || !cmp.Equal(got, tc.surges) || rt.SurgeDays != n {
				t.Errorf("median %v, surges %v (%d); want %v, %v", rt.MedianPackets, got, rt.SurgeDays, tc.median, tc.surges)
			}
		})
	}
}

// TestAvailability walks peers' transitions over a period: outages that
// began before it or go on after it are clipped to it, the state before
// a peer's first entry is unknown, a peer no longer declared is unknown
// after its last entry.
func TestAvailability(t *testing.T) {
	from := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(10 * time.Hour)
	h := func(n float64) time.Time { return from.Add(time.Duration(n * float64(time.Hour))) }
	ev := func(at time.Time, up bool) Event {
		e := Event{Time: at, Kind: KindPeerDown, Interface: "wg0", Peer: "p"}
		if up {
			e.Kind = KindPeerUp
		}
		return e
	}
	for _, tc := range []struct {
		name              string
		events            []Event
		declared          bool
		start             string
		up, down, unknown float64 // hours
		outages           int
		longest           *Outage
	}{
		{"up all along", []Event{ev(h(-5), true)}, true, StateUp, 10, 0, 0, 0, nil},
		{"down across the start", []Event{ev(h(-2), false), ev(h(3), true), ev(h(5), false), ev(h(6), true)}, true, StateDown, 6, 4, 0, 2,
			&Outage{From: h(0), To: h(3), Seconds: 3 * 3600, BeganBefore: true}},
		{"down across the end", []Event{ev(h(-1), true), ev(h(8), false), ev(h(12), true)}, true, StateUp, 8, 2, 0, 1,
			&Outage{From: h(8), To: h(10), Seconds: 2 * 3600, Ongoing: true}},
		{"down the whole period", []Event{ev(h(-1), false)}, true, StateDown, 0, 10, 0, 1,
			&Outage{From: h(0), To: h(10), Seconds: 10 * 3600, BeganBefore: true, Ongoing: true}},
		{"unknown until the first entry", []Event{ev(h(4), true)}, true, StateUnknown, 6, 0, 4, 0, nil},
		{"repeated down entries are one outage", []Event{ev(h(1), true), ev(h(2), false), ev(h(3), false), ev(h(4), true)}, true, StateUnknown, 7, 2, 1, 1,
			&Outage{From: h(2), To: h(4), Seconds: 2 * 3600}},
		{"no longer declared", []Event{ev(h(-1), true), ev(h(2), false), ev(h(3), true)}, false, StateUp, 2, 1, 7, 1,
			&Outage{From: h(2), To: h(3), Seconds: 3600}},
		{"declared, never seen", nil, true, StateUnknown, 0, 0, 10, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var declared []PeerRef
			if tc.declared {
				declared = []PeerRef{{"wg0", "p"}}
			}
			got := availability(tc.events, declared, from, to)
			if len(got) != 1 {
				t.Fatalf("%d peers: %+v", len(got), got)
			}
			a := got[0]
			hours := func(s float64) float64 { return s / 3600 }
			if a.StateAtStart != tc.start || hours(a.UpSeconds) != tc.up || hours(a.DownSeconds) != tc.down || hours(a.UnknownSeconds) != tc.unknown ||
				a.Outages != tc.outages || a.ShareUp != tc.up/10 || a.Declared != tc.declared {
				t.Errorf("got start %s, up %vh, down %vh, unknown %vh, %d outages, share %v; want %s, %v, %v, %v, %d",
					a.StateAtStart, hours(a.UpSeconds), hours(a.DownSeconds), hours(a.UnknownSeconds), a.Outages, a.ShareUp,
					tc.start, tc.up, tc.down, tc.unknown, tc.outages)
			}
			if diff := cmp.Diff(tc.longest, a.LongestOutage); diff != "" {
				t.Errorf("longest outage (-want +got):\n%s", diff)
			}
			var total time.Duration
			for _, s := range a.Segments {
				total += s.To.Sub(s.From)
			}
			if total != to.Sub(from) || !a.Segments[0].From.Equal(from) || !a.Segments[len(a.Segments)-1].To.Equal(to) {
				t.Errorf("segments %+v do not cover the period", a.Segments)
			}
		})
	}
	// A peer no longer declared, with no entry in the period, is left out.
	if got := availability([]Event{ev(h(-3), true)}, nil, from, to); len(got) != 0 {
		t.Errorf("a removed peer with no entry in the period: %+v", got)
	}
}

// TestBuildSections checks which journal entries and rules go where: the
// period bounds the journal, rules go by what they do.
func TestBuildSections(t *testing.T) {
	in := smallInput()
	in.Journal = append(in.Journal,
		Event{Seq: 7, Time: fixtureTo.Add(time.Minute), Kind: KindApply, Trigger: "apply"},
		Event{Seq: 8, Time: fixtureTo.Add(-time.Hour), Kind: KindRollback, Trigger: "confirm-timeout", PolicyBefore: hashB, PolicyAfter: hashA},
		Event{Seq: 9, Time: fixtureTo.Add(-time.Minute), Kind: KindRollback, Trigger: "rollback"},
	)
	r := Build(in)
	seqs := func(es []Event) (out []uint64) {
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	if got := seqs(r.Changes); !cmp.Equal(got, []uint64{2, 3, 8, 9}) {
		t.Errorf("changes %v; want 2, 3, 8, 9 (7 is after the period)", got)
	}
	if got := seqs(r.Integrity); !cmp.Equal(got, []uint64{6, 8}) {
		t.Errorf("integrity %v; want the drift repair 6 and the timed-out rollback 8", got)
	}
	names := func(rs []RuleTraffic) (out []string) {
		for _, r := range rs {
			out = append(out, r.Rule)
		}
		return out
	}
	for section, want := range map[string][]string{
		"denied": {"edgefw-default-input"}, "wouldDeny": {"watch-telnet"},
		"allowed": {"kube-api", "edgefw-established-input", "ssh"}, "retired": {"old-rule"},
	} {
		got := map[string][]RuleTraffic{"denied": r.Denied, "wouldDeny": r.WouldDeny, "allowed": r.Allowed, "retired": r.Retired}[section]
		if !cmp.Equal(names(got), want) {
			t.Errorf("%s: %v; want %v", section, names(got), want)
		}
	}
	if id := r.Identity; id.FirstDay != "2026-05-01" || id.LastDay != "2026-05-03" || !id.To.Equal(fixtureTo) {
		t.Errorf("identity days %s to %s, to %v; a period ending at midnight ends the day before", id.FirstDay, id.LastDay, id.To)
	}
	in.To = time.Time{}
	if id := Build(in).Identity; !id.To.Equal(fixtureNow) || id.LastDay != "2026-05-04" {
		t.Errorf("no end: to %v, last day %s; want now", id.To, id.LastDay)
	}
}
