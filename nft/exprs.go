package nft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/policy"
)

// exprBuilder translates rules into kernel expressions. Anonymous sets a
// rule refers to are handed to addSet, which must queue them in the
// transaction before the rule, and which names them.
type exprBuilder struct {
	table  *nftables.Table
	addSet func(s *nftables.Set, elems []nftables.SetElement) error
	// addCounterMap queues the object map of a direct map's keys (see
	// batch.addCounterMap); nil where only the expressions are counted.
	addCounterMap func(es []DispatchElement) *counterMapRef
}

// counterMap returns the expression that counts through the object map
// of a direct map's keys, which it queues.
func (b *exprBuilder) counterMap(es []DispatchElement) (expr.Any, error) {
	if b.addCounterMap == nil {
		return &counterMapRef{}, nil
	}
	return b.addCounterMap(es), nil
}

func (b *exprBuilder) anon(key nftables.SetDatatype, interval bool, elems []nftables.SetElement) (*expr.Lookup, error) {
	s := &nftables.Set{Table: b.table, Anonymous: true, Constant: true, Interval: interval, KeyType: key}
	if err := b.addSet(s, elems); err != nil {
		return nil, err
	}
	return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID}, nil
}

// ruleExprs translates a rule into kernel expressions.
func (b *exprBuilder) ruleExprs(r *Rule) ([]expr.Any, error) {
	var out []expr.Any
	for _, m := range r.Matches {
		e, err := b.matchExprs(m)
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	if r.Limit != nil {
		unit, err := limitUnit(r.Limit.Per)
		if err != nil {
			return nil, err
		}
		out = append(out, &expr.Limit{Type: expr.LimitTypePkts, Rate: r.Limit.Rate, Over: r.Limit.Over, Unit: unit, Burst: r.Limit.Burst})
	}
	if r.Stmt != nil {
		switch r.Stmt.(type) {
		case MSSClampStmt:
			out = append(out,
				&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
				&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 2, Size: 2},
				&expr.Exthdr{SourceRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt})
		default:
			return nil, fmt.Errorf("unknown statement %T", r.Stmt)
		}
	}
	if r.Dispatch != nil {
		e, err := b.dispatchExprs(r.Dispatch)
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	if r.Counter != "" {
		out = append(out, &expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: r.Counter})
	}
	if r.LogPrefix != "" {
		out = append(out, &expr.Log{
			Key:   1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX,
			Group: LogGroup,
			Data:  []byte(r.LogPrefix + " "),
		})
	}
	if err := r.checkVerdict(); err != nil {
		return nil, err
	}
	return append(out, r.verdictExprs()...), nil
}

// verdictExprs is the rule's jump or verdict; none for a rule that exists
// for its statement.
func (r *Rule) verdictExprs() []expr.Any {
	if r.Jump != "" && r.Goto {
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: r.Jump}}
	}
	if r.Jump != "" {
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: r.Jump}}
	}
	switch r.Verdict {
	case VerdictReturn:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}
	case policy.Accept:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	case policy.Drop:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	case policy.Reject:
		switch r.reject() {
		case rejectTCPReset:
			return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
		case rejectICMP:
			return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreachable}}
		case rejectICMPv6:
			return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpv6PortUnreachable}}
		}
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}}
	}
	return nil
}

// checkVerdict refuses a rule without a known verdict. Only a rule that
// exists for its statement (MSS clamping) may have none: it goes on to
// the next rule, as the statement needs.
func (r *Rule) checkVerdict() error {
	if r.Dispatch != nil {
		if r.Jump != "" || r.Verdict != "" {
			return fmt.Errorf("both a dispatch by port and a jump or verdict")
		}
		return nil
	}
	if r.Jump != "" {
		if r.Verdict != "" {
			return fmt.Errorf("both a jump to %s and verdict %q", r.Jump, r.Verdict)
		}
		return nil
	}
	if r.Goto {
		return errors.New("a goto without a chain to go to")
	}
	switch r.Verdict {
	case policy.Accept, policy.Drop, policy.Reject, VerdictReturn:
		return nil
	case "":
		if r.Stmt != nil {
			return nil
		}
		return errors.New("no verdict")
	}
	return fmt.Errorf("unknown verdict %q", r.Verdict)
}

