package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The messages of what a large ruleset has many of, rules, their counters
// and regular chains, are encoded here rather than by google/nftables'
// Conn: that one marshals every attribute into a slice of its own,
// several times over, and its queue is only read by a Flush, which the
// batch pays per op (see batch.take). For 10,000 rules that was most of
// the encoding. The bytes are the same (TestRuleMessageAsGoogle).

// Header types of the messages.
const (
	newRuleType  = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE)
	newObjType   = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWOBJ)
	newChainType = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWCHAIN)
)

// counterData is the data of a new counter: zero bytes and packets.
var counterData = func() []byte {
	b, err := expr.MarshalExprData(byte(table.Family), &expr.Counter{})
	if err != nil {
		panic(err) // marshalling two zero attributes cannot fail
	}
	return b
}()

// counterMessage encodes adding a named counter, from zero.
func counterMessage(name string) netlink.Message {
	b := make([]byte, 0, 4+16+len(name)+8+8+len(counterData)+4)
	b = append(b, byte(table.Family), unix.NFNETLINK_V0, 0, 0)
	b = appendStringAttr(b, unix.NFTA_OBJ_TABLE, table.Name)
	b = appendStringAttr(b, unix.NFTA_OBJ_NAME, name)
	b = appendAttr(b, unix.NFTA_OBJ_TYPE, binary.BigEndian.AppendUint32(nil, unix.NFT_OBJECT_COUNTER))
	b = appendAttr(b, unix.NLA_F_NESTED|unix.NFTA_OBJ_DATA, counterData)
	return netlink.Message{Header: netlink.Header{Type: newObjType, Flags: netlink.Request | netlink.Acknowledge | netlink.Create}, Data: b}
}

// regularChainMessage encodes adding a regular chain.
func regularChainMessage(name string) netlink.Message {
	b := make([]byte, 0, 4+16+len(name)+8)
	b = append(b, byte(table.Family), unix.NFNETLINK_V0, 0, 0)
	b = appendStringAttr(b, unix.NFTA_CHAIN_TABLE, table.Name)
	b = appendStringAttr(b, unix.NFTA_CHAIN_NAME, name)
	return netlink.Message{Header: netlink.Header{Type: newChainType, Flags: netlink.Request | netlink.Acknowledge | netlink.Create}, Data: b}
}

// ruleMessage encodes adding a rule of table inet edgefw to chain: at the
// end, or before the rule with handle position when it is not 0.
func ruleMessage(chain string, exprs []expr.Any, udata []byte, position uint64) (netlink.Message, error) {
	var list []byte
	for _, e := range exprs {
		var data []byte
		if ref, ok := e.(*counterMapRef); ok {
			data = ref.data()
		} else {
			var err error
			if data, err = expr.Marshal(byte(table.Family), e); err != nil {
				return netlink.Message{}, err
			}
		}
		list = appendAttr(list, unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, data)
	}
	if len(list) > 0xffff-unix.SizeofNlAttr {
		return netlink.Message{}, fmt.Errorf("%d bytes of expressions do not fit a netlink attribute", len(list))
	}
	// struct nfgenmsg: family, version, resource id (0).
	b := make([]byte, 0, 4+16+len(chain)+8+len(list)+len(udata)+24)
	b = append(b, byte(table.Family), unix.NFNETLINK_V0, 0, 0)
	b = appendStringAttr(b, unix.NFTA_RULE_TABLE, table.Name)
	b = appendStringAttr(b, unix.NFTA_RULE_CHAIN, chain)
	b = appendAttr(b, unix.NLA_F_NESTED|unix.NFTA_RULE_EXPRESSIONS, list)
	if udata != nil {
		b = appendAttr(b, unix.NFTA_RULE_USERDATA, udata)
	}
	flags := netlink.Request | netlink.Acknowledge | netlink.Create
	if position != 0 {
		b = appendAttr(b, unix.NFTA_RULE_POSITION, binary.BigEndian.AppendUint64(nil, position))
	} else {
		flags |= unix.NLM_F_APPEND
	}
	return netlink.Message{Header: netlink.Header{Type: newRuleType, Flags: flags}, Data: b}, nil
}

// appendAttr appends a netlink attribute: its length and type in host
// byte order, its data, and padding to 4 bytes.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofNlAttr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// A direct map (see dispatch.go) counts through an anonymous object map
// from ports to named counters. google/nftables v0.3.0 knows neither
// object maps nor the objref expression that looks one up, so both are
// encoded here, as nft sends `counter name tcp dport map { 22 : "ssh" }`.
const (
	newSetType     = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSET)
	newSetElemType = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)
	// counterMapName is what the kernel names an anonymous object map
	// after, as nft names them.
	counterMapName = "__objmap%d"
	// nftTypeInetService is nft's data type of a port (inet_service).
	nftTypeInetService = 13
)

