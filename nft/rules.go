package nft

import (
	"fmt"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// dumpRules reads the rules of every chain of table inet edgefw in the
// namespace netns (0: the caller's) in one dump, by chain name in chain
// order. google/nftables asks for one chain's rules at a time: a
// dispatched ruleset of 10,000 rules has as many chains, and its read
// took seconds that way.
func dumpRules(netns int) (map[string][]RuleState, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	defer c.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(TableName + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	req, err := c.Send(netlink.Message{
		Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETRULE), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, fmt.Errorf("request the rules of table inet %s: %w", TableName, err)
	}
	sock, err := newNetlinkSocket(c)
	if err != nil {
		return nil, err
	}
	rules, err := readRules(sock, req.Header.Sequence)
	if err != nil {
		return nil, fmt.Errorf("read the rules of table inet %s: %w", TableName, err)
	}
	return rules, nil
}

// readRules reads the replies to the rule dump request seq up to the
// NLMSG_DONE that ends them. An interrupted dump is read to its end, as
// readSetElements says why.
func readRules(sock datagramReader, seq uint32) (map[string][]RuleState, error) {
	out := map[string][]RuleState{}
	err := readReplies(sock, make([]byte, dumpBufferSize), seq, func(m netlink.Message) error {
		if m.Header.Type != nftType(unix.NFT_MSG_NEWRULE) {
			return nil
		}
		chain, r, err := decodeRule(m.Data)
		if err != nil {
			return err
		}
		out[chain] = append(out[chain], r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decodeRule decodes an NFT_MSG_NEWRULE of table inet edgefw into its
// chain's name and what a plan needs of it: its handle, user data, number
// of expressions and the counters it refers to by name.
func decodeRule(data []byte) (chain string, r RuleState, err error) {
	family, ad, err := nfgen(data)
	if err != nil {
		return "", r, err
	}
	if family != unix.NFPROTO_INET {
		return "", r, malformed("rule of family %d", family)
	}
	var table string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_TABLE:
			table = ad.String()
		case unix.NFTA_RULE_CHAIN:
			chain = ad.String()
		case unix.NFTA_RULE_HANDLE:
			r.Handle = ad.Uint64()
		case unix.NFTA_RULE_USERDATA:
			ud := ad.Bytes()
			r.Hash, r.Counted = string(udataGet(ud, udataHash)), string(udataGet(ud, udataCounted))
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					if list.Type() != unix.NFTA_LIST_ELEM {
						continue
					}
					r.Exprs++
					list.Nested(func(e *netlink.AttributeDecoder) error {
						if name := decodeCounterRef(e); name != "" {
							r.Counters = append(r.Counters, name)
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return "", RuleState{}, malformed("rule: %v", err)
	}
	if table != TableName || chain == "" {
		return "", RuleState{}, malformed("rule of chain %q of table %q in a dump of table %s", chain, table, TableName)
	}
	return chain, r, nil
}

// decodeCounterRef returns the counter an expression refers to by name
// (an objref of type counter), or "". The kernel writes an expression's
// name before its data.
func decodeCounterRef(e *netlink.AttributeDecoder) string {
	var kind, name string
	var typ uint32
	for e.Next() {
		switch e.Type() {
		case unix.NFTA_EXPR_NAME:
			kind = e.String()
		case unix.NFTA_EXPR_DATA:
			if kind != "objref" {
				// Other expressions' attributes are of other types.
				continue
			}
			e.Nested(func(d *netlink.AttributeDecoder) error {
				for d.Next() {
					switch d.Type() {
					case unix.NFTA_OBJREF_IMM_TYPE:
						typ = d.Uint32()
					case unix.NFTA_OBJREF_IMM_NAME:
						name = d.String()
					}
				}
				return nil
			})
		}
	}
	if kind != "objref" || typ != unix.NFT_OBJECT_COUNTER {
		return ""
	}
	return name
}

// udataGet returns the value of type typ in user data of type-length-value
// entries (as nft and google/nftables write them), or nil. Unlike
// google/nftables' userdata.Get it stops at an entry longer than what is
// left instead of panicking: any process can write a rule into our table.
func udataGet(ud []byte, typ userdata.Type) []byte {
	for len(ud) >= 2 {
		n := int(ud[1])
		if len(ud) < 2+n {
			return nil
		}
		if userdata.Type(ud[0]) == typ {
			return ud[2 : 2+n]
		}
		ud = ud[2+n:]
	}
	return nil
}
