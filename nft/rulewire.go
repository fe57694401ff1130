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
		data, err := expr.Marshal(byte(table.Family), e)
		if err != nil {
			return netlink.Message{}, err
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
