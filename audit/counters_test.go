package audit

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// reading is a counter reading of one rule at a time.
type reading struct {
	at      string
	packets uint64
	bytes   uint64
	epoch   string
}

// dayTotal is a day's exact totals as the tests write them.
type dayTotal struct {
	date           string
	packets, bytes uint64
}

func dayTotals(days []Day) []dayTotal {
	var out []dayTotal
	for _, d := range days {
		out = append(out, dayTotal{d.Date, d.Packets, d.Bytes})
	}
	return out
}

func observe(a *Attributor, rule string, rs ...reading) {
	for _, r := range rs {
		a.Observe(at(r.at), map[string]Reading{rule: {Packets: r.packets, Bytes: r.bytes, Epoch: r.epoch}})
	}
}

func TestDailyTotalsFromCounters(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readings []reading
		want     []dayTotal
	}{
		{
			name:     "the first reading is a baseline",
			readings: []reading{{at: "2026-03-10T10:00:00Z", packets: 5000, bytes: 400000}},
		},
		{
			name: "increases add up",
			readings: []reading{{"2026-03-10T10:00:00Z", 5000, 400000, ""}, {"2026-03-10T10:01:00Z", 5100, 410000, ""},
				{"2026-03-10T10:02:00Z", 5100, 410000, ""}, {"2026-03-10T10:03:00Z", 5350, 432000, ""}},
			want: []dayTotal{{"2026-03-10", 350, 32000}},
		},
		{
			name: "a lower reading is a reset: it counts from zero, as Prometheus's increase() does",
			readings: []reading{{"2026-03-10T10:00:00Z", 1000, 90000, ""}, {"2026-03-10T10:01:00Z", 1100, 99000, ""},
				{"2026-03-10T10:02:00Z", 50, 4000, ""}, {"2026-03-10T10:03:00Z", 80, 7000, ""}},
			want: []dayTotal{{"2026-03-10", 100 + 50 + 30, 9000 + 4000 + 3000}},
		},
		{
			name:     "bytes lower and packets not: a reset too",
			readings: []reading{{"2026-03-10T10:00:00Z", 1000, 90000, ""}, {"2026-03-10T10:01:00Z", 1200, 80000, ""}},
			want:     []dayTotal{{"2026-03-10", 1200, 80000}},
		},
		{
			name: "a new epoch is a reset even when the counter has passed its old value",
			readings: []reading{{"2026-03-10T10:00:00Z", 1000, 90000, "boot-a/7"}, {"2026-03-10T10:01:00Z", 1500, 120000, "boot-b/3"},
				{"2026-03-10T10:02:00Z", 1600, 130000, "boot-b/3"}},
			want: []dayTotal{{"2026-03-10", 1600, 130000}},
		},
		{
			name:     "an epoch appearing where there was none is not a reset",
			readings: []reading{{"2026-03-10T10:00:00Z", 1000, 90000, ""}, {"2026-03-10T10:01:00Z", 1200, 100000, "boot-a/7"}},
			want:     []dayTotal{{"2026-03-10", 200, 10000}},
		},
		{
			name: "an interval across midnight is split in proportion",
			readings: []reading{{"2026-03-09T23:59:30Z", 0, 0, ""}, {"2026-03-10T00:00:30Z", 120, 12000, ""},
				{"2026-03-10T00:01:30Z", 125, 12500, ""}},
			want: []dayTotal{{"2026-03-09", 60, 6000}, {"2026-03-10", 65, 6500}},
		},
		{
			name:     "a gap of three days is spread over them, to the packet",
			readings: []reading{{"2026-03-06T12:00:00Z", 1000, 0, ""}, {"2026-03-09T12:00:00Z", 1073, 7300, ""}},
			want: []dayTotal{{"2026-03-06", 12, 1216}, {"2026-03-07", 24, 2434}, {"2026-03-08", 24, 2433},
				{"2026-03-09", 13, 1217}},
		},
		{
			name: "a reading earlier than the last (the clock went back) counts at its time",
			readings: []reading{{"2026-03-10T00:00:30Z", 100, 0, ""}, {"2026-03-09T23:59:00Z", 110, 0, ""},
				{"2026-03-10T00:01:00Z", 115, 0, ""}},
			want: []dayTotal{{"2026-03-09", 10 + 2, 0}, {"2026-03-10", 3, 0}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(at("2026-03-10T12:00:00Z"))
			a := New(clk.now)
			observe(a, "ssh", tc.readings...)
			got := dayTotals(a.Days("ssh", at("2026-03-01T00:00:00Z"), at("2026-03-10T00:00:00Z")))
			if !slices.Equal(got, tc.want) {
				t.Errorf("days = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRestartCountsTheGap: the kernel counts on while the daemon is down;
// the snapshot's last reading is the baseline of the first reading after
// the restore, so the gap is counted once. A reboot resets the counter:
// the first reading is lower and counts from zero.
func TestRestartCountsTheGap(t *testing.T) {
	before := []reading{{"2026-03-10T10:00:00Z", 1000, 100000, "boot-a/7"}, {"2026-03-10T10:01:00Z", 1300, 130000, "boot-a/7"}}
	for _, tc := range []struct {
		name  string
		after []reading
		want  []dayTotal
	}{
		{
			name:  "daemon restart: the counter went on",
			after: []reading{{"2026-03-10T10:10:00Z", 2000, 200000, ""}, {"2026-03-10T10:11:00Z", 2100, 210000, ""}},
			want:  []dayTotal{{"2026-03-10", 1100, 110000}},
		},
		{
			name:  "host reboot: the counter started again",
			after: []reading{{"2026-03-10T10:10:00Z", 40, 4000, ""}, {"2026-03-10T10:11:00Z", 90, 9000, ""}},
			want:  []dayTotal{{"2026-03-10", 300 + 90, 30000 + 9000}},
		},
		{
			name:  "host reboot, the counter already past its old value: told by its epoch",
			after: []reading{{"2026-03-10T10:10:00Z", 1500, 150000, "boot-b/3"}, {"2026-03-10T10:11:00Z", 1600, 160000, "boot-b/3"}},
			want:  []dayTotal{{"2026-03-10", 300 + 1600, 30000 + 160000}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(at("2026-03-10T10:01:30Z"))
			a := New(clk.now)
			observe(a, "ssh", before...)
			snap, err := a.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			clk.set(at("2026-03-10T10:09:50Z"))
			b := New(clk.now)
			if err := b.UnmarshalBinary(snap); err != nil {
				t.Fatal(err)
			}
			observe(b, "ssh", tc.after...)
			clk.set(at("2026-03-10T12:00:00Z"))
			if got := dayTotals(b.Days("ssh", at("2026-03-10T00:00:00Z"), clk.now())); !slices.Equal(got, tc.want) {
				t.Errorf("days = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCountedPerWindow: each level sums the increases of the readings
// in its buckets, so a window's exact count is the same at every
// resolution that covers it.
func TestCountedPerWindow(t *testing.T) {
	clk := newClock(at("2026-03-10T10:00:00Z"))
	a := New(clk.now)
	// 100 packets a minute for two hours, read every minute on the minute.
	for m := 0; m <= 120; m++ {
		a.Observe(at("2026-03-10T08:00:00Z").Add(time.Duration(m)*time.Minute), map[string]Reading{"ssh": {Packets: uint64(100 * m), Bytes: uint64(6000 * m)}})
	}
	for _, tc := range []struct {
		since   time.Duration
		packets uint64
	}{
		{time.Minute, 100},
		{10 * time.Minute, 1000},
		{time.Hour, 6000},
		{90 * time.Minute, 12000}, // rounded out to the hour: the minutes kept go back an hour
		{24 * time.Hour, 12000},
	} {
		v := a.Drops(Query{Since: tc.since})
		if len(v.Rules) != 1 || v.Rules[0].Packets != tc.packets || v.Rules[0].Bytes != 60*tc.packets {
			t.Errorf("since %s: %+v, want %d packets", tc.since, v.Rules, tc.packets)
		}
	}
}
