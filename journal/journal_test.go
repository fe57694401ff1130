package journal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock that moves a second on every reading.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func open(t *testing.T, dir string, opts ...Option) *Journal {
	t.Helper()
	j, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func appendN(t *testing.T, j *Journal, n int) {
	t.Helper()
	for i := range n {
		ev := Event{Kind: KindApply, Trigger: "reload", Source: "/etc/edgefw/policy.yaml",
			By: &Caller{UID: 1000, User: "alice"}, PolicyBefore: fmt.Sprintf("%064x", i), PolicyAfter: fmt.Sprintf("%064x", i+1),
			Changes: &Summary{RulesAdded: 1, ElementsRemoved: i % 7, Messages: 3}}
		if _, err := j.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
}

func verify(t *testing.T, dir string) *Verification {
	t.Helper()
	v, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAppendChainsAndReopens(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	j := open(t, dir, WithClock(c.now))
	appendN(t, j, 5)
	j.Close()
	j = open(t, dir, WithClock(c.now))
	e, err := j.Append(Event{Kind: KindConfirm, By: &Caller{UID: 0, User: "root"}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 6 {
		t.Errorf("after a reopen the next entry is %d, want 6", e.Seq)
	}
	entries, err := Read(dir, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 6 || entries[0].Prev != "" || entries[5].Kind != KindConfirm {
		t.Fatalf("read %d entries: %+v", len(entries), entries)
	}
	for i, e := range entries {
		if e.Seq != uint64(i+1) || (i > 0 && e.Prev == "") {
			t.Errorf("entry %d: seq %d prev %q", i, e.Seq, e.Prev)
		}
	}
	if since, _ := Read(dir, entries[3].Time); len(since) != 3 {
		t.Errorf("read since the 4th entry's time: %d entries, want 3", len(since))
	}
	v := verify(t, dir)
	if !v.OK() || v.Entries != 6 || v.FirstSeq != 1 || v.LastSeq != 6 {
		t.Errorf("verify: %s (%+v)", v, v)
	}
	if seq, head := j.Seq(); seq != 6 || head != v.Head {
		t.Errorf("Seq() = %d %s, want 6 and the verified head %s", seq, head, v.Head)
	}
	data, _ := os.ReadFile(filepath.Join(dir, activeName))
	if got := strings.Count(string(data), "\n"); got != 6 {
		t.Errorf("%d lines, want 6", got)
	}
	if info, _ := os.Stat(filepath.Join(dir, activeName)); info.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600", info.Mode().Perm())
	}
}

// TestTornLastLine: a crash in the middle of an append leaves half a line;
// the next open ends it, and it is skipped by Read and Verify.
func TestTornLastLine(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	appendN(t, j, 3)
	j.Close()
	f, err := os.OpenFile(filepath.Join(dir, activeName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":4,"time":"2026-03-01T12:00:`)
	f.Close()

	if v := verify(t, dir); !v.OK() || v.Entries != 3 || len(v.Torn) != 1 || v.Torn[0].Line != 4 {
		t.Errorf("verify with a torn last line: %s (%+v)", v, v)
	}
	j = open(t, dir)
	if e, err := j.Append(Event{Kind: KindBoot, Trigger: "start"}); err != nil || e.Seq != 4 {
		t.Fatalf("append after the torn line: seq %d, %v", e.Seq, err)
	}
	entries, err := Read(dir, time.Time{})
	if err != nil || len(entries) != 4 || entries[3].Kind != KindBoot {
		t.Fatalf("read: %d entries, %v", len(entries), err)
	}
	v := verify(t, dir)
	if !v.OK() || v.Entries != 4 || len(v.Torn) != 1 || v.Torn[0].Line != 4 {
		t.Errorf("verify after the torn line was skipped: %s (%+v)", v, v)
	}
}

// TestVerifyNamesTheAlteredEntry edits one byte of an old entry, in ways
// that keep and that break its JSON, and removes one: Verify names it.
func TestVerifyNamesTheAlteredEntry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		alter  func(lines [][]byte) [][]byte
		seq    uint64
		line   int
		reason string
	}{
		{name: "a byte of a value", seq: 4, line: 4, reason: "its hash does not match what entry 5",
			alter: func(l [][]byte) [][]byte { l[3] = bytes.Replace(l[3], []byte("alice"), []byte("alicf"), 1); return l }},
		{name: "a byte of the syntax", seq: 4, line: 4, reason: "this line is not a whole entry",
			alter: func(l [][]byte) [][]byte { l[3][0] = '['; return l }},
		{name: "an entry removed", seq: 4, line: 4, reason: "entries 4 to 4 are missing between entry 3",
			alter: func(l [][]byte) [][]byte { return append(l[:3], l[4:]...) }},
		{name: "the first entry removed", seq: 1, line: 1, reason: "the journal begins at entry 2",
			alter: func(l [][]byte) [][]byte { return l[1:] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := open(t, dir)
			appendN(t, j, 8)
			j.Close()
			path := filepath.Join(dir, activeName)
			data, _ := os.ReadFile(path)
			lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
			lines = tc.alter(lines)
			os.WriteFile(path, append(bytes.Join(lines, []byte("\n")), '\n'), 0o600)
			v := verify(t, dir)
			if v.OK() {
				t.Fatalf("verify holds after %s", tc.name)
			}
			b := v.Break
			if b.Seq != tc.seq || b.Line != tc.line || filepath.Base(b.File) != activeName || !strings.Contains(b.Reason, tc.reason) {
				t.Errorf("break %s (%+v), want entry %d at line %d: %s…", b, b, tc.seq, tc.line, tc.reason)
			}
			t.Logf("%s: %s", tc.name, v)
		})
	}
}

// TestRotation keeps the journal under its cap, records what it removed in
// the chain, and still verifies; a rotated file removed by hand does not.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	const max = 16 << 10
	j := open(t, dir, WithMaxBytes(max))
	appendN(t, j, 600)
	files, err := journalFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, f := range files {
		info, _ := os.Stat(f)
		total += info.Size()
	}
	if total > max || len(files) > segments+1 || len(files) < 3 {
		t.Errorf("%d files, %d bytes: want at most %d bytes in at most %d files", len(files), total, max, segments+1)
	}
	v := verify(t, dir)
	if !v.OK() || v.RotatedAway == 0 || v.FirstSeq != v.RotatedAway+1 || v.LastSeq < 600 {
		t.Fatalf("verify after rotation: %s (%+v)", v, v)
	}
	entries, _ := Read(dir, time.Time{})
	rotated := 0
	for _, e := range entries {
		if e.Kind == KindRotated {
			rotated++
		}
	}
	if rotated == 0 || entries[0].Seq != v.FirstSeq || uint64(len(entries)) != v.LastSeq-v.FirstSeq+1 {
		t.Errorf("%d entries from %d, %d rotation records", len(entries), entries[0].Seq, rotated)
	}
	t.Logf("%d entries kept in %d files, %d bytes; %s", len(entries), len(files), total, v)

	// Remove the oldest file kept: the chain no longer accounts for it.
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	if v := verify(t, dir); v.OK() || !strings.Contains(v.Break.Reason, "no rotation recorded") {
		t.Errorf("verify after removing %s by hand: %s", filepath.Base(files[0]), v)
	}
}

// TestAppendAllAcrossRotations: a batch that fills several files is
// written as the same entries one Append at a time would make: one
// chain, rotations recorded in it, every entry numbered in order.
func TestAppendAllAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, WithMaxBytes(16<<10))
	appendN(t, j, 3)
	var evs []Event
	for i := range 300 {
		evs = append(evs, Event{Kind: KindPeerDown, Interface: "wg0", Peer: fmt.Sprintf("site-%d", i), Detail: "no handshake yet"})
	}
	entries, err := j.AppendAll(evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(evs) || entries[0].Seq != 4 {
		t.Fatalf("%d entries from %d, want %d from 4", len(entries), entries[0].Seq, len(evs))
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].Seq <= entries[i-1].Seq || entries[i].Peer != evs[i].Peer {
			t.Fatalf("entry %d: seq %d after %d, peer %q", i, entries[i].Seq, entries[i-1].Seq, entries[i].Peer)
		}
	}
	appendN(t, j, 1)
	v := verify(t, dir)
	if !v.OK() || v.RotatedAway == 0 || v.LastSeq <= entries[len(entries)-1].Seq {
		t.Fatalf("verify after a batch across rotations (last of the batch %d): %s", entries[len(entries)-1].Seq, v)
	}
}

func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, WithMaxBytes(64<<10))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { appendN(t, j, 50) })
	}
	wg.Wait()
	if v := verify(t, dir); !v.OK() || v.LastSeq < 400 {
		t.Errorf("verify after concurrent appends: %s", v)
	}
}

func TestOpenRefusesATinyCap(t *testing.T) {
	if _, err := Open(t.TempDir(), WithMaxBytes(100)); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("Open with a 100-byte cap: %v", err)
	}
}