// ICMP codes of port unreachable: RFC 792 (type 3 code 3) and RFC 4443
// (type 1 code 4).
const (
	icmpPortUnreachable   = 3
	icmpv6PortUnreachable = 4
)

func limitUnit(per string) (expr.LimitTime, error) {
	switch per {
	case "second":
		return expr.LimitTimeSecond, nil
	case "minute":
		return expr.LimitTimeMinute, nil
	case "hour":
		return expr.LimitTimeHour, nil
	case "day":
		return expr.LimitTimeDay, nil
	}
	return 0, fmt.Errorf("unknown limit unit %q", per)
}

func cmpEq(data []byte) *expr.Cmp { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }

func nfproto(v6 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, cmpEq([]byte{p})}
}

func protoNumber(p policy.Protocol) byte {
	switch p {
	case policy.TCP:
		return unix.IPPROTO_TCP
	case policy.UDP:
		return unix.IPPROTO_UDP
	case policy.SCTP:
		return unix.IPPROTO_SCTP
	case policy.ICMP:
		return unix.IPPROTO_ICMP
	default:
		return unix.IPPROTO_ICMPV6
	}
}

// ifnameBytes pads an interface name to IFNAMSIZ; a trailing * becomes a
// prefix comparison of the bytes before it, as nft does.
func ifnameBytes(name string) []byte {
	if n := len(name); n > 0 && name[n-1] == '*' {
		return []byte(name[:n-1])
	}
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func (b *exprBuilder) matchExprs(m Match) ([]expr.Any, error) {
	switch m := m.(type) {
	case NFProtoMatch:
		return nfproto(m.V6), nil
	case L4Match:
		return b.l4Exprs(m)
	case IfaceMatch:
		key := expr.MetaKeyIIFNAME
		if m.Out {
			key = expr.MetaKeyOIFNAME
		}
		return []expr.Any{&expr.Meta{Key: key, Register: 1}, cmpEq(ifnameBytes(m.Name))}, nil
	case AddrMatch:
		return b.addrExprs(m)
	case ICMPTypeMatch:
		return b.icmpTypeExprs(m)
	case CtStateMatch:
		return ctStateExprs(m)
	case MeterMatch:
		return meterExprs(m)
	case ConnCountMatch:
		return []expr.Any{&expr.Connlimit{Count: m.Max, Flags: expr.NFT_CONNLIMIT_F_INV}}, nil
	case TCPSynMatch:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmpEq([]byte{unix.IPPROTO_TCP}),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x02}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}},
		}, nil
	}
	return nil, fmt.Errorf("unknown match %T", m)
}

func (b *exprBuilder) l4Exprs(m L4Match) ([]expr.Any, error) {
	out := []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}}
	if len(m.Protos) == 1 {
		out = append(out, cmpEq([]byte{protoNumber(m.Protos[0])}))
	} else {
		var elems []nftables.SetElement
		for _, p := range m.Protos {
			elems = append(elems, nftables.SetElement{Key: []byte{protoNumber(p)}})
		}
		l, err := b.anon(nftables.TypeInetProto, false, elems)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if len(m.Ports) == 0 {
		return out, nil
	}
	out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
	if len(m.Ports) == 1 && m.Ports[0].From == m.Ports[0].To {
		return append(out, cmpEq(be16(m.Ports[0].From))), nil
	}
	if len(m.Ports) == 1 {
		return append(out, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(m.Ports[0].From), ToData: be16(m.Ports[0].To)}), nil
	}
	l, err := b.anon(nftables.TypeInetService, true, portElements(m.Ports))
	if err != nil {
		return nil, err
	}
	return append(out, l), nil
}

func (b *exprBuilder) addrExprs(m AddrMatch) ([]expr.Any, error) {
	out := nfproto(m.V6)
	off, size := uint32(12), uint32(4)
	if m.V6 {
		off, size = 8, 16
	}
	if m.Dst {
		off += size
	}
	out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size})
	if m.Set != "" {
		return append(out, &expr.Lookup{SourceRegister: 1, SetName: m.Set}), nil
	}
	if len(m.Ranges) == 1 {
		// One range is a comparison, not a set, as nft compiles it.
		return append(out, rangeExprs(m.Ranges[0], size)...), nil
	}
	key := nftables.TypeIPAddr
	if m.V6 {
		key = nftables.TypeIP6Addr
	}
	l, err := b.anon(key, true, addrElements(m.Ranges))
	if err != nil {
		return nil, err
	}
	return append(out, l), nil
}

