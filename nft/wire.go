package nft

// Netlink decoding. Every reply and notification this package reads from
// the kernel itself, rather than through google/nftables, is decoded here,
// through mdlayher/netlink's message and attribute decoders. Nothing here
// does I/O: wire_test.go feeds it constructed replies, and FuzzDecode
// anything at all. A message that cannot be decoded is an error, never a
// guess and never a panic.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("malformed netlink message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

const (
	nlmsgHeaderLen = 16
	// nfgenmsgLen is struct nfgenmsg: family, version, resource id.
	nfgenmsgLen = 4
)

// nftType is the netlink message type of an nftables message.
func nftType(msg int) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msg)
}

// isNftables reports whether a message belongs to the nftables subsystem,
// and which nftables message it is.
func isNftables(t netlink.HeaderType) (msg int, ok bool) {
	return int(t & 0xff), t>>8 == unix.NFNL_SUBSYS_NFTABLES
}

// splitMessages splits one datagram into its netlink messages. The kernel
// writes whole, aligned messages; anything else is garbled, and the
// messages before it are returned with the error.
func splitMessages(b []byte) ([]netlink.Message, error) {
	var out []netlink.Message
	for len(b) > 0 {
		if len(b) < nlmsgHeaderLen {
			return out, malformed("%d bytes after the last message", len(b))
		}
		// The header's length says where the message ends; the rest of it
		// is decoded by netlink.Message, which also refuses lengths that
		// are not aligned.
		l := binary.NativeEndian.Uint32(b[0:4])
		if l < nlmsgHeaderLen || uint64(l) > uint64(len(b)) {
			return out, malformed("message length %d with %d bytes left", l, len(b))
		}
		var m netlink.Message
		if err := m.UnmarshalBinary(b[:l]); err != nil {
			return out, malformed("message length %d: %v", l, err)
		}
		out = append(out, m)
		b = b[l:]
	}
	return out, nil
}

// nfgen splits the body of an nftables message into its nfgenmsg family
// and its attributes.
func nfgen(data []byte) (family uint8, attrs *netlink.AttributeDecoder, err error) {
	if len(data) < nfgenmsgLen {
		return 0, nil, malformed("nftables message of %d bytes", len(data))
	}
	ad, err := netlink.NewAttributeDecoder(data[nfgenmsgLen:])
	if err != nil {
		return 0, nil, malformed("nftables attributes: %v", err)
	}
	ad.ByteOrder = binary.BigEndian
	return data[0], ad, nil
}

// An ack is a decoded NLMSG_ERROR: an acknowledgement when errno is 0,
// the kernel's refusal of a request otherwise.
type ack struct {
	errno syscall.Errno
	// seq is the sequence number of the request answered, which names it
	// among the messages of a batch.
	seq uint32
	// message and offset are the extended acknowledgement, if the kernel
	// gave one: its text (NLMSGERR_ATTR_MSG) and the byte offset, from the
	// start of the request's header, of the attribute it refused
	// (NLMSGERR_ATTR_OFFS; 0 when not given).
	message string
	offset  uint32
}

