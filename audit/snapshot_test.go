package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var addrComparer = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })

// history fills a with three days of two rules' samples and counters,
// IPv4 and IPv6, up to the clock's time.
func history(a *Attributor, end time.Time) {
	r := rand.New(rand.NewPCG(3, 4))
	var blocked, defaults uint64
	for t := end.Add(-72 * time.Hour); t.Before(end); t = t.Add(10 * time.Second) {
		for range 1 + r.IntN(4) {
			src := netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(40))})
			if r.IntN(3) == 0 {
				src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(300))})
			}
			a.Record(Sample{Rule: "drop-blocklisted", Time: t, Source: src, Protocol: TCP, Port: uint16(20 + r.IntN(5))})
			blocked += 3
		}
		if r.IntN(5) == 0 {
			a.Record(Sample{Rule: "edgefw-default-input", Time: t, Source: netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(256))}), Protocol: UDP, Port: 53})
			defaults += 2
		}
		if t.Second() == 0 {
			a.Observe(t, map[string]Reading{
				"drop-blocklisted":     {Packets: blocked, Bytes: 60 * blocked},
				"edgefw-default-input": {Packets: defaults, Bytes: 80 * defaults},
				"ssh-from-mgmt":        {Packets: 7, Bytes: 700},
			})
		}
	}
}

// everything is every view of a.
type everything struct {
	Drops []DropsView
	Days  map[string][]Day
	Rules []string
}

func viewsOf(a *Attributor) everything {
	var e everything
	for _, since := range []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 24 * time.Hour, 72 * time.Hour, 0} {
		e.Drops = append(e.Drops, a.Drops(Query{Since: since, Top: MaxTop}))
	}
	e.Rules = a.Rules()
	e.Days = map[string][]Day{}
	for _, rule := range e.Rules {
		e.Days[rule] = a.Days(rule, time.Time{}, a.now())
	}
	return e
}

func TestSnapshotRoundTrip(t *testing.T) {
	clk := newClock(at("2026-03-10T10:37:23Z"))
	a := New(clk.now)
	history(a, clk.now())
	snap, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := New(clk.now)
	if err := b.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	want := viewsOf(a)
	if diff := cmp.Diff(want, viewsOf(b), addrComparer); diff != "" {
		t.Errorf("views after a restore (-want +got):\n%s", diff)
	}
	if len(want.Days["drop-blocklisted"]) != 4 || want.Drops[2].Rules[0].Sampled == 0 {
		t.Fatalf("history too thin: %d days", len(want.Days["drop-blocklisted"]))
	}
	again, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, again) {
		t.Errorf("a restored state encodes differently: %d bytes, then %d", len(snap), len(again))
	}
}

// TestRestoreAges: restoring at a later time closes the buckets that
// ended since and drops those older than their rings.
func TestRestoreAges(t *testing.T) {
	saved := at("2026-03-10T10:37:23Z")
	clk := newClock(saved)
	a := New(clk.now)
	for _, s := range []struct {
		at   string
		src  string
		port uint16
	}{{"2026-03-10T10:37:05Z", "203.0.113.7", 22}, {"2026-03-10T10:37:15Z", "203.0.113.7", 22}, {"2026-03-10T10:37:20Z", "2001:db8::9", 23}} {
		a.Record(Sample{Rule: "drop", Time: at(s.at), Source: addr(s.src), Protocol: TCP, Port: s.port})
	}
	a.Observe(at("2026-03-10T10:36:20Z"), map[string]Reading{"drop": {Packets: 100, Bytes: 6000}})
	a.Observe(at("2026-03-10T10:37:20Z"), map[string]Reading{"drop": {Packets: 130, Bytes: 7800}})
	snap, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ sampled, packets uint64 }
	for _, tc := range []struct {
		after                                 time.Duration
		minute, hour, day24, threeDays, total seen
		days                                  int
		rules                                 int
	}{
		{after: 30 * time.Second, minute: seen{3, 15}, hour: seen{3, 30}, day24: seen{3, 30}, threeDays: seen{3, 30}, total: seen{3, 30}, days: 1, rules: 1},
		{after: 2 * time.Minute, hour: seen{3, 30}, day24: seen{3, 30}, threeDays: seen{3, 30}, total: seen{3, 30}, days: 1, rules: 1},
		{after: 2 * time.Hour, day24: seen{3, 30}, threeDays: seen{3, 30}, total: seen{3, 30}, days: 1, rules: 1},
		{after: 48 * time.Hour, threeDays: seen{3, 30}, total: seen{3, 30}, days: 1, rules: 1},
		{after: 398 * 24 * time.Hour, total: seen{3, 30}, days: 1, rules: 1},
		{after: 401 * 24 * time.Hour},
	} {
		t.Run(tc.after.String(), func(t *testing.T) {
			clk.set(saved.Add(tc.after))
			b := New(clk.now)
			if err := b.UnmarshalBinary(snap); err != nil {
				t.Fatal(err)
			}
			for _, w := range []struct {
				since time.Duration
				want  seen
			}{{time.Minute, tc.minute}, {time.Hour, tc.hour}, {24 * time.Hour, tc.day24}, {72 * time.Hour, tc.threeDays}, {0, tc.total}} {
				var got seen
				if v := b.Drops(Query{Since: w.since, Rules: []string{"drop"}}); len(v.Rules) == 1 {
					got = seen{v.Rules[0].Sampled, v.Rules[0].Packets}
				}
				if got != w.want {
					t.Errorf("since %s: sampled, packets = %v, want %v", w.since, got, w.want)
				}
			}
			days := b.Days("drop", time.Time{}, clk.now())
			if len(days) != tc.days || len(b.Rules()) != tc.rules {
				t.Fatalf("%d days, rules %v; want %d, %d", len(days), b.Rules(), tc.days, tc.rules)
			}
			if tc.days == 1 && (days[0].Packets != 30 || days[0].Sampled != 3 || len(days[0].TopSources) != 2) {
				t.Errorf("day = %+v", days[0])
			}
		})
	}
}

