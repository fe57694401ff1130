package audit

import (
	"fmt"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// String writes a piece as the tests do: its level's width and its start.
func (pc piece) String() string {
	return fmt.Sprintf("%s@%s", levels[pc.level].width, pc.start.Format(time.RFC3339))
}

// run lists the buckets of width w from from up to to, oldest first.
func run(w time.Duration, from, to string) []string {
	var out []string
	for t := at(from); t.Before(at(to)); t = t.Add(w) {
		out = append(out, fmt.Sprintf("%s@%s", w, t.Format(time.RFC3339)))
	}
	return out
}

func join(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestCover(t *testing.T) {
	now := at("2026-03-10T10:37:23Z")
	const dayBucket, hourBucket, tenMinuteBucket, minuteBucket, tenSecondBucket = 24 * time.Hour, time.Hour, 10 * time.Minute, time.Minute, 10 * time.Second
	for _, tc := range []struct {
		name       string
		now        time.Time
		from, to   time.Time
		want       []string
		start, end string
	}{
		{
			name: "1 minute: 10 s buckets, then the open minute; rounded out to 10 s",
			now:  now, from: now.Add(-time.Minute),
			want:  join(run(tenSecondBucket, "2026-03-10T10:36:20Z", "2026-03-10T10:37:00Z"), run(minuteBucket, "2026-03-10T10:37:00Z", "2026-03-10T10:38:00Z")),
			start: "2026-03-10T10:36:20Z", end: "2026-03-10T10:37:23Z",
		},
		{
			name: "1 hour: minutes, 10-minute buckets, the open hour; rounded out to a minute",
			now:  now, from: now.Add(-time.Hour),
			want: join(run(minuteBucket, "2026-03-10T09:37:00Z", "2026-03-10T09:40:00Z"), run(tenMinuteBucket, "2026-03-10T09:40:00Z", "2026-03-10T10:00:00Z"),
				run(hourBucket, "2026-03-10T10:00:00Z", "2026-03-10T11:00:00Z")),
			start: "2026-03-10T09:37:00Z", end: "2026-03-10T10:37:23Z",
		},
		{
			name: "24 hours: yesterday's hours, the open day; rounded out to an hour",
			now:  now, from: now.Add(-24 * time.Hour),
			want:  join(run(hourBucket, "2026-03-09T10:00:00Z", "2026-03-10T00:00:00Z"), run(dayBucket, "2026-03-10T00:00:00Z", "2026-03-11T00:00:00Z")),
			start: "2026-03-09T10:00:00Z", end: "2026-03-10T10:37:23Z",
		},
		{
			name: "3 days: rounded out to days",
			now:  now, from: now.Add(-72 * time.Hour),
			want:  run(dayBucket, "2026-03-07T00:00:00Z", "2026-03-11T00:00:00Z"),
			start: "2026-03-07T00:00:00Z", end: "2026-03-10T10:37:23Z",
		},
		{
			name: "beyond the 400 days kept: from the oldest day",
			now:  now, from: now.AddDate(-2, 0, 0),
			want:  run(dayBucket, "2025-02-04T00:00:00Z", "2026-03-11T00:00:00Z"),
			start: "2025-02-04T00:00:00Z", end: "2026-03-10T10:37:23Z",
		},
		{
			name:  "zero from: every day kept",
			now:   now,
			want:  run(dayBucket, "2025-02-04T00:00:00Z", "2026-03-11T00:00:00Z"),
			start: "2025-02-04T00:00:00Z", end: "2026-03-10T10:37:23Z",
		},
		{
			name: "whole days in the past",
			now:  now, from: at("2026-03-01T00:00:00Z"), to: at("2026-03-05T00:00:00Z"),
			want:  run(dayBucket, "2026-03-01T00:00:00Z", "2026-03-05T00:00:00Z"),
			start: "2026-03-01T00:00:00Z", end: "2026-03-05T00:00:00Z",
		},
		{
			name: "within the last hour and ten minutes, to the minute",
			now:  now, from: at("2026-03-10T09:38:00Z"), to: at("2026-03-10T10:11:30Z"),
			want: join(run(minuteBucket, "2026-03-10T09:38:00Z", "2026-03-10T09:40:00Z"), run(tenMinuteBucket, "2026-03-10T09:40:00Z", "2026-03-10T10:10:00Z"),
				run(minuteBucket, "2026-03-10T10:10:00Z", "2026-03-10T10:12:00Z")),
			start: "2026-03-10T09:38:00Z", end: "2026-03-10T10:12:00Z",
		},
		{
			name: "before the minutes kept: the hour holds it",
			now:  now, from: at("2026-03-10T09:20:00Z"), to: at("2026-03-10T09:41:30Z"),
			want:  run(hourBucket, "2026-03-10T09:00:00Z", "2026-03-10T10:00:00Z"),
			start: "2026-03-10T09:00:00Z", end: "2026-03-10T10:00:00Z",
		},
		{
			name: "now on midnight: the open day begins now and holds what was sampled at this instant",
			now:  at("2026-03-10T00:00:00Z"), from: at("2026-03-09T23:59:00Z"),
			want:  []string{"1m0s@2026-03-09T23:59:00Z", "24h0m0s@2026-03-10T00:00:00Z"},
			start: "2026-03-09T23:59:00Z", end: "2026-03-10T00:00:00Z",
		},
		{
			name: "5 seconds: the 10 s bucket holding its start, and the open one",
			now:  now, from: now.Add(-5 * time.Second),
			want:  run(tenSecondBucket, "2026-03-10T10:37:10Z", "2026-03-10T10:37:30Z"),
			start: "2026-03-10T10:37:10Z", end: "2026-03-10T10:37:23Z",
		},
		{
			name: "from after to: the bucket holding to",
			now:  now, from: at("2026-03-09T12:00:00Z"), to: at("2026-03-09T11:30:00Z"),
			want:  run(hourBucket, "2026-03-09T11:00:00Z", "2026-03-09T12:00:00Z"),
			start: "2026-03-09T11:00:00Z", end: "2026-03-09T12:00:00Z",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, start, end := cover(tc.from, tc.to, tc.now)
			got := make([]string, len(ps))
			for i, pc := range ps {
				got[i] = pc.String()
			}
			if len(got) != len(tc.want) {
				t.Errorf("%d pieces, want %d:\n got %.400v\nwant %.400v", len(got), len(tc.want), got, tc.want)
			} else {
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("piece %d = %s, want %s", i, got[i], tc.want[i])
						break
					}
				}
			}
			if !start.Equal(at(tc.start)) || !end.Equal(at(tc.end)) {
				t.Errorf("covers %s to %s, want %s to %s", start, end, tc.start, tc.end)
			}
		})
	}
}