// decodeAck decodes an NLMSG_ERROR message: an int errno (negative, or 0
// for an acknowledgement), the request's header, then the request's body
// unless the socket asked for capped acknowledgements (NLM_F_CAPPED), then
// extended-ack attributes if flagged (NLM_F_ACK_TLVS); see
// include/uapi/linux/netlink.h, struct nlmsgerr.
//
// mdlayher/netlink's Conn.Receive cannot be used for this: it looks for
// the attributes after as many bytes as the request's header says the
// request had, also when the acknowledgement is capped, and so turns the
// kernel's refusal of any request bigger than its extended ack into a
// "short error message" without the errno.
func decodeAck(m netlink.Message) (ack, error) {
	if m.Header.Type != netlink.Error {
		return ack{}, malformed("message type %d is not an error", m.Header.Type)
	}
	const errnoLen = 4
	if len(m.Data) < errnoLen+nlmsgHeaderLen {
		return ack{}, malformed("error message of %d bytes", len(m.Data))
	}
	code := int32(binary.NativeEndian.Uint32(m.Data[0:errnoLen]))
	if code > 0 {
		return ack{}, malformed("positive error code %d", code)
	}
	req := m.Data[errnoLen : errnoLen+nlmsgHeaderLen]
	a := ack{errno: syscall.Errno(-code), seq: binary.NativeEndian.Uint32(req[8:12])}
	if m.Header.Flags&netlink.AcknowledgeTLVs == 0 {
		return a, nil
	}
	off := errnoLen + nlmsgHeaderLen
	if m.Header.Flags&netlink.Capped == 0 {
		reqLen := binary.NativeEndian.Uint32(req[0:4])
		if reqLen < nlmsgHeaderLen || uint64(reqLen) > uint64(len(m.Data)-errnoLen) {
			return ack{}, malformed("error message of %d bytes quotes a request of %d", len(m.Data), reqLen)
		}
		off = errnoLen + int(nlmsgAlign(reqLen))
		if off > len(m.Data) {
			// The request's padding was left off after its last byte.
			off = len(m.Data)
		}
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[off:])
	if err != nil {
		return ack{}, malformed("extended acknowledgement: %v", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NLMSGERR_ATTR_MSG:
			a.message = ad.String()
		case unix.NLMSGERR_ATTR_OFFS:
			a.offset = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return ack{}, malformed("extended acknowledgement: %v", err)
	}
	return a, nil
}

// decodeDone decodes the NLMSG_DONE that ends a dump: the kernel puts the
// dump's outcome in it as an int errno (netlink_dump_done), 0 when the
// dump is complete.
func decodeDone(m netlink.Message) (syscall.Errno, error) {
	if len(m.Data) == 0 {
		return 0, nil
	}
	if len(m.Data) < 4 {
		return 0, malformed("done message of %d bytes", len(m.Data))
	}
	code := int32(binary.NativeEndian.Uint32(m.Data[0:4]))
	if code > 0 {
		return 0, malformed("positive error code %d", code)
	}
	return syscall.Errno(-code), nil
}

// A genInfo is a decoded NFT_MSG_NEWGEN: the reply to NFT_MSG_GETGEN, or
// the last notification of a commit.
type genInfo struct {
	// id is the ruleset generation (NFTA_GEN_ID).
	id uint32
	// tid and comm name the thread that committed (NFTA_GEN_PROC_PID,
	// task_pid_nr: a thread, not its process) and its command name
	// (NFTA_GEN_PROC_NAME, cut at 15 bytes); zero and "" when the kernel
	// did not say.
	tid  uint32
	comm string
}

// decodeGen decodes the body of an NFT_MSG_NEWGEN message.
func decodeGen(data []byte) (genInfo, error) {
	_, ad, err := nfgen(data)
	if err != nil {
		return genInfo{}, err
	}
	var g genInfo
	hasID := false
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_GEN_ID:
			g.id, hasID = ad.Uint32(), true
		case unix.NFTA_GEN_PROC_PID:
			g.tid = ad.Uint32()
		case unix.NFTA_GEN_PROC_NAME:
			g.comm = ad.String()
		}
	}
	if err := ad.Err(); err != nil {
		return genInfo{}, malformed("generation: %v", err)
	}
	if !hasID {
		return genInfo{}, malformed("generation message without NFTA_GEN_ID")
	}
	return g, nil
}

// objectTableAttr is the attribute that names the table in every nftables
// object message: NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE,
// NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE and
// NFTA_FLOWTABLE_TABLE are all 1.
const objectTableAttr = 1

// decodeObjectTable returns the family and the table an nftables object
// message (a table, chain, rule, set, set element list, object or
// flowtable, added or deleted) is about; named is false when it names none.
//
// Set element messages name their table like the others: the kernel's
// nf_tables_fill_setelem_info, which builds both dump replies and
// notifications, puts the table's family in nfgenmsg and its name in
// NFTA_SET_ELEM_LIST_TABLE (TestWatchSeesElementChanges shows it).
// google/nftables' monitor drops the table when it decodes element
// notifications into []SetElement, which is why edgefw once believed they
// named none.
func decodeObjectTable(data []byte) (family uint8, table string, named bool, err error) {
	family, ad, err := nfgen(data)
	if err != nil {
		return 0, "", false, err
	}
	for ad.Next() {
		if ad.Type() == objectTableAttr {
			if named {
				return 0, "", false, malformed("two table attributes")
			}
			table, named = ad.String(), true
		}
	}
	if err := ad.Err(); err != nil {
		return 0, "", false, malformed("object: %v", err)
	}
	return family, table, named, nil
}

