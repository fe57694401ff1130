package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// dumpBufferSize is the buffer a set's elements are read with. The kernel
// sizes each message of a dump by the reader's last buffer (up to 32 KiB),
// and resumes an interval set's dump by walking its tree from the start:
// with the page-sized buffer google/nftables reads with, a 100,000-range
// set took 20 to 40 s to read, and about eight times less with this one.
const dumpBufferSize = 1 << 20

// dumpSetElements reads the elements of a named set of table inet edgefw
// in the namespace netns (0: the caller's).
func dumpSetElements(netns int, set string) ([]nftables.SetElement, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	defer c.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(TableName + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	req, err := c.Send(netlink.Message{
		Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETSETELEM), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, fmt.Errorf("request elements of set %s: %w", set, err)
	}
	sock, err := newNetlinkSocket(c)
	if err != nil {
		return nil, err
	}
	elems, err := readSetElements(sock, req.Header.Sequence, set)
	if err != nil {
		return nil, fmt.Errorf("read elements of set %s: %w", set, err)
	}
	return elems, nil
}

// dumpReplyWait bounds the wait for each part of a dump: the kernel
// answers at once, however long the whole dump takes.
const dumpReplyWait = 30 * time.Second

// readSetElements reads the replies to the element dump request seq of
// set, up to the NLMSG_DONE that ends them.
//
// A dump the kernel marks interrupted (NLM_F_DUMP_INTR: the ruleset
// generation moved while it ran) is read to its end all the same: any
// commit moves the generation, and on a host where other tools commit
// every few milliseconds a large set's dump would never end uninterrupted.
// Whether a commit touched our table meanwhile is the Applier's read's to
// tell, from nftables notifications (see tableWatch).
func readSetElements(sock datagramReader, seq uint32, set string) ([]nftables.SetElement, error) {
	var out []nftables.SetElement
	err := readReplies(sock, make([]byte, dumpBufferSize), seq, func(m netlink.Message) error {
		if m.Header.Type != nftType(unix.NFT_MSG_NEWSETELEM) {
			return nil
		}
		var err error
		out, err = decodeSetElems(out, m.Data, set)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Set elements are encoded here, straight from ranges into the bytes of
// their messages, rather than through google/nftables: its SetElement per
// interval end and its attribute values per element took several times
// the memory of the messages themselves (100 MiB at 100,000 CIDRs), and a
// message of its holds a fixed count of elements, whatever their size.

// maxElemListBytes bounds the element list attribute of one message. Its
// length field is 16 bits: past 64 KiB it wraps, and the kernel silently
// takes a fraction of the elements (LAB.md).
const maxElemListBytes = 64000

// Sizes of the attributes of one interval element: an NFTA_LIST_ELEM
// holding the key (NFTA_SET_ELEM_KEY, a nested NFTA_DATA_VALUE) and, for
// the end of a range, NFTA_SET_ELEM_FLAGS.
const (
	nlaHeaderLen  = 4
	elemFlagsLen  = nlaHeaderLen + 4
	elemStartBase = 3 * nlaHeaderLen // list element, key, value
)

func elemLen(keyLen int, end bool) int {
	n := elemStartBase + keyLen
	if end {
		n += elemFlagsLen
	}
	return n
}

// rangeElemsLen is the size of a range's elements: its start and, unless
// it runs to the family's last address, the end one past it.
func rangeElemsLen(r AddrRange) int {
	k := r.From.BitLen() / 8
	n := elemLen(k, false)
	if r.To.Next().IsValid() {
		n += elemLen(k, true)
	}
	return n
}

// rangeMessages encodes ranges as element messages of type msg
// (NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM) for set of table inet
// edgefw, the set named by its transaction ID too when it has one. Each
// message holds as many ranges as fit maxElemListBytes, in ascending
// order, each as its start element, then its end element (flagged
// NFT_SET_ELEM_INTERVAL_END, one past the range) as nft sends them.
func rangeMessages(msg int, set string, setID uint32, rs []AddrRange) []netlink.Message {
	var out []netlink.Message
	for len(rs) > 0 {
		n, size := 0, 0
		for n < len(rs) {
			l := rangeElemsLen(rs[n])
			if size+l > maxElemListBytes {
				break
			}
			size += l
			n++
		}
		out = append(out, rangeMessage(msg, set, setID, rs[:n], size))
		rs = rs[n:]
	}
	return out
}

func rangeMessage(msg int, set string, setID uint32, rs []AddrRange, size int) netlink.Message {
	header := nfgenmsgLen + attrLen(len(TableName)+1) + attrLen(len(set)+1) + nlaHeaderLen
	if setID != 0 {
		header += attrLen(4)
	}
	b := make([]byte, 0, header+size)
	b = append(b, unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0)
	b = appendStringAttr(b, unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	b = appendStringAttr(b, unix.NFTA_SET_ELEM_LIST_SET, set)
	if setID != 0 {
		b = appendAttrHeader(b, unix.NFTA_SET_ELEM_LIST_SET_ID, 4)
		b = binary.BigEndian.AppendUint32(b, setID)
	}
	b = appendAttrHeader(b, unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED, size)
	for _, r := range rs {
		b = appendElem(b, r.From, false)
		if next := r.To.Next(); next.IsValid() {
			b = appendElem(b, next, true)
		}
	}
	return netlink.Message{
		Header: netlink.Header{Type: nftType(msg), Flags: netlink.Request | netlink.Create},
		Data:   b,
	}
}

func appendElem(b []byte, key netip.Addr, end bool) []byte {
	k := key.BitLen() / 8
	b = appendAttrHeader(b, unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED, elemLen(k, end)-nlaHeaderLen)
	if end {
		b = appendAttrHeader(b, unix.NFTA_SET_ELEM_FLAGS, 4)
		b = binary.BigEndian.AppendUint32(b, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	b = appendAttrHeader(b, unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED, 2*nlaHeaderLen+k-nlaHeaderLen)
	b = appendAttrHeader(b, unix.NFTA_DATA_VALUE, k)
	if key.Is4() {
		a := key.As4()
		return append(b, a[:]...)
	}
	a := key.As16()
	return append(b, a[:]...)
}

// attrLen is the aligned size of an attribute with a payload of n bytes.
func attrLen(n int) int { return int(nlmsgAlign(uint32(nlaHeaderLen + n))) }

func appendAttrHeader(b []byte, typ uint16, payload int) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(nlaHeaderLen+payload))
	return binary.NativeEndian.AppendUint16(b, typ)
}

// appendStringAttr appends a NUL-terminated string attribute, padded.
func appendStringAttr(b []byte, typ uint16, s string) []byte {
	b = appendAttrHeader(b, typ, len(s)+1)
	b = append(b, s...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