func withCRC(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(bytes.Clone(body), crc32.ChecksumIEEE(body))
}

func TestSnapshotCorrupt(t *testing.T) {
	clk := newClock(at("2026-03-10T10:37:23Z"))
	a := New(clk.now)
	a.Record(Sample{Rule: "drop", Time: clk.now(), Source: addr("203.0.113.7"), Protocol: TCP, Port: 22})
	a.Observe(at("2026-03-10T10:36:00Z"), map[string]Reading{"drop": {Packets: 1, Bytes: 60}})
	a.Observe(at("2026-03-10T10:37:00Z"), map[string]Reading{"drop": {Packets: 9, Bytes: 600}})
	snap, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	body := snap[:len(snap)-4]
	versioned := bytes.Clone(body)
	versioned[4] = snapshotVersion + 1
	cases := map[string][]byte{
		"empty":                          nil,
		"not a snapshot":                 []byte("{\"rules\":[]}"),
		"trailing bytes, checksum good":  withCRC(append(bytes.Clone(body), 0)),
		"another version":                withCRC(versioned),
		"cut in the body, checksum good": withCRC(body[:len(body)-3]),
	}
	for n := range len(snap) {
		cases[fmt.Sprintf("cut at %d", n)] = snap[:n]
	}
	for i := range snap {
		flipped := bytes.Clone(snap)
		flipped[i] ^= 0x10
		cases[fmt.Sprintf("flip at %d", i)] = flipped
	}
	for name, data := range cases {
		b := New(clk.now)
		b.Record(Sample{Rule: "kept", Time: clk.now(), Source: addr("192.0.2.1"), Protocol: UDP, Port: 53})
		before := viewsOf(b)
		err := b.UnmarshalBinary(data)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
		if diff := cmp.Diff(before, viewsOf(b), addrComparer); diff != "" {
			t.Errorf("%s: a failed restore changed the state:\n%s", name, diff)
		}
	}
}

// TestRestoreKeepsMaxRules: a snapshot of more rules than the limit
// keeps the most recently active.
func TestRestoreKeepsMaxRules(t *testing.T) {
	clk := newClock(at("2026-03-10T10:37:23Z"))
	a := New(clk.now)
	for i, rule := range []string{"c", "a", "d", "b"} {
		a.Observe(clk.now().Add(time.Duration(i-4)*time.Minute), map[string]Reading{rule: {Packets: 1}})
	}
	snap, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := New(clk.now, WithMaxRules(2))
	if err := b.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	if got := b.Rules(); !cmp.Equal(got, []string{"b", "d"}) {
		t.Errorf("rules = %v, want [b d]", got)
	}
	// A new rule replaces the one active longest ago.
	b.Record(Sample{Rule: "e", Time: clk.now(), Source: addr("192.0.2.1"), Protocol: TCP, Port: 1})
	if got := b.Rules(); !cmp.Equal(got, []string{"b", "e"}) {
		t.Errorf("rules = %v, want [b e]", got)
	}
}

func FuzzUnmarshalBinary(f *testing.F) {
	clk := newClock(at("2026-03-10T10:37:23Z"))
	a := New(clk.now)
	a.Record(Sample{Rule: "drop", Time: clk.now(), Source: addr("2001:db8::1"), Protocol: TCP, Port: 22})
	a.Observe(at("2026-03-10T10:36:00Z"), map[string]Reading{"drop": {Packets: 1, Bytes: 60, Epoch: "e"}})
	a.Observe(at("2026-03-10T10:37:00Z"), map[string]Reading{"drop": {Packets: 9, Bytes: 600, Epoch: "e"}})
	snap, err := a.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(snap[:len(snap)-4])
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, body []byte) {
		b := New(clk.now)
		if err := b.UnmarshalBinary(withCRC(body)); err != nil {
			return
		}
		// Whatever was accepted works and encodes again.
		b.Record(Sample{Rule: "drop", Time: clk.now(), Source: addr("192.0.2.1"), Protocol: TCP, Port: 22})
		b.Observe(clk.now(), map[string]Reading{"drop": {Packets: 10}})
		viewsOf(b)
		again, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := New(clk.now).UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded snapshot refused: %v", err)
		}
	})
}