func (b *exprBuilder) icmpTypeExprs(m ICMPTypeMatch) ([]expr.Any, error) {
	proto, key := byte(unix.IPPROTO_ICMP), nftables.TypeICMPType
	if m.V6 {
		proto, key = unix.IPPROTO_ICMPV6, nftables.TypeICMP6Type
	}
	var elems []nftables.SetElement
	for _, ty := range m.Types {
		elems = append(elems, nftables.SetElement{Key: []byte{ty}})
	}
	l, err := b.anon(key, false, elems)
	if err != nil {
		return nil, err
	}
	// nft guards icmp with the family too: protocol 1 in an IPv6
	// packet is not ICMP.
	return append(nfproto(m.V6),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmpEq([]byte{proto}),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		l,
	), nil
}

func ctStateExprs(m CtStateMatch) ([]expr.Any, error) {
	var bits uint32
	for _, st := range m.States {
		bit, ok := ctStateBits[st]
		if !ok {
			return nil, fmt.Errorf("unknown ct state %q", st)
		}
		bits |= bit
	}
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}, nil
}

func meterExprs(m MeterMatch) ([]expr.Any, error) {
	off, size := uint32(12), uint32(4)
	if m.V6 {
		off, size = 8, 16
	}
	out := append(nfproto(m.V6), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size})
	if m.Limit == nil {
		// add: a source's connections are counted from its first one.
		return append(out, &expr.Dynset{SrcRegKey: 1, SetName: m.Set, Operation: unix.NFT_DYNSET_OP_ADD,
			Exprs: []expr.Any{&expr.Connlimit{Count: m.ConnMax, Flags: expr.NFT_CONNLIMIT_F_INV}}}), nil
	}
	unit, err := limitUnit(m.Limit.Per)
	if err != nil {
		return nil, err
	}
	// update: every packet refreshes the source's timeout.
	return append(out, &expr.Dynset{SrcRegKey: 1, SetName: m.Set, Operation: unix.NFT_DYNSET_OP_UPDATE,
		Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: m.Limit.Rate, Over: m.Limit.Over, Unit: unit, Burst: m.Limit.Burst}}}), nil
}

// Conntrack state bits (include/uapi/linux/netfilter/nf_conntrack_common.h:
// NF_CT_STATE_BIT and IP_CT_* values).
var ctStateBits = map[string]uint32{
	"invalid":     1,
	"established": 1 << 1,
	"related":     1 << 2,
	"new":         1 << 3,
	"untracked":   1 << 6,
}

// rangeExprs compares register 1, loaded with size bytes of address, with
// one range. A prefix becomes a mask and compare, as nft compiles it, so
// that nft lists it as a prefix; any other range is a range comparison.
func rangeExprs(r AddrRange, size uint32) []expr.Any {
	if r.From == r.To {
		return []expr.Any{cmpEq(r.From.AsSlice())}
	}
	if ps := rangePrefixes(r); len(ps) == 1 {
		mask := make([]byte, size)
		for i := 0; i < ps[0].Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		return []expr.Any{
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)},
			cmpEq(r.From.AsSlice()),
		}
	}
	return []expr.Any{&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: r.From.AsSlice(), ToData: r.To.AsSlice()}}
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// portElements encodes port spans as interval elements: each span is a
// start element and an end element one past it, flagged IntervalEnd.
func portElements(ps []PortSpan) []nftables.SetElement {
	var out []nftables.SetElement
	for _, p := range ps {
		out = append(out, nftables.SetElement{Key: be16(p.From)})
		if p.To < 0xffff {
			out = append(out, nftables.SetElement{Key: be16(p.To + 1), IntervalEnd: true})
		}
	}
	return out
}

// addrElements encodes address ranges as interval elements. A range that
// ends at the family's last address has no end element: the kernel's
// interval sets treat an open start as running to the end, as nft does.
func addrElements(rs []AddrRange) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, 2*len(rs))
	for _, r := range rs {
		out = append(out, nftables.SetElement{Key: r.From.AsSlice()})
		if next := r.To.Next(); next.IsValid() {
			out = append(out, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}
