package nft

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

func be64(t uint16, v uint64) netlink.Attribute {
	return netlink.Attribute{Type: t, Data: binary.BigEndian.AppendUint64(nil, v)}
}

// counterMsg is an NFT_MSG_NEWOBJ of a counter dump, with the attributes
// the kernel's nf_tables_fill_obj_info writes, in its order.
func counterMsg(seq uint32, table, name string, typ uint32, packets, bytes uint64) netlink.Message {
	return nftMsg(unix.NFT_MSG_NEWOBJ, unix.NFPROTO_INET, seq,
		str(unix.NFTA_OBJ_TABLE, table),
		str(unix.NFTA_OBJ_NAME, name),
		be32(unix.NFTA_OBJ_TYPE, typ),
		be32(unix.NFTA_OBJ_USE, 1),
		nested(unix.NFTA_OBJ_DATA, be64(unix.NFTA_COUNTER_BYTES, bytes), be64(unix.NFTA_COUNTER_PACKETS, packets)),
		be64(6, 7), // NFTA_OBJ_HANDLE, which x/sys/unix does not name
	)
}

func TestReadCounters(t *testing.T) {
	const seq = 11
	done := netlink.Message{Header: netlink.Header{Sequence: seq}, Data: make([]byte, 4)}
	msgs, err := nltest.Multipart([]netlink.Message{
		counterMsg(seq, TableName, "ssh", unix.NFT_OBJECT_COUNTER, 3, 180),
		counterMsg(seq, TableName, "web", unix.NFT_OBJECT_COUNTER, 1<<40, 1<<50),
		counterMsg(seq, TableName, "policy-input", unix.NFT_OBJECT_COUNTER, 0, 0),
		done,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A reply to another request in between is not ours.
	other := counterMsg(seq+1, TableName, "stale", unix.NFT_OBJECT_COUNTER, 9, 9)
	sock := &fakeSocket{reads: datagrams(msgs[:2], append([]netlink.Message{other}, msgs[2:]...))}
	got, err := readCounters(sock, make([]byte, 1<<16), seq, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Counter{"ssh": {3, 180}, "web": {1 << 40, 1 << 50}, "policy-input": {}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("counters (-want +got):\n%s", d)
	}

	for _, tc := range []struct {
		name  string
		reads []fakeRead
		err   error
	}{
		{"another table's counter", datagrams([]netlink.Message{counterMsg(seq, "filter", "x", unix.NFT_OBJECT_COUNTER, 1, 1)}), errMalformed},
		{"a quota", datagrams([]netlink.Message{counterMsg(seq, TableName, "q", unix.NFT_OBJECT_QUOTA, 1, 1)}), errMalformed},
		{"no name", datagrams([]netlink.Message{nftMsg(unix.NFT_MSG_NEWOBJ, unix.NFPROTO_INET, seq,
			str(unix.NFTA_OBJ_TABLE, TableName), be32(unix.NFTA_OBJ_TYPE, unix.NFT_OBJECT_COUNTER))}), errMalformed},
		{"short value", datagrams([]netlink.Message{nftMsg(unix.NFT_MSG_NEWOBJ, unix.NFPROTO_INET, seq,
			str(unix.NFTA_OBJ_TABLE, TableName), str(unix.NFTA_OBJ_NAME, "x"), be32(unix.NFTA_OBJ_TYPE, unix.NFT_OBJECT_COUNTER),
			nested(unix.NFTA_OBJ_DATA, be32(unix.NFTA_COUNTER_PACKETS, 1)))}), errMalformed},
		{"refused", datagrams([]netlink.Message{ackFor(request(seq), ackOpts{errno: unix.EPERM, capped: true})}), unix.EPERM},
		{"dump failed", datagrams([]netlink.Message{{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: seq},
			Data: errnoBytes(unix.EINTR)}}), unix.EINTR},
		{"garbled", []fakeRead{{data: []byte{1, 2, 3}}}, errMalformed},
		{"no end", datagrams([]netlink.Message{counterMsg(seq, TableName, "ssh", unix.NFT_OBJECT_COUNTER, 1, 1)}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readCounters(&fakeSocket{reads: tc.reads}, make([]byte, 1<<16), seq, 0)
			if tc.err == nil {
				// The socket times out once the replies stop short.
				if err == nil {
					t.Error("readCounters of a dump without its end: no error")
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("readCounters: %v, want %v", err, tc.err)
			}
		})
	}
}

func TestReadTableReply(t *testing.T) {
	const seq = 12
	table := nftMsg(unix.NFT_MSG_NEWTABLE, unix.NFPROTO_INET, seq, str(unix.NFTA_TABLE_NAME, TableName))
	for _, tc := range []struct {
		name   string
		reads  []fakeRead
		exists bool
		err    error
	}{
		{"exists", datagrams([]netlink.Message{table}, []netlink.Message{ackFor(request(seq), ackOpts{capped: true})}), true, nil},
		{"missing", datagrams([]netlink.Message{ackFor(request(seq), ackOpts{errno: unix.ENOENT, capped: true})}), false, nil},
		{"refused", datagrams([]netlink.Message{ackFor(request(seq), ackOpts{errno: unix.EPERM, capped: true})}), false, unix.EPERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exists, err := readTableReply(&fakeSocket{reads: tc.reads}, make([]byte, 1<<16), seq)
			if exists != tc.exists || !errors.Is(err, tc.err) {
				t.Errorf("readTableReply = %v, %v; want %v, %v", exists, err, tc.exists, tc.err)
			}
		})
	}
}

func TestCounterRequests(t *testing.T) {
	// What nf_tables_dump_obj filters the dump by: family inet, our table,
	// counters only.
	m := counterDumpRequest()
	if m.Header.Flags != netlink.Request|netlink.Dump || m.Data[0] != unix.NFPROTO_INET {
		t.Errorf("counter dump request: flags %v, family %d", m.Header.Flags, m.Data[0])
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[nfgenmsgLen:])
	if err != nil {
		t.Fatal(err)
	}
	ad.ByteOrder = binary.BigEndian
	var table string
	var typ uint32
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_OBJ_TABLE:
			table = ad.String()
		case unix.NFTA_OBJ_TYPE:
			typ = ad.Uint32()
		}
	}
	if table != TableName || typ != unix.NFT_OBJECT_COUNTER {
		t.Errorf("counter dump request for table %q, type %d", table, typ)
	}
	if m := tableRequest(); m.Header.Flags&netlink.Acknowledge == 0 {
		// Without an acknowledgement, an existing table's reply has no end.
		t.Error("table request asks for no acknowledgement")
	}
}