// counterMapRef counts a packet in the counter its port, in register 1,
// maps to in the anonymous object map the rule's transaction adds first.
// ruleMessage encodes it; the embedded expr.Any is nil and never called:
// it only lets the reference travel in a rule's expression list.
type counterMapRef struct {
	expr.Any
	setID uint32
}

func (r *counterMapRef) data() []byte {
	var b []byte
	b = appendAttrHeader(b, unix.NFTA_OBJREF_SET_SREG, 4)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = appendStringAttr(b, unix.NFTA_OBJREF_SET_NAME, counterMapName)
	b = appendAttrHeader(b, unix.NFTA_OBJREF_SET_ID, 4)
	b = binary.BigEndian.AppendUint32(b, r.setID)
	out := appendStringAttr(nil, unix.NFTA_EXPR_NAME, "objref")
	return appendAttr(out, unix.NLA_F_NESTED|unix.NFTA_EXPR_DATA, b)
}

// counterMapMessages encodes adding the anonymous object map of a direct
// map's keys, numbered setID in its transaction, and its elements: each
// key's first port maps to its rule's counter, and an end element
// follows where a key ends, as in the verdict map (dispatchElements).
func counterMapMessages(setID uint32, es []DispatchElement) []netlink.Message {
	type elem struct {
		port    uint16
		counter string // "": the end of an interval
	}
	var elems []elem
	forEachInterval(es, func(from uint16, e *DispatchElement) {
		elems = append(elems, elem{from, e.Rule.Counter})
	}, func(end uint16) {
		elems = append(elems, elem{end, ""})
	})
	u32 := func(b []byte, typ uint16, v uint32) []byte {
		return binary.BigEndian.AppendUint32(appendAttrHeader(b, typ, 4), v)
	}
	b := []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}
	b = appendStringAttr(b, unix.NFTA_SET_TABLE, TableName)
	b = appendStringAttr(b, unix.NFTA_SET_NAME, counterMapName)
	b = u32(b, unix.NFTA_SET_FLAGS, unix.NFT_SET_ANONYMOUS|unix.NFT_SET_CONSTANT|unix.NFT_SET_INTERVAL|unix.NFT_SET_OBJECT)
	b = u32(b, unix.NFTA_SET_KEY_TYPE, nftTypeInetService)
	b = u32(b, unix.NFTA_SET_KEY_LEN, 2)
	b = u32(b, unix.NFTA_SET_ID, setID)
	b = u32(b, unix.NFTA_SET_OBJ_TYPE, unix.NFT_OBJECT_COUNTER)
	// nft gives a constant set's number of elements, which sizes it.
	b = appendAttr(b, unix.NLA_F_NESTED|unix.NFTA_SET_DESC, u32(nil, unix.NFTA_SET_DESC_SIZE, uint32(len(elems))))
	out := []netlink.Message{{Header: netlink.Header{Type: newSetType, Flags: netlink.Request | netlink.Acknowledge | netlink.Create}, Data: b}}
	for len(elems) > 0 {
		var list []byte
		n := 0
		for ; n < len(elems) && len(list) < maxElemListBytes-256; n++ {
			var e []byte
			if elems[n].counter == "" {
				e = u32(e, unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END)
			}
			e = appendAttr(e, unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_KEY, appendAttr(nil, unix.NFTA_DATA_VALUE, be16(elems[n].port)))
			if elems[n].counter != "" {
				e = appendStringAttr(e, unix.NFTA_SET_ELEM_OBJREF, elems[n].counter)
			}
			list = appendAttr(list, unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, e)
		}
		m := []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}
		m = appendStringAttr(m, unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
		m = appendStringAttr(m, unix.NFTA_SET_ELEM_LIST_SET, counterMapName)
		m = u32(m, unix.NFTA_SET_ELEM_LIST_SET_ID, setID)
		m = appendAttr(m, unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_LIST_ELEMENTS, list)
		out = append(out, netlink.Message{Header: netlink.Header{Type: newSetElemType, Flags: netlink.Request | netlink.Acknowledge | netlink.Create}, Data: m})
		elems = elems[n:]
	}
	return out
}

// addCounterMap queues the object map of a direct map's keys, to be sent
// with the messages of the op being encoded (see batch.take), and
// returns the reference that looks it up.
func (b *batch) addCounterMap(es []DispatchElement) *counterMapRef {
	b.setIDs++
	b.own = append(b.own, counterMapMessages(b.setIDs, es)...)
	return &counterMapRef{setID: b.setIDs}
}
