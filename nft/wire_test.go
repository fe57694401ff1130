package nft

import (
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// The tests of this file feed the decoders replies and notifications
// built as the kernel builds them, without a socket and without root.

// fakeRead is one read of a fakeSocket: a datagram or an error.
type fakeRead struct {
	data []byte
	err  error
	// afterDrain: the kernel queues it after a reader emptied the
	// socket; discard stops before it.
	afterDrain bool
}

// fakeSocket is a datagramReader that returns constructed replies. Once
// they are read, it times out as a socket does to which nothing comes.
type fakeSocket struct {
	reads     []fakeRead
	discarded int
}

func (s *fakeSocket) readDatagram(buf []byte, _ time.Time) (int, error) {
	if len(s.reads) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	r := s.reads[0]
	s.reads = s.reads[1:]
	if r.err != nil {
		return 0, r.err
	}
	if len(r.data) > len(buf) {
		return 0, errors.New("datagram too long")
	}
	return copy(buf, r.data), nil
}

func (s *fakeSocket) discard([]byte) error {
	for len(s.reads) > 0 && !s.reads[0].afterDrain {
		s.reads = s.reads[1:]
		s.discarded++
	}
	return nil
}

// datagrams returns one read per datagram, each holding the messages given.
func datagrams(ds ...[]netlink.Message) []fakeRead {
	out := make([]fakeRead, len(ds))
	for i, msgs := range ds {
		out[i] = fakeRead{data: datagram(msgs...)}
	}
	return out
}

// datagram marshals messages into one datagram, as the kernel packs them.
func datagram(msgs ...netlink.Message) []byte {
	var b []byte
	for _, m := range msgs {
		m.Header.Length = uint32(nlmsgHeaderLen + len(m.Data))
		m.Data = append(m.Data, make([]byte, int(nlmsgAlign(m.Header.Length)-m.Header.Length))...)
		m.Header.Length = nlmsgAlign(m.Header.Length)
		out, err := m.MarshalBinary()
		if err != nil {
			panic(err)
		}
		b = append(b, out...)
	}
	return b
}

// nftMsg is an nftables message of family fam with attributes.
func nftMsg(msg int, fam uint8, seq uint32, attrs ...netlink.Attribute) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: nftType(msg), Sequence: seq},
		Data:   append([]byte{fam, unix.NFNETLINK_V0, 0, 0}, nltest.MustMarshalAttributes(attrs)...),
	}
}

func str(t uint16, s string) netlink.Attribute {
	return netlink.Attribute{Type: t, Data: []byte(s + "\x00")}
}

func be32(t uint16, v uint32) netlink.Attribute {
	return netlink.Attribute{Type: t, Data: binary.BigEndian.AppendUint32(nil, v)}
}

func nested(t uint16, attrs ...netlink.Attribute) netlink.Attribute {
	return netlink.Attribute{Type: t | netlink.Nested, Data: nltest.MustMarshalAttributes(attrs)}
}

// elemAttr is one NFTA_LIST_ELEM with an address key, an interval's end
// if end.
func elemAttr(key []byte, end bool) netlink.Attribute {
	attrs := []netlink.Attribute{nested(unix.NFTA_SET_ELEM_KEY, netlink.Attribute{Type: unix.NFTA_DATA_VALUE, Data: key})}
	if end {
		attrs = append(attrs, be32(unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END))
	}
	return nested(unix.NFTA_LIST_ELEM, attrs...)
}

// elemsMsg is a NEWSETELEM reply or notification of set in table inet
// edgefw with elems.
func elemsMsg(seq uint32, table, set string, elems ...netlink.Attribute) netlink.Message {
	return nftMsg(unix.NFT_MSG_NEWSETELEM, unix.NFPROTO_INET, seq,
		str(unix.NFTA_SET_ELEM_LIST_TABLE, table), str(unix.NFTA_SET_ELEM_LIST_SET, set),
		nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, elems...))
}

