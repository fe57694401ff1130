package nft

import (
	"errors"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/policy"
)

// Writing: a plan's ops encoded into the netlink messages of one
// transaction (a batch, see transport.go), each tagged with its op's
// Change so that a refusal names it. Encoding talks to no kernel, so a
// plan's messages are counted without root, and nothing is sent.

// maxElemsPerMessage keeps one SetAddElements call (for anonymous sets;
// named sets' elements are encoded by rangeMessages) well under the
// 16-bit netlink attribute length: past 64 KiB google/nftables silently
// wraps it and the kernel gets a fraction of the elements (LAB.md).
const maxElemsPerMessage = 1000

// udataHash is the user data type under which a rule's hash is stored.
// nft(8) shows only the types it knows (comment, ebtables policy), so the
// hash stays out of `nft list ruleset`.
const udataHash userdata.Type = 0xed

// udataCounted is the user data type under which a counted rule records
// the direction and action of its counter ("input accept"), as the
// metrics label them. A counter whose rules recorded another direction or
// action counted something else: it is reset (deleted and added again)
// rather than kept, so that a series does not start at another's total.
const udataCounted userdata.Type = 0xee

var table = &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}

// encode makes the transaction of a plan. Every op is encoded, so that
// all the errors are reported at once.
func encode(ops []Op) (*Transaction, error) {
	b, err := newBatch()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, op := range ops {
		errs = append(errs, b.add(op.Change(), func(c *nftables.Conn) error { return op.encode(b, c) }))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Transaction{ops: ops, batch: b}, nil
}

func (AddTable) encode(_ *batch, c *nftables.Conn) error { c.AddTable(table); return nil }

func (DeleteTable) encode(_ *batch, c *nftables.Conn) error { c.DelTable(table); return nil }

func (op AddCounter) encode(b *batch, _ *nftables.Conn) error {
	b.queue(op.Change(), counterMessage(op.Name))
	return nil
}

func (op DeleteCounter) encode(_ *batch, c *nftables.Conn) error {
	c.DeleteObject(&nftables.CounterObj{Table: table, Name: op.Name})
	return nil
}

func (op ResetCounter) encode(_ *batch, c *nftables.Conn) error {
	c.DeleteObject(&nftables.CounterObj{Table: table, Name: op.Name})
	c.AddObj(&nftables.CounterObj{Table: table, Name: op.Name})
	return nil
}

// encode adds the chain again: for a base chain that exists, that sets
// its policy.
func (op SetChainPolicy) encode(_ *batch, c *nftables.Conn) error {
	c.AddChain(kernelChain(op.Chain))
	return nil
}

func (op AddElements) encode(b *batch, _ *nftables.Conn) error {
	b.addRanges(unix.NFT_MSG_NEWSETELEM, kernelSet(op.Set), op.Ranges)
	return nil
}

func (op DeleteElements) encode(b *batch, _ *nftables.Conn) error {
	b.addRanges(unix.NFT_MSG_DELSETELEM, kernelSet(op.Set), op.Ranges)
	return nil
}

func (op ReplaceElements) encode(b *batch, c *nftables.Conn) error {
	ns := kernelSet(op.Set)
	c.FlushSet(ns)
	b.addRanges(unix.NFT_MSG_NEWSETELEM, ns, op.Set.Ranges)
	return nil
}

func (op DeleteRule) encode(_ *batch, c *nftables.Conn) error {
	return c.DelRule(&nftables.Rule{Table: table, Chain: &nftables.Chain{Name: op.Chain, Table: table}, Handle: op.Handle})
}

func (op FlushChain) encode(_ *batch, c *nftables.Conn) error {
	c.FlushChain(&nftables.Chain{Name: op.Chain, Table: table})
	return nil
}

func (op DeleteSet) encode(_ *batch, c *nftables.Conn) error {
	c.DelSet(&nftables.Set{Name: op.Name, Table: table})
	return nil
}

func (op DeleteChain) encode(_ *batch, c *nftables.Conn) error {
	c.DelChain(&nftables.Chain{Name: op.Name, Table: table})
	return nil
}

func (op AddChain) encode(b *batch, c *nftables.Conn) error {
	if op.Chain.Regular() {
		b.queue(op.Change(), regularChainMessage(op.Chain.Name))
		return nil
	}
	c.AddChain(kernelChain(op.Chain))
	return nil
}

func (op AddSet) encode(b *batch, c *nftables.Conn) error {
	ns := kernelSet(op.Set)
	if err := b.addSet(c, ns, nil); err != nil {
		return err
	}
	b.addRanges(unix.NFT_MSG_NEWSETELEM, ns, op.Set.Ranges)
	return nil
}

func (op AddMeter) encode(b *batch, c *nftables.Conn) error {
	return b.addSet(c, kernelMeter(op.Meter), nil)
}

// encode queues the rule's anonymous sets on c, and the rule itself
// after them, encoded by ruleMessage.
func (op AddRule) encode(b *batch, c *nftables.Conn) error {
	sets := false
	eb := &exprBuilder{table: table, addSet: func(s *nftables.Set, elems []nftables.SetElement) error {
		sets = true
		return b.addSet(c, s, elems)
	}, addCounterMap: func(es []DispatchElement) *counterMapRef {
		sets = true
		return b.addCounterMap(es)
	}}
	exprs, err := eb.ruleExprs(op.Rule)
	if err != nil {
		return err
	}
	udata := userdata.Append(nil, udataHash, []byte(op.ruleHash()))
	if op.Counted != "" {
		udata = userdata.Append(udata, udataCounted, []byte(op.Counted))
	}
	m, err := ruleMessage(op.Chain, exprs, udata, op.Before)
	if err != nil {
		return err
	}
	what := op.Change()
	if sets {
		if err := b.take(what); err != nil {
			return err
		}
	}
	b.queue(what, m)
	return nil
}

func hookOf(d policy.Direction) *nftables.ChainHook {
	switch d {
	case policy.Output:
		return nftables.ChainHookOutput
	case policy.Forward:
		return nftables.ChainHookForward
	default:
		return nftables.ChainHookInput
	}
}

// chainPolicy is the kernel policy of a chain's default verdict. Only
// accept is accept: anything else fails closed to drop (validate refuses
// such a ruleset before it gets here).
func chainPolicy(a policy.Action) nftables.ChainPolicy {
	if a == policy.Accept {
		return nftables.ChainPolicyAccept
	}
	return nftables.ChainPolicyDrop
}

func kernelChain(ch *Chain) *nftables.Chain {
	if ch.Regular() {
		return &nftables.Chain{Name: ch.Name, Table: table}
	}
	p := chainPolicy(ch.Policy)
	return &nftables.Chain{
		Name: ch.Name, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: hookOf(ch.Hook), Priority: nftables.ChainPriorityFilter, Policy: &p,
	}
}

func kernelSet(s *AddrSet) *nftables.Set {
	key := nftables.TypeIPAddr
	if s.V6 {
		key = nftables.TypeIP6Addr
	}
	return &nftables.Set{Table: table, Name: s.Name, Interval: true, KeyType: key}
}

func kernelMeter(m *Meter) *nftables.Set {
	key := nftables.TypeIPAddr
	if m.V6 {
		key = nftables.TypeIP6Addr
	}
	return &nftables.Set{Table: table, Name: m.Name, KeyType: key, KeyByteOrder: binaryutil.BigEndian,
		Dynamic: true, HasTimeout: m.Timeout > 0, Timeout: m.Timeout, Size: m.Size}
}

func addElements(c *nftables.Conn, s *nftables.Set, elems []nftables.SetElement) error {
	for chunk := range slices.Chunk(elems, maxElemsPerMessage) {
		if err := c.SetAddElements(s, chunk); err != nil {
			return err
		}
	}
	return nil
}
