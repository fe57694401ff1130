package nft

import (
	"maps"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// BenchmarkReadDirectMaps reads back 10,000 plain port rules, laid out in
// direct maps: a whole ReadTable by a Kernel that knows nothing, and again by one that
// read it before, the rule
// dump with the object maps' elements (dumpRules), the same knowing the
// maps' counters by rule hash from an earlier read, and the element
// dumps alone, which are what knowing a direct map's counters costs.
func BenchmarkReadDirectMaps(b *testing.B) {
	netnstest.RequireRoot(b)
	ns := netnstest.New(b, "readdirect")
	rs, err := Compile(manyRulesPolicy(10_000, -1))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := NewApplier(WithNetNS(ns.FD)).Apply(rs); err != nil {
		b.Fatal(err)
	}
	b.Run("ReadTable", func(b *testing.B) {
		for b.Loop() {
			k := newNetlinkKernel(ns.FD)
			if _, err := k.ReadTable(); err != nil {
				b.Fatal(err)
			}
			k.Close()
		}
	})
	b.Run("ReadTable-again", func(b *testing.B) {
		k := newNetlinkKernel(ns.FD)
		defer k.Close()
		if _, err := k.ReadTable(); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := k.ReadTable(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dumpRules", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := dumpRules(ns.FD, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dumpRules-known", func(b *testing.B) {
		_, known, err := dumpRules(ns.FD, nil)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, _, err := dumpRules(ns.FD, known); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("objMaps", func(b *testing.B) {
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns.FD})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		sock, err := newNetlinkSocket(c)
		if err != nil {
			b.Fatal(err)
		}
		req, err := c.Send(netlink.Message{
			Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETRULE), Flags: netlink.Request | netlink.Dump},
			Data:   appendStringAttr([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, unix.NFTA_RULE_TABLE, TableName),
		})
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, dumpBufferSize)
		d, err := readRules(sock, buf, req.Header.Sequence)
		if err != nil {
			b.Fatal(err)
		}
		sets := slices.Sorted(maps.Keys(d.objMaps))
		b.ReportMetric(float64(len(sets)), "maps")
		for b.Loop() {
			for _, set := range sets {
				req, err := c.Send(setElemsRequest(set))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := readObjMapElems(sock, buf, req.Header.Sequence, set); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