// ackOpts describes an NLMSG_ERROR as the kernel's netlink_ack writes it.
type ackOpts struct {
	errno syscall.Errno
	// capped: the socket set NETLINK_CAP_ACK, so the request's body is
	// left out.
	capped bool
	// msg and offs are the extended ack; offs 0 is left out.
	msg  string
	offs uint32
}

// ackFor is the kernel's reply to req: an acknowledgement, or an error.
func ackFor(req netlink.Message, o ackOpts) netlink.Message {
	req.Header.Length = uint32(nlmsgHeaderLen + len(req.Data))
	hdr := make([]byte, nlmsgHeaderLen)
	binary.NativeEndian.PutUint32(hdr[0:4], req.Header.Length)
	binary.NativeEndian.PutUint16(hdr[4:6], uint16(req.Header.Type))
	binary.NativeEndian.PutUint16(hdr[6:8], uint16(req.Header.Flags))
	binary.NativeEndian.PutUint32(hdr[8:12], req.Header.Sequence)
	data := errnoBytes(o.errno)
	data = append(data, hdr...)
	var flags netlink.HeaderFlags
	if o.capped {
		flags |= netlink.Capped
	} else {
		data = append(data, req.Data...)
		data = append(data, make([]byte, int(nlmsgAlign(uint32(len(data)))-uint32(len(data))))...)
	}
	var tlvs []netlink.Attribute
	if o.msg != "" {
		tlvs = append(tlvs, str(unix.NLMSGERR_ATTR_MSG, o.msg))
	}
	if o.offs != 0 {
		tlvs = append(tlvs, netlink.Attribute{Type: unix.NLMSGERR_ATTR_OFFS, Data: binary.NativeEndian.AppendUint32(nil, o.offs)})
	}
	if tlvs != nil {
		flags |= netlink.AcknowledgeTLVs
		data = append(data, nltest.MustMarshalAttributes(tlvs)...)
	}
	return netlink.Message{Header: netlink.Header{Type: netlink.Error, Flags: flags, Sequence: req.Header.Sequence}, Data: data}
}

// errnoBytes is errno as the kernel puts it in a reply: a negative int.
func errnoBytes(errno syscall.Errno) []byte {
	return binary.NativeEndian.AppendUint32(nil, uint32(-int32(errno)))
}

// request is a message of a batch, as sent with sequence number seq.
func request(seq uint32) netlink.Message {
	m := nftMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_INET, seq, str(unix.NFTA_RULE_TABLE, TableName), str(unix.NFTA_RULE_CHAIN, "input"))
	m.Header.Flags = netlink.Request
	return m
}

