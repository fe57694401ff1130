package nft

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// ruleMsg is an NFT_MSG_NEWRULE of a rule dump: a payload load, a
// counter by name and a verdict, with edgefw's user data.
func ruleMsg(seq uint32, table, chain string, handle uint64, counter string) netlink.Message {
	expr := func(name string, data ...netlink.Attribute) netlink.Attribute {
		return nested(unix.NFTA_LIST_ELEM, str(unix.NFTA_EXPR_NAME, name), nested(unix.NFTA_EXPR_DATA, data...))
	}
	ud := userdata.Append(nil, udataHash, []byte("h-"+counter))
	ud = userdata.Append(ud, udataCounted, []byte("input accept"))
	return nftMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_INET, seq,
		str(unix.NFTA_RULE_TABLE, table),
		str(unix.NFTA_RULE_CHAIN, chain),
		netlink.Attribute{Type: unix.NFTA_RULE_HANDLE, Data: binary.BigEndian.AppendUint64(nil, handle)},
		nested(unix.NFTA_RULE_EXPRESSIONS,
			// Attribute 1 of a payload expression is a register, not an
			// objref's type: only an objref's data is read as one.
			expr("payload", be32(unix.NFTA_PAYLOAD_DREG, 1), be32(unix.NFTA_PAYLOAD_BASE, 2)),
			expr("objref", be32(unix.NFTA_OBJREF_IMM_TYPE, unix.NFT_OBJECT_COUNTER), str(unix.NFTA_OBJREF_IMM_NAME, counter)),
			expr("objref", be32(unix.NFTA_OBJREF_IMM_TYPE, unix.NFT_OBJECT_QUOTA), str(unix.NFTA_OBJREF_IMM_NAME, "a-quota")),
			expr("immediate", be32(unix.NFTA_IMMEDIATE_DREG, 0)),
		),
		netlink.Attribute{Type: unix.NFTA_RULE_USERDATA, Data: ud},
	)
}

func TestReadRules(t *testing.T) {
	const seq = 9
	rule := func(handle uint64, counter string) RuleState {
		return RuleState{Handle: handle, Hash: "h-" + counter, Counted: "input accept", Counters: []string{counter}, Exprs: 4}
	}
	done := netlink.Message{Header: netlink.Header{Sequence: seq}, Data: make([]byte, 4)}
	msgs, err := nltest.Multipart([]netlink.Message{
		ruleMsg(seq, TableName, "input", 4, "ssh"),
		ruleMsg(seq, TableName, "edgefw-dispatch-a", 7, "web"),
		ruleMsg(seq, TableName, "input", 5, "api"),
		done,
	})
	if err != nil {
		t.Fatal(err)
	}
	sock := &fakeSocket{reads: datagrams(msgs[:2], append([]netlink.Message{ruleMsg(seq+1, "other", "x", 1, "z")}, msgs[2:]...))}
	d, err := readRules(sock, make([]byte, dumpBufferSize), seq)
	if err != nil {
		t.Fatal(err)
	}
	got := d.rules
	want := map[string][]RuleState{
		"input":             {rule(4, "ssh"), rule(5, "api")},
		"edgefw-dispatch-a": {rule(7, "web")},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("rules (-want +got):\n%s", d)
	}

	for _, tc := range []struct {
		name  string
		reads []fakeRead
		err   error
	}{
		{"another table's rule", datagrams([]netlink.Message{ruleMsg(seq, "filter", "input", 1, "x")}), errMalformed},
		{"no such table", datagrams([]netlink.Message{ackFor(request(seq), ackOpts{errno: unix.ENOENT, capped: true})}), unix.ENOENT},
		{"dump failed", datagrams([]netlink.Message{{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: seq},
			Data: errnoBytes(unix.EMSGSIZE)}}), unix.EMSGSIZE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := readRules(&fakeSocket{reads: tc.reads}, make([]byte, dumpBufferSize), seq); !errors.Is(err, tc.err) {
				t.Errorf("readRules: %v, want %v", err, tc.err)
			}
		})
	}
}

