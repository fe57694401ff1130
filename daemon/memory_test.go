package daemon

import (
	"net/netip"
	"testing"

	"github.com/edgefw/edgefw/nft"
)

// TestReleaseLater: an apply of large sets leaves the release of its
// memory to the loop, which makes it once it has answered; small sets
// leave none.
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
	d.releaseIfDue()
	if d.releaseDue {
		t.Fatal("the release stays due after it was made")
	}
}