func TestDecodeAck(t *testing.T) {
	req := request(42)
	for _, tc := range []struct {
		name string
		m    netlink.Message
		want ack
	}{
		{"acknowledgement", ackFor(req, ackOpts{capped: true}), ack{seq: 42}},
		{"acknowledgement quoting the request", ackFor(req, ackOpts{}), ack{seq: 42}},
		{"error", ackFor(req, ackOpts{errno: unix.ENOENT, capped: true}), ack{errno: unix.ENOENT, seq: 42}},
		{"capped error with extended ack",
			ackFor(req, ackOpts{errno: unix.EINVAL, capped: true, msg: "Unknown chain", offs: 36}),
			ack{errno: unix.EINVAL, seq: 42, message: "Unknown chain", offset: 36}},
		{"error quoting the request, with extended ack",
			ackFor(req, ackOpts{errno: unix.EEXIST, msg: "Set exists", offs: 20}),
			ack{errno: unix.EEXIST, seq: 42, message: "Set exists", offset: 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeAck(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("decodeAck = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDecodeAckCapped shows why acknowledgements are not read with
// mdlayher/netlink's Receive: it loses the errno of a capped error whose
// request was longer than its extended ack, which decodeAck keeps.
func TestDecodeAckCapped(t *testing.T) {
	req := request(7)
	req.Data = append(req.Data, make([]byte, 256)...)
	reply := ackFor(req, ackOpts{errno: unix.ENOENT, capped: true, msg: "x"})
	c := nltest.Dial(func([]netlink.Message) ([]netlink.Message, error) { return []netlink.Message{reply}, nil })
	defer c.Close()
	_, err := c.Execute(req)
	t.Logf("mdlayher/netlink: %v", err)
	if errors.Is(err, unix.ENOENT) {
		t.Log("mdlayher/netlink now decodes capped acknowledgements: decodeAck could give way to Conn.Receive")
	}
	a, err := decodeAck(reply)
	if err != nil || a.errno != unix.ENOENT || a.message != "x" {
		t.Errorf("decodeAck = %+v, %v; want ENOENT with its message", a, err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	req := request(1)
	good := ackFor(req, ackOpts{errno: unix.EINVAL, capped: true, msg: "bad", offs: 20})
	short := good
	short.Data = good.Data[:10]
	positive := ackFor(req, ackOpts{capped: true})
	binary.NativeEndian.PutUint32(positive.Data[0:4], 5)
	garbledTLV := ackFor(req, ackOpts{errno: unix.EINVAL, capped: true, msg: "bad"})
	binary.NativeEndian.PutUint16(garbledTLV.Data[20:22], 200)
	quoteTooLong := ackFor(req, ackOpts{errno: unix.EINVAL, msg: "bad"})
	binary.NativeEndian.PutUint32(quoteTooLong.Data[4:8], 4000)
	for name, m := range map[string]netlink.Message{
		"short":                       short,
		"positive errno":              positive,
		"attribute past its message":  garbledTLV,
		"request quoted past the end": quoteTooLong,
		"not an error":                nftMsg(unix.NFT_MSG_NEWGEN, 0, 1),
		"no header after the errno":   {Header: netlink.Header{Type: netlink.Error}, Data: []byte{0, 0, 0, 0}},
		"nothing":                     {Header: netlink.Header{Type: netlink.Error}},
		"extended ack flag, no room":  {Header: netlink.Header{Type: netlink.Error, Flags: netlink.AcknowledgeTLVs}, Data: make([]byte, 19)},
		"quoted request shorter than a header": func() netlink.Message {
			m := ackFor(req, ackOpts{errno: unix.EINVAL, msg: "bad"})
			binary.NativeEndian.PutUint32(m.Data[4:8], 3)
			return m
		}(),
	} {
		if a, err := decodeAck(m); !errors.Is(err, errMalformed) {
			t.Errorf("%s: decodeAck = %+v, %v; want a malformed message error", name, a, err)
		}
	}
	for name, data := range map[string][]byte{
		"no nfgenmsg":           {1, 0},
		"attribute past end":    {1, 0, 0, 0, 200, 0, 1, 0},
		"no generation":         nftMsg(unix.NFT_MSG_NEWGEN, 0, 1, be32(unix.NFTA_GEN_PROC_PID, 5)).Data,
		"generation of 2 bytes": nftMsg(unix.NFT_MSG_NEWGEN, 0, 1, netlink.Attribute{Type: unix.NFTA_GEN_ID, Data: []byte{1, 2}}).Data,
	} {
		if g, err := decodeGen(data); !errors.Is(err, errMalformed) {
			t.Errorf("decodeGen of %s = %+v, %v; want a malformed message error", name, g, err)
		}
	}
	if _, _, _, err := decodeObjectTable(nftMsg(unix.NFT_MSG_NEWCHAIN, unix.NFPROTO_INET, 1,
		str(unix.NFTA_CHAIN_TABLE, TableName), str(unix.NFTA_CHAIN_TABLE, "other")).Data); !errors.Is(err, errMalformed) {
		t.Errorf("decodeObjectTable of a message naming two tables: %v, want a malformed message error", err)
	}
}

func TestDecodeGen(t *testing.T) {
	m := nftMsg(unix.NFT_MSG_NEWGEN, unix.AF_UNSPEC, 0,
		be32(unix.NFTA_GEN_ID, 0xfffffffe), be32(unix.NFTA_GEN_PROC_PID, 4250), str(unix.NFTA_GEN_PROC_NAME, "kube-proxy"))
	g, err := decodeGen(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if want := (genInfo{id: 0xfffffffe, tid: 4250, comm: "kube-proxy"}); g != want {
		t.Errorf("decodeGen = %+v, want %+v", g, want)
	}
}

func TestSplitMessages(t *testing.T) {
	two := datagram(request(1), request(2))
	msgs, err := splitMessages(two)
	if err != nil || len(msgs) != 2 || msgs[1].Header.Sequence != 2 {
		t.Fatalf("splitMessages of two messages = %d messages, %v", len(msgs), err)
	}
	for name, b := range map[string][]byte{
		"cut in the second message": two[:len(two)-4],
		"cut in a header":           append(slices.Clone(two), 1, 2, 3),
		"length below a header":     func() []byte { b := slices.Clone(two); binary.NativeEndian.PutUint32(b[0:4], 8); return b }(),
		"length past the datagram":  func() []byte { b := slices.Clone(two); binary.NativeEndian.PutUint32(b[0:4], 1<<31); return b }(),
		"length not aligned":        func() []byte { b := slices.Clone(two); binary.NativeEndian.PutUint32(b[0:4], 17); return b }(),
	} {
		msgs, err := splitMessages(b)
		if !errors.Is(err, errMalformed) {
			t.Errorf("%s: splitMessages = %d messages, %v; want a malformed message error", name, len(msgs), err)
		}
	}
}

// testBatch is a batch of three messages, sent with sequence numbers 11 to
// 13 between the batch's delimiters 10 and 14.
func testBatch() (b *batch, bySeq map[uint32]int, lastSeq uint32) {
	b = &batch{what: []string{"table inet edgefw", `rule "ssh" in chain input`, `set "blocklist"`}}
	return b, map[uint32]int{10: -1, 11: 0, 12: 1, 13: 2, 14: -1}, 13
}

func TestAwaitOutcome(t *testing.T) {
	refused := ackOpts{errno: unix.ENOENT, capped: true, msg: "Could not process rule: No such file or directory", offs: 36}
	for _, tc := range []struct {
		name  string
		reads []fakeRead
		// want is the KernelError expected, or nil; wantErr an error the
		// outcome must match otherwise (nil: success).
		want    *KernelError
		wantErr error
	}{
		{name: "acknowledged", reads: datagrams([]netlink.Message{ackFor(request(13), ackOpts{capped: true})})},
		{name: "acknowledged after other replies",
			reads: datagrams([]netlink.Message{nftMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_INET, 12)},
				[]netlink.Message{ackFor(request(99), ackOpts{capped: true}), ackFor(request(13), ackOpts{capped: true})})},
		{name: "a message refused, with extended ack",
			reads: datagrams([]netlink.Message{ackFor(request(12), refused), ackFor(request(13), ackOpts{capped: true})}),
			want:  &KernelError{What: `rule "ssh" in chain input`, Errno: unix.ENOENT, Message: refused.msg, Offset: 36}},
		{name: "two refused: the first names the failure",
			reads: datagrams([]netlink.Message{ackFor(request(11), ackOpts{errno: unix.EEXIST, capped: true})},
				[]netlink.Message{ackFor(request(12), refused)}, []netlink.Message{ackFor(request(13), ackOpts{errno: unix.ENOENT, capped: true})}),
			want: &KernelError{What: "table inet edgefw", Errno: unix.EEXIST}},
		{name: "refused, and the last reply lost",
			reads: datagrams([]netlink.Message{ackFor(request(12), refused)}),
			want:  &KernelError{What: `rule "ssh" in chain input`, Errno: unix.ENOENT, Message: refused.msg, Offset: 36}},
		{name: "the batch refused",
			reads: datagrams([]netlink.Message{ackFor(request(10), ackOpts{errno: unix.EPERM, capped: true})}),
			want:  &KernelError{What: "the transaction", Errno: unix.EPERM}},
		{name: "an unknown request refused",
			reads: datagrams([]netlink.Message{ackFor(request(77), ackOpts{errno: unix.EINVAL, capped: true})}),
			want:  &KernelError{What: "the transaction", Errno: unix.EINVAL}},
		{name: "no reply: the acknowledgement is lost", wantErr: os.ErrDeadlineExceeded},
		{name: "the socket overflowed", reads: []fakeRead{{err: unix.ENOBUFS}}, wantErr: unix.ENOBUFS},
		{name: "refused, then the socket overflowed",
			reads: append(datagrams([]netlink.Message{ackFor(request(11), refused)}), fakeRead{err: unix.ENOBUFS}),
			want:  &KernelError{What: "table inet edgefw", Errno: unix.ENOENT, Message: refused.msg, Offset: 36}},
		{name: "garbled", reads: []fakeRead{{data: datagram(request(13))[:20]}}, wantErr: errMalformed},
		{name: "a garbled acknowledgement", reads: []fakeRead{{data: func() []byte {
			b := datagram(ackFor(request(13), ackOpts{capped: true, msg: "x"}))
			binary.NativeEndian.PutUint16(b[nlmsgHeaderLen+20:], 100)
			return b
		}()}}, wantErr: errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, bySeq, last := testBatch()
			err := b.awaitOutcome(&fakeSocket{reads: tc.reads}, bySeq, last)
			if tc.want != nil {
				var ke *KernelError
				if !errors.As(err, &ke) {
					t.Fatalf("awaitOutcome = %v, want %v", err, tc.want)
				}
				if diff := cmp.Diff(tc.want, ke); diff != "" {
					t.Errorf("awaitOutcome (-want +got):\n%s", diff)
				}
				return
			}
			if tc.wantErr == nil && err != nil || !errors.Is(err, tc.wantErr) {
				t.Errorf("awaitOutcome = %v, want %v", err, tc.wantErr)
			}
			var ke *KernelError
			if errors.As(err, &ke) {
				t.Errorf("awaitOutcome = %v: a kernel error when none was sent", err)
			}
		})
	}
}

var (
	addr1 = []byte{192, 0, 2, 0}
	addr2 = []byte{192, 0, 2, 128}
	addr3 = []byte{198, 51, 100, 0}
)

func TestReadSetElements(t *testing.T) {
	const seq = 5
	part := func(flags netlink.HeaderFlags, elems ...netlink.Attribute) netlink.Message {
		m := elemsMsg(seq, TableName, "trusted", elems...)
		m.Header.Flags |= flags
		return m
	}
	dump := func(flags netlink.HeaderFlags) []fakeRead {
		msgs, err := nltest.Multipart([]netlink.Message{
			part(flags, elemAttr(addr1, false), elemAttr(addr2, true)),
			part(flags, elemAttr(addr3, false)),
			{Header: netlink.Header{Sequence: seq}, Data: make([]byte, 4)},
		})
		if err != nil {
			t.Fatal(err)
		}
		// Two datagrams, the second with a reply to someone else first.
		return datagrams(msgs[:1], append([]netlink.Message{elemsMsg(seq+1, "other", "x", elemAttr(addr1, false))}, msgs[1:]...))
	}
	want := []nftables.SetElement{{Key: addr1}, {Key: addr2, IntervalEnd: true}, {Key: addr3}}
	for _, tc := range []struct {
		name    string
		reads   []fakeRead
		want    []nftables.SetElement
		wantErr error
	}{
		{name: "multi-part dump ending with done", reads: dump(0), want: want},
		// A commit to any table marks a dump interrupted; commits to ours
		// are the read's to catch (see readSetElements).
		{name: "interrupted dump", reads: dump(netlink.DumpInterrupted), want: want},
		{name: "empty set", reads: datagrams([]netlink.Message{{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: seq}, Data: make([]byte, 4)}})},
		{name: "ended by an acknowledgement",
			reads: datagrams([]netlink.Message{part(0, elemAttr(addr1, false)), ackFor(request(seq), ackOpts{capped: true})}),
			want:  want[:1]},
		{name: "no such set", reads: datagrams([]netlink.Message{ackFor(request(seq), ackOpts{errno: unix.ENOENT, capped: true})}), wantErr: unix.ENOENT},
		{name: "dump failed", reads: datagrams([]netlink.Message{{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: seq},
			Data: errnoBytes(unix.EMSGSIZE)}}), wantErr: unix.EMSGSIZE},
		{name: "no reply", wantErr: os.ErrDeadlineExceeded},
		{name: "lost the end", reads: dump(0)[:1], wantErr: os.ErrDeadlineExceeded},
		{name: "the socket overflowed", reads: []fakeRead{{err: unix.ENOBUFS}}, wantErr: unix.ENOBUFS},
		{name: "elements of another set", reads: datagrams([]netlink.Message{elemsMsg(seq, TableName, "other", elemAttr(addr1, false))}), wantErr: errMalformed},
		{name: "elements of another table", reads: datagrams([]netlink.Message{elemsMsg(seq, "other", "trusted", elemAttr(addr1, false))}), wantErr: errMalformed},
		{name: "truncated", reads: []fakeRead{{data: datagram(part(0, elemAttr(addr1, false)))[:40]}}, wantErr: errMalformed},
		{name: "garbled element", reads: datagrams([]netlink.Message{part(0, netlink.Attribute{Type: unix.NFTA_LIST_ELEM | netlink.Nested, Data: []byte{9, 0, 1, 0}})}), wantErr: errMalformed},
		{name: "element list past 64 KiB, wrapped into an element", reads: datagrams([]netlink.Message{wrappedElements(seq, 4096)}), wantErr: errMalformed},
		{name: "element list past 64 KiB, wrapped to a whole element", reads: datagrams([]netlink.Message{wrappedElements(seq, 4097)}), wantErr: errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readSetElements(&fakeSocket{reads: tc.reads}, seq, "trusted")
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("readSetElements = %d elements, %v; want %v", len(got), err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("readSetElements (-want +got):\n%s", diff)
			}
		})
	}
}

// wrappedElements is a reply holding n elements in one element list, as
// an encoder that lets the 16-bit attribute length wrap writes it past
// 64 KiB (mdlayher/netlink's MarshalAttributes, and so google/nftables).
// The first element takes 24 bytes, the others 16: with 4096 elements the
// wrapped length ends inside the first, with 4097 just after it.
func wrappedElements(seq uint32, n int) netlink.Message {
	elems := make([]netlink.Attribute, n)
	for i := range elems {
		elems[i] = elemAttr([]byte{10, byte(i >> 8), byte(i), 0}, i == 0)
	}
	m := elemsMsg(seq, TableName, "trusted", elems...)
	if len(m.Data) <= 1<<16 {
		panic("the element list does not pass 64 KiB")
	}
	return m
}

func TestDecodeObjectTable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		m      netlink.Message
		family uint8
		table  string
		named  bool
	}{
		{"table", nftMsg(unix.NFT_MSG_DELTABLE, unix.NFPROTO_INET, 0, str(unix.NFTA_TABLE_NAME, TableName)), unix.NFPROTO_INET, TableName, true},
		{"rule", nftMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_IPV4, 0, str(unix.NFTA_RULE_TABLE, "nat"), str(unix.NFTA_RULE_CHAIN, "postrouting")), unix.NFPROTO_IPV4, "nat", true},
		{"set elements", elemsMsg(0, TableName, "blocklist-v4", elemAttr(addr1, false)), unix.NFPROTO_INET, TableName, true},
		{"no table", nftMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_INET, 0, str(unix.NFTA_RULE_CHAIN, "input")), unix.NFPROTO_INET, "", false},
	} {
		family, table, named, err := decodeObjectTable(tc.m.Data)
		if err != nil || family != tc.family || table != tc.table || named != tc.named {
			t.Errorf("%s: decodeObjectTable = %d, %q, %v, %v; want %d, %q, %v", tc.name, family, table, named, err, tc.family, tc.table, tc.named)
		}
	}
}
