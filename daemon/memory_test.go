package daemon

import (
	"context"
	"net/netip"
	"testing"

	"github.com/edgefw/edgefw/nft"
)

// TestReleaseLater: an apply of large sets leaves the release of its
// memory to the loop, which makes it once quiet; small sets leave none.
func TestReleaseLater(t *testing.T) {
	rs := func(n int) *nft.Ruleset {
		s := &nft.AddrSet{Name: "s"}
		for i := range n {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			s.Ranges = append(s.Ranges, nft.AddrRange{From: a, To: a})
		}
		return &nft.Ruleset{Sets: []*nft.AddrSet{s}}
	}
	d := &Daemon{}
	d.releaseLater(rs(10))
	d.releaseLater(nil)
	if d.releaseDue {
		t.Fatal("a small apply left a release due")
	}
	d.releaseLater(rs(releaseAfterRanges))
	if !d.releaseDue {
		t.Fatal("a large apply left no release due")
	}
	if !d.afterAnswer() {
		t.Fatal("the loop was not told to release after the quiet wait")
	}
	if d.releaseDue || d.afterAnswer() {
		t.Fatal("the release stays due after the loop was told")
	}
}

// TestLastGoodSyncedAfterAnswer: an apply puts the last good policy in
// place at once and leaves its sync to the disk for after the answer;
// an apply that changes nothing leaves no sync.
func TestLastGoodSyncedAfterAnswer(t *testing.T) {
	h := newHarness(t)
	d := h.daemon(t)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if saved, err := loadLastGood(h.state); err != nil || saved == nil {
		t.Fatalf("no last good policy before the answer: %v", err)
	}
	if !d.syncDue {
		t.Fatal("the new last good policy is not to be synced")
	}
	d.afterAnswer()
	if d.syncDue {
		t.Fatal("the sync stays due after it was made")
	}
	if err := d.reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if d.syncDue {
		t.Error("a reload that saved the same policy left a sync due")
	}
}
