package nft

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// dumpRules reads the rules of every chain of table inet edgefw in the
// namespace netns (0: the caller's) in one dump, by chain name in chain
// order. google/nftables asks for one chain's rules at a time: a
// dispatched ruleset of 10,000 rules has as many chains, and its read
// took seconds that way.
//
// A rule that counts through an anonymous object map (a direct map, see
// dispatch.go) names its counters in the map's elements, not in its
// expressions: those maps' elements are dumped after the rules, on the
// same socket, and their counters listed in the rule's MapCounters.
//
// The MapCounters of a rule of ours are also returned by its hash, and
// known gives those of an earlier read: a rule's hash fingerprints its
// text, which names each key's counter, and an anonymous map cannot
// change while its rule uses it, so a rule of ours whose hash is known
// needs no dump of its map. At 10,000 port rules (25 maps) the dumps
// took 12 ms of a 100 ms read.
func dumpRules(netns int, known map[string][]string) (map[string][]RuleState, map[string][]string, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, nil, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	defer c.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(TableName + "\x00")},
	})
	if err != nil {
		return nil, nil, err
	}
	req, err := c.Send(netlink.Message{
		Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETRULE), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("request the rules of table inet %s: %w", TableName, err)
	}
	sock, err := newNetlinkSocket(c)
	if err != nil {
		return nil, nil, err
	}
	buf := make([]byte, dumpBufferSize)
	d, err := readRules(sock, buf, req.Header.Sequence)
	if err != nil {
		return nil, nil, fmt.Errorf("read the rules of table inet %s: %w", TableName, err)
	}
	learned := map[string][]string{}
	for _, set := range slices.Sorted(maps.Keys(d.objMaps)) {
		hash := d.ourOnly(set)
		if counters, ok := known[hash]; ok && hash != "" {
			d.rules[d.objMaps[set][0].chain][d.objMaps[set][0].i].MapCounters = slices.Clone(counters)
			learned[hash] = counters
			continue
		}
		req, err := c.Send(setElemsRequest(set))
		if err != nil {
			return nil, nil, fmt.Errorf("request elements of map %s: %w", set, err)
		}
		elems, err := readObjMapElems(sock, buf, req.Header.Sequence, set)
		if errors.Is(err, unix.ENOENT) {
			// The rule went since the rules were read: the read is
			// repeated when a commit touched the table in between.
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read elements of map %s: %w", set, err)
		}
		d.addObjMap(set, elems)
		if hash != "" {
			learned[hash] = d.rules[d.objMaps[set][0].chain][d.objMaps[set][0].i].MapCounters
		}
	}
	return d.rules, learned, nil
}

// setElemsRequest asks for a dump of the elements of a set of table inet
// edgefw.
func setElemsRequest(set string) netlink.Message {
	b := []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}
	b = appendStringAttr(b, unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	b = appendStringAttr(b, unix.NFTA_SET_ELEM_LIST_SET, set)
	return netlink.Message{Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETSETELEM), Flags: netlink.Request | netlink.Dump}, Data: b}
}

// A ruleDump is what a dump of the rules of table inet edgefw holds: the
// rules by chain, in order, and the anonymous object maps they look up.
type ruleDump struct {
	rules map[string][]RuleState
	// objMaps are the rules that count through each anonymous object
	// map, by the map's name: their chain and place in it.
	objMaps map[string][]objMapUser
}

// objMapUser is a rule that counts through an object map: its chain and
// place in it.
type objMapUser struct {
	chain string
	i     int
	// maps is how many object maps the rule looks up.
	maps int
}

// ourOnly returns the hash of the one rule that looks up an object map,
// when that rule is ours (it has a hash) and looks up no other map; "" if
// not. Such a rule's map counters are what its hash says.
func (d *ruleDump) ourOnly(set string) string {
	users := d.objMaps[set]
	if len(users) != 1 || users[0].maps != 1 {
		return ""
	}
	return d.rules[users[0].chain][users[0].i].Hash
}