// decodeSetElems decodes one NFT_MSG_NEWSETELEM of a dump of the elements
// of set in table inet edgefw, and appends its elements to out.
//
// A message must name that table and set once and hold one element list.
// The checks are what keeps an attribute longer than 64 KiB from being
// misread: its 16-bit length wraps (LAB.md: google/nftables writes such
// attributes without a word), the decoder then sees a short element list
// followed by the rest of the list read as attributes of the message, and
// those, NFTA_LIST_ELEM being 1 like NFTA_SET_ELEM_LIST_TABLE, name the
// table again.
func decodeSetElems(out []nftables.SetElement, data []byte, set string) ([]nftables.SetElement, error) {
	err := decodeElemList(data, set, func(el *netlink.AttributeDecoder) {
		out = append(out, decodeSetElem(el))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// An objMapElem is an element of an object map: its key and the name of
// the object it maps to ("" for the end of an interval).
type objMapElem struct {
	key []byte
	obj string
}

// decodeObjMapElems decodes one NFT_MSG_NEWSETELEM of a dump of the
// elements of the object map set (anonymous: a direct map's counters) in
// table inet edgefw, and appends its elements to out; it checks the
// message as decodeSetElems does.
func decodeObjMapElems(out []objMapElem, data []byte, set string) ([]objMapElem, error) {
	err := decodeElemList(data, set, func(el *netlink.AttributeDecoder) {
		var e objMapElem
		for el.Next() {
			switch el.Type() {
			case unix.NFTA_SET_ELEM_KEY:
				e.key = elemKey(el)
			case unix.NFTA_SET_ELEM_OBJREF:
				e.obj = el.String()
			}
		}
		out = append(out, e)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decodeElemList checks an element list message of set and passes each
// of its elements' attributes to elem.
func decodeElemList(data []byte, set string, elem func(*netlink.AttributeDecoder)) error {
	family, ad, err := nfgen(data)
	if err != nil {
		return err
	}
	if family != unix.NFPROTO_INET {
		return malformed("elements of family %d", family)
	}
	var table, name string
	var seen [unix.NFTA_SET_ELEM_LIST_ELEMENTS + 1]bool
	for ad.Next() {
		t := ad.Type()
		if t > unix.NFTA_SET_ELEM_LIST_UNSPEC && t <= unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			if seen[t] {
				return malformed("attribute %d twice in an element list", t)
			}
			seen[t] = true
		}
		switch t {
		case unix.NFTA_SET_ELEM_LIST_TABLE:
			table = ad.String()
		case unix.NFTA_SET_ELEM_LIST_SET:
			name = ad.String()
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					if list.Type() != unix.NFTA_LIST_ELEM {
						continue
					}
					list.Nested(func(el *netlink.AttributeDecoder) error {
						elem(el)
						return nil
					})
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return malformed("elements of set %s: %v", set, err)
	}
	if table != TableName || name != set {
		return malformed("elements of set %q of table %q in a dump of set %s of table %s", name, table, set, TableName)
	}
	return nil
}

// decodeSetElem decodes the attributes of one NFTA_LIST_ELEM. An element
// without a key (a catch-all element) is kept with none; the caller
// skips keys that are not addresses.
func decodeSetElem(el *netlink.AttributeDecoder) nftables.SetElement {
	var e nftables.SetElement
	for el.Next() {
		switch el.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			e.Key = elemKey(el)
		case unix.NFTA_SET_ELEM_FLAGS:
			e.IntervalEnd = el.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
		}
	}
	return e
}

// elemKey returns the value of an element's NFTA_SET_ELEM_KEY, whose
// attribute el is at.
func elemKey(el *netlink.AttributeDecoder) []byte {
	var k []byte
	el.Nested(func(key *netlink.AttributeDecoder) error {
		for key.Next() {
			if key.Type() == unix.NFTA_DATA_VALUE {
				k = key.Bytes()
			}
		}
		return nil
	})
	return k
}