// User data that any process may have written into a rule of our table
// is read without trusting its lengths.
func TestUdataGet(t *testing.T) {
	ud := userdata.Append(userdata.Append(nil, 1, []byte("comment")), udataHash, []byte("h"))
	for _, tc := range []struct {
		name string
		ud   []byte
		want string
	}{
		{"found after another entry", ud, "h"},
		{"absent", ud[:9], ""},
		{"an entry longer than what is left", []byte{byte(udataHash), 50, 'h'}, ""},
		{"a lone type byte", []byte{byte(udataHash)}, ""},
	} {
		if got := string(udataGet(tc.ud, udataHash)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A rule that counts through an anonymous object map names its map, and
// the map's elements its counters: a read lists them with the rule, each
// once, in key order, whatever order the kernel dumps them in.
func TestReadObjectMapCounters(t *testing.T) {
	const seq = 9
	expr := func(name string, data ...netlink.Attribute) netlink.Attribute {
		return nested(unix.NFTA_LIST_ELEM, str(unix.NFTA_EXPR_NAME, name), nested(unix.NFTA_EXPR_DATA, data...))
	}
	direct := nftMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_INET, seq,
		str(unix.NFTA_RULE_TABLE, TableName),
		str(unix.NFTA_RULE_CHAIN, "input"),
		netlink.Attribute{Type: unix.NFTA_RULE_HANDLE, Data: binary.BigEndian.AppendUint64(nil, 12)},
		nested(unix.NFTA_RULE_EXPRESSIONS,
			expr("payload", be32(unix.NFTA_PAYLOAD_DREG, 1)),
			expr("objref", be32(unix.NFTA_OBJREF_SET_SREG, 1), str(unix.NFTA_OBJREF_SET_NAME, "__objmap2"), be32(unix.NFTA_OBJREF_SET_ID, 5)),
			expr("lookup", str(unix.NFTA_LOOKUP_SET, "__set7")),
		),
	)
	done := netlink.Message{Header: netlink.Header{Sequence: seq}, Data: make([]byte, 4)}
	msgs, err := nltest.Multipart([]netlink.Message{ruleMsg(seq, TableName, "input", 4, "ssh"), direct, done})
	if err != nil {
		t.Fatal(err)
	}
	d, err := readRules(&fakeSocket{reads: datagrams(msgs)}, make([]byte, dumpBufferSize), seq)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]objMapUser{"__objmap2": {{"input", 1, 1}}}; !cmp.Equal(want, d.objMaps, cmp.AllowUnexported(objMapUser{})) {
		t.Fatalf("object maps %+v, want %+v", d.objMaps, want)
	}

	elem := func(port uint16, counter string) netlink.Attribute {
		attrs := []netlink.Attribute{nested(unix.NFTA_SET_ELEM_KEY, netlink.Attribute{Type: unix.NFTA_DATA_VALUE, Data: be16(port)})}
		if counter == "" {
			attrs = append(attrs, be32(unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END))
		} else {
			attrs = append(attrs, str(unix.NFTA_SET_ELEM_OBJREF, counter))
		}
		return nested(unix.NFTA_LIST_ELEM, attrs...)
	}
	// The kernel dumps an interval map from its last key down.
	elems := nftMsg(unix.NFT_MSG_NEWSETELEM, unix.NFPROTO_INET, seq+1,
		str(unix.NFTA_SET_ELEM_LIST_TABLE, TableName),
		str(unix.NFTA_SET_ELEM_LIST_SET, "__objmap2"),
		nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, elem(444, ""), elem(443, "web"), elem(81, ""), elem(80, "web"), elem(23, ""), elem(22, "ssh")),
	)
	got, err := decodeObjMapElems(nil, elems.Data, "__objmap2")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 || string(got[1].key) != string(be16(443)) || got[1].obj != "web" || got[0].obj != "" {
		t.Fatalf("elements %+v", got)
	}
	d.addObjMap("__objmap2", got)
	want := []RuleState{
		{Handle: 4, Hash: "h-ssh", Counted: "input accept", Counters: []string{"ssh"}, Exprs: 4},
		{Handle: 12, MapCounters: []string{"ssh", "web"}, Exprs: 3},
	}
	if diff := cmp.Diff(want, d.rules["input"]); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if _, err := decodeObjMapElems(nil, elems.Data, "__objmap3"); !errors.Is(err, errMalformed) {
		t.Errorf("elements of another map: %v, want %v", err, errMalformed)
	}
}