// addObjMap lists the counters of an object map's elements in the
// MapCounters of the rules that look it up: each once, in the order of
// their keys (the kernel dumps an interval map in its own order).
func (d *ruleDump) addObjMap(set string, elems []objMapElem) {
	slices.SortStableFunc(elems, func(a, b objMapElem) int { return bytes.Compare(a.key, b.key) })
	for _, at := range d.objMaps[set] {
		r := &d.rules[at.chain][at.i]
		for _, e := range elems {
			if e.obj != "" && !slices.Contains(r.MapCounters, e.obj) {
				r.MapCounters = append(r.MapCounters, e.obj)
			}
		}
	}
}

// readRules reads, with buf, the replies to the rule dump request seq up
// to the NLMSG_DONE that ends them. An interrupted dump is read to its
// end, as readSetElements says why.
func readRules(sock datagramReader, buf []byte, seq uint32) (ruleDump, error) {
	d := ruleDump{rules: map[string][]RuleState{}}
	err := readReplies(sock, buf, seq, func(m netlink.Message) error {
		if m.Header.Type != nftType(unix.NFT_MSG_NEWRULE) {
			return nil
		}
		chain, r, objMaps, err := decodeRule(m.Data)
		if err != nil {
			return err
		}
		for _, set := range objMaps {
			if d.objMaps == nil {
				d.objMaps = map[string][]objMapUser{}
			}
			d.objMaps[set] = append(d.objMaps[set], objMapUser{chain, len(d.rules[chain]), len(objMaps)})
		}
		d.rules[chain] = append(d.rules[chain], r)
		return nil
	})
	if err != nil {
		return ruleDump{}, err
	}
	return d, nil
}

// readObjMapElems reads, with buf, the replies to the element dump
// request seq of an object map, up to the NLMSG_DONE that ends them.
func readObjMapElems(sock datagramReader, buf []byte, seq uint32, set string) ([]objMapElem, error) {
	var out []objMapElem
	err := readReplies(sock, buf, seq, func(m netlink.Message) error {
		if m.Header.Type != nftType(unix.NFT_MSG_NEWSETELEM) {
			return nil
		}
		var err error
		out, err = decodeObjMapElems(out, m.Data, set)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decodeRule decodes an NFT_MSG_NEWRULE of table inet edgefw into its
// chain's name and what a plan needs of it: its handle, user data, number
// of expressions and the counters it refers to by name; and the anonymous
// object maps it looks up, whose elements name more counters.
func decodeRule(data []byte) (chain string, r RuleState, objMaps []string, err error) {
	family, ad, err := nfgen(data)
	if err != nil {
		return "", r, nil, err
	}
	if family != unix.NFPROTO_INET {
		return "", r, nil, malformed("rule of family %d", family)
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
						name, set := decodeObjref(e)
						if name != "" {
							r.Counters = append(r.Counters, name)
						}
						if set != "" {
							objMaps = append(objMaps, set)
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return "", RuleState{}, nil, malformed("rule: %v", err)
	}
	if table != TableName || chain == "" {
		return "", RuleState{}, nil, malformed("rule of chain %q of table %q in a dump of table %s", chain, table, TableName)
	}
	return chain, r, objMaps, nil
}

// decodeObjref returns what an objref expression refers to: the counter
// it names (an objref of type counter), or the anonymous object map it
// looks the object up in; "" for either when not. The kernel writes an
// expression's name before its data.
//
// An object map's elements may be objects of any type; edgefw writes only
// maps of counters, and takes what another tool's map in its table names
// for counters too.
func decodeObjref(e *netlink.AttributeDecoder) (counter, set string) {
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
					case unix.NFTA_OBJREF_SET_NAME:
						set = d.String()
					}
				}
				return nil
			})
		}
	}
	switch {
	case kind != "objref":
		return "", ""
	case set != "":
		return "", set
	case typ == unix.NFT_OBJECT_COUNTER:
		return name, ""
	}
	return "", ""
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
