package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// hash64 is a SHA-256 in hex, as the daemon writes policy hashes.
func hash64(i int) string { return fmt.Sprintf("%064x", i) }

// typicalEvent is the i-th of a realistic mix of the events a host
// journals: applies by an operator, drift repairs that restore a flushed
// table (every rule added again, names capped), peers going down and up.
func typicalEvent(i int) Event {
	switch i % 4 {
	case 0:
		return Event{Kind: KindApply, Trigger: "apply", By: &Caller{UID: 1000, User: "alice"},
			Source: "/home/alice/edgefw/candidate.yaml", PolicyBefore: hash64(i), PolicyAfter: hash64(i + 1),
			Changes: &Summary{RulesAdded: 1, RulesChanged: 1, ElementsAdded: 12, Messages: 5,
				Added: []string{"kube-api"}, Changed: []string{"ssh-from-mgmt"}}}
	case 1:
		names := []string{"edgefw-established-input", "edgefw-invalid-input", "edgefw-loopback-input", "edgefw-icmpv6-nd-input",
			"edgefw-icmp-errors-input", "edgefw-failsafe", "edgefw-default-input", "edgefw-default-forward", "edgefw-default-output",
			"drop-blocklisted", "ssh-from-mgmt", "kube-api", "nodeports", "backend-egress", "edgefw-wireguard-wg0", "edgefw-limited-kube-api"}
		return Event{Kind: KindDriftRepair, Trigger: "drift", ChangedBy: "nft (pid 48213)",
			Source: "/etc/edgefw/policy.yaml", PolicyBefore: hash64(i), PolicyAfter: hash64(i),
			Changes: &Summary{RulesAdded: 21, ElementsAdded: 1024, Messages: 64, Added: names},
			Drift:   &Drift{Repairs: 1, Commits: 1, Since: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	case 2:
		return Event{Kind: KindPeerDown, Interface: "wg0", Peer: "cluster-gw",
			Detail: "no handshake since 2026-03-01T11:57:00Z (WireGuard's reject-after-time is 180 s)"}
	default:
		return Event{Kind: KindPeerUp, Interface: "wg0", Peer: "cluster-gw", Detail: "handshake at 2026-03-01T12:03:12Z"}
	}
}

// TestSizeOf10000Events appends 10,000 typical events and reports the
// journal's size: what the 64 MiB default cap holds.
func TestSizeOf10000Events(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 appends, each synced to disk")
	}
	dir := t.TempDir()
	j := open(t, dir, WithClock(newClock().now))
	const n = 10000
	byKind := map[Kind]int{}
	start := time.Now()
	for i := range n {
		e, err := j.Append(typicalEvent(i))
		if err != nil {
			t.Fatal(err)
		}
		byKind[e.Kind]++
	}
	took := time.Since(start)
	info, err := os.Stat(filepath.Join(dir, activeName))
	if err != nil {
		t.Fatal(err)
	}
	size := info.Size()
	per := float64(size) / n
	t.Logf("%d entries (%v): %d bytes, %.0f bytes per entry; the %d MiB default cap holds about %.0f entries; %v per append with fsync",
		n, byKind, size, per, DefaultMaxBytes>>20, float64(DefaultMaxBytes)*(segments-1)/segments/per, took/n)
	if per > 1024 {
		t.Errorf("%.0f bytes per typical entry: more than 1 KiB", per)
	}
	if v := verify(t, dir); !v.OK() || v.Entries != n {
		t.Errorf("verify: %s", v)
	}
}

// BenchmarkAppend measures one append, fsync included, of a typical
// event to a journal on the test's file system.
func BenchmarkAppend(b *testing.B) {
	j, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	var last Entry
	for i := 0; b.Loop(); i++ {
		if last, err = j.Append(typicalEvent(i)); err != nil {
			b.Fatal(err)
		}
	}
	if info, err := j.f.Stat(); err == nil && last.Seq > 0 {
		b.ReportMetric(float64(info.Size())/float64(last.Seq), "bytes/entry")
	}
}
