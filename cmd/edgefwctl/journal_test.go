package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/journal"
)

// fakeJournal serves canned journal answers and records the since
// parameters it is asked for.
type fakeJournal struct {
	entries []journal.Entry
	verify  journal.Verification

	mu     sync.Mutex
	sinces []string
}

func (f *fakeJournal) serve(t *testing.T) string {
	t.Helper()
	return serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case daemon.PathJournal:
			f.mu.Lock()
			f.sinces = append(f.sinces, r.URL.Query().Get("since"))
			f.mu.Unlock()
			_ = json.NewEncoder(w).Encode(f.entries)
		case daemon.PathJournalVerify:
			_ = json.NewEncoder(w).Encode(f.verify)
		default:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(daemon.ErrorResponse{Error: "no such path"})
		}
	}))
}

func cannedJournal() []journal.Entry {
	at := testNow.Add(-time.Hour)
	return []journal.Entry{
		{Seq: 1, Time: at, Event: journal.Event{Kind: journal.KindBoot, Trigger: "policy-files", Version: "1.4.0", PolicyAfter: "aaaaaaaaaaaaaaaa"}},
		{Seq: 2, Time: at.Add(time.Minute), Prev: "x", Event: journal.Event{Kind: journal.KindApply, Trigger: "apply",
			By: &journal.Caller{UID: 1000, User: "alice"}, Source: "/home/alice/candidate.yaml",
			PolicyBefore: "aaaaaaaaaaaaaaaa", PolicyAfter: "bbbbbbbbbbbbbbbb",
			Changes: &journal.Summary{RulesAdded: 1, Added: []string{"metrics"}, ElementsAdded: 2}}},
	}
}

func TestJournalList(t *testing.T) {
	f := &fakeJournal{entries: cannedJournal()}
	sock := f.serve(t)
	res := run(t, "--socket", sock, "journal")
	want := "2026-05-06T13:00:00Z #1 boot          edgefwd trigger=policy-files version=1.4.0 policy=none→aaaaaaaaaaaa\n" +
		"2026-05-06T13:01:00Z #2 apply         alice(uid=1000) trigger=apply source=/home/alice/candidate.yaml policy=aaaaaaaaaaaa→bbbbbbbbbbbb rules=+metrics elements=+2-0\n"
	if res.code != 0 || res.stdout != want || res.stderr != "" {
		t.Errorf("journal: code %d\n%s\nstderr %q; want:\n%s", res.code, res.stdout, res.stderr, want)
	}

	res = run(t, "--socket", sock, "journal", "-o", "json")
	var got []journal.Entry
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil || res.code != 0 {
		t.Fatalf("journal -o json: %d %v\n%s", res.code, err, res.stdout)
	}
	if diff := cmp.Diff(cannedJournal(), got); diff != "" {
		t.Errorf("journal -o json (-want +got):\n%s", diff)
	}

	f.entries = nil
	if res := run(t, "--socket", sock, "journal"); res.code != 0 || res.stdout != "no journal entries\n" {
		t.Errorf("empty journal: %d %q", res.code, res.stdout)
	}
	if res := run(t, "--socket", sock, "journal", "-o", "json"); res.code != 0 || strings.TrimSpace(res.stdout) != "[]" {
		t.Errorf("empty journal -o json: %d %q", res.code, res.stdout)
	}
}

// TestJournalSince checks what --since asks the daemon for.
func TestJournalSince(t *testing.T) {
	f := &fakeJournal{}
	sock := f.serve(t)
	for _, since := range []string{"", "90m", "7d", "2026-03-01T12:00:00+01:00"} {
		args := []string{"--socket", sock, "journal"}
		if since != "" {
			args = append(args, "--since", since)
		}
		if res := run(t, args...); res.code != 0 {
			t.Fatalf("journal --since %q: %d %s", since, res.code, res.stderr)
		}
	}
	want := []string{"", "2026-05-06T12:30:00Z", "2026-04-29T14:00:00Z", "2026-03-01T11:00:00Z"}
	if diff := cmp.Diff(want, f.sinces); diff != "" {
		t.Errorf("since sent (-want +got):\n%s", diff)
	}
	res := run(t, "--socket", sock, "journal", "--since", "yesterday")
	if res.code != 1 || !strings.Contains(res.stderr, `--since "yesterday": want a duration`) || !strings.Contains(res.stderr, "edgefwctl journal --help") {
		t.Errorf("--since yesterday: %d %q", res.code, res.stderr)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 5, 6, 14, 0, 0, 0, time.UTC)
	local := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.Local) }
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: ""},
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "0d", want: now},
		{in: "30d", want: now.AddDate(0, 0, -30)},
		{in: "2026-03-01", want: local(2026, 3, 1)},
		{in: "2026-03-01T12:00:00Z", want: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		{in: "-1h", err: true},
		{in: "-3d", err: true},
		{in: "soon", err: true},
	} {
		got, err := parseSince(tc.in, now)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestJournalVerify(t *testing.T) {
	holds := journal.Verification{Entries: 41, FirstSeq: 2, LastSeq: 42, RotatedAway: 1, Head: "c0ffee",
		Torn: []journal.Location{{File: "/var/lib/edgefw/journal/journal.jsonl", Line: 17}}}
	f := &fakeJournal{verify: holds}
	sock := f.serve(t)
	res := run(t, "--socket", sock, "journal", "verify")
	want := "the journal's hash chain holds: entries 2 to 42 (entries 1 to 1 were rotated away, as the chain records); 1 torn line(s) skipped, cut short by a crash: journal.jsonl:17\nhead: c0ffee\n"
	if res.code != 0 || res.stdout != want {
		t.Errorf("verify: %d\n%s\nwant:\n%s", res.code, res.stdout, want)
	}

	f.verify = journal.Verification{Entries: 3, FirstSeq: 1, LastSeq: 3, Break: &journal.Break{
		Location: journal.Location{File: "/var/lib/edgefw/journal/journal.jsonl", Line: 2}, Seq: 2,
		Reason: "its hash does not match what entry 3 (journal.jsonl:3) recorded: it was altered"}}
	res = run(t, "--socket", sock, "journal", "verify")
	if res.code != 1 || !strings.Contains(res.stdout, "broken at entry 2 (journal.jsonl:2): its hash does not match") ||
		res.stderr != "edgefwctl: the journal's hash chain is broken\n" {
		t.Errorf("verify of a broken chain: %d\nstdout %q\nstderr %q", res.code, res.stdout, res.stderr)
	}
	res = run(t, "--socket", sock, "journal", "verify", "-o", "json")
	var v journal.Verification
	if err := json.Unmarshal([]byte(res.stdout), &v); err != nil || res.code != 1 || v.Break == nil || v.Break.Seq != 2 || v.LastSeq != 3 {
		t.Errorf("verify -o json of a broken chain: %d %v %+v", res.code, err, v)
	}
}

func TestStatusShowsJournal(t *testing.T) {
	f := newFakeDaemon(t)
	f.status = cannedStatus()
	f.status.Journal = &daemon.JournalStatus{Path: "/var/lib/edgefw/journal", Entries: 42, Head: "0123456789abcdef"}
	res := run(t, "--socket", f.socket, "status")
	if want := "journal:        /var/lib/edgefw/journal, 42 entries, head 0123456789ab\n"; res.code != 0 || !strings.Contains(res.stdout, want) {
		t.Errorf("status lacks %q:\n%s", want, res.stdout)
	}
}
