package nft

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestRangeMessages encodes ranges as element messages and decodes them
// as the kernel's dump replies are decoded: every range comes back, in
// order, each element list stays under the 16-bit attribute length, ends
// are flagged, and a range that runs to the family's last address has no
// end element.
func TestRangeMessages(t *testing.T) {
	v4 := prefixesToRanges(randomPrefixes(5, 20_000))
	v4 = append(v4, AddrRange{From: netip.MustParseAddr("240.0.0.0"), To: netip.MustParseAddr("255.255.255.255")})
	var v6 []AddrRange
	for i := range 5000 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 15: 1})
		v6 = append(v6, AddrRange{From: a, To: a})
	}
	for _, tc := range []struct {
		name string
		rs   []AddrRange
		v6   bool
	}{{"ipv4", v4, false}, {"ipv6", v6, true}, {"empty", nil, false}} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := rangeMessages(unix.NFT_MSG_NEWSETELEM, "s", 7, tc.rs)
			if len(tc.rs) > 0 && len(msgs) < 2 {
				t.Fatalf("%d ranges in %d messages: the test wants several", len(tc.rs), len(msgs))
			}
			var elems []nftables.SetElement
			for i, m := range msgs {
				if m.Header.Type != nftType(unix.NFT_MSG_NEWSETELEM) || m.Header.Flags != netlink.Request|netlink.Create {
					t.Errorf("message %d: type %v, flags %v", i, m.Header.Type, m.Header.Flags)
				}
				if l := elemListLen(t, m.Data); l > 0xffff {
					t.Fatalf("message %d: element list of %d bytes", i, l)
				}
				var err error
				n := len(elems)
				if elems, err = decodeSetElems(elems, m.Data, "s"); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				for j := n; j+1 < len(elems); j++ {
					a, _ := keyAddr(elems[j].Key, tc.v6)
					b, _ := keyAddr(elems[j+1].Key, tc.v6)
					if a.Compare(b) >= 0 || elems[j].IntervalEnd == elems[j+1].IntervalEnd && elems[j+1].IntervalEnd {
						t.Fatalf("message %d: elements %d and %d out of order: %v %v", i, j, j+1, elems[j], elems[j+1])
					}
				}
			}
			if got := elementRanges(elems, tc.v6); !slices.Equal(got, tc.rs) {
				t.Errorf("decoded %d ranges, want %d (equal: %v)", len(got), len(tc.rs), slices.Equal(got, tc.rs))
			}
			ends := 0
			for _, e := range elems {
				if e.IntervalEnd {
					ends++
				}
			}
			if want := len(tc.rs) - lastRunsToEnd(tc.rs); ends != want {
				t.Errorf("%d end elements, want %d", ends, want)
			}
		})
	}
}

func lastRunsToEnd(rs []AddrRange) int {
	if len(rs) > 0 && !rs[len(rs)-1].To.Next().IsValid() {
		return 1
	}
	return 0
}

// elemListLen returns the length the element list attribute of a message
// would need, counted from its elements rather than read from its 16-bit
// header, which would wrap.
func elemListLen(t *testing.T, data []byte) int {
	t.Helper()
	b := data[nfgenmsgLen:]
	for len(b) >= nlaHeaderLen {
		l := int(binary.NativeEndian.Uint16(b))
		if binary.NativeEndian.Uint16(b[2:])&^unix.NLA_F_NESTED == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			return len(b)
		}
		b = b[attrLen(l-nlaHeaderLen):]
	}
	t.Fatal("no element list")
	return 0
}
