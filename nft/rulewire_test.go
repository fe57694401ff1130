package nft

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
)

// TestRuleMessageAsGoogle encodes the plans of every golden ruleset, and
// of many port rules dispatched and not, once as Apply does and once with
// the rules, counters and chains added through google/nftables' Conn, as
// edgefw did before rulewire.go: the messages are the same, byte for
// byte, in the same order, with the same tags. Rules with a direct map
// are encoded by Apply's path on both sides: google/nftables v0.3.0 has no
// object maps (the kernel tests check those).
func TestRuleMessageAsGoogle(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("golden policies: %v %v", files, err)
	}
	cases := map[string]*Ruleset{}
	for _, f := range files {
		cases[filepath.Base(f)] = compileFile(t, f)
	}
	for _, linear := range []bool{false, true} {
		rs, err := compile(manyRulesPolicy(1000, 10), compileOptions{linear: linear})
		if err != nil {
			t.Fatal(err)
		}
		cases[fmt.Sprintf("1000 rules, linear %v", linear)] = rs
	}
	for name, rs := range cases {
		ops, err := plan(&TableState{}, rs, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Some rules go before others, as a patch inserts them.
		for i, op := range ops {
			if ar, ok := op.(AddRule); ok && i%3 == 0 {
				ar.Before = uint64(1000 + i)
				ops[i] = ar
			}
		}
		tx, err := encode(ops)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := encodeThroughGoogle(t, ops)
		if d := cmp.Diff(wireOf(want), wireOf(tx.batch)); d != "" {
			t.Errorf("%s: messages differ from google/nftables' (-google +ours):\n%s", name, d)
		}
	}
}

// encodeThroughGoogle is encode with every rule added by google/nftables.
func encodeThroughGoogle(t *testing.T, ops []Op) *batch {
	t.Helper()
	b, err := newBatch()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		var f func(c *nftables.Conn) error
		switch op := op.(type) {
		case AddCounter:
			f = func(c *nftables.Conn) error { c.AddObj(&nftables.CounterObj{Table: table, Name: op.Name}); return nil }
		case AddChain:
			f = func(c *nftables.Conn) error { c.AddChain(kernelChain(op.Chain)); return nil }
		case AddRule:
			if op.Rule.Dispatch != nil && op.Rule.Dispatch.Direct {
				// google/nftables cannot encode an object map.
				f = func(c *nftables.Conn) error { return op.encode(b, c) }
			}
		default:
			f = func(c *nftables.Conn) error { return op.encode(b, c) }
		}
		if f != nil {
			if err := b.add(op.Change(), f); err != nil {
				t.Fatal(err)
			}
			continue
		}
		ar := op.(AddRule)
		err := b.add(ar.Change(), func(c *nftables.Conn) error {
			eb := &exprBuilder{table: table, addSet: func(s *nftables.Set, elems []nftables.SetElement) error {
				return b.addSet(c, s, elems)
			}}
			exprs, err := eb.ruleExprs(ar.Rule)
			if err != nil {
				return err
			}
			udata := userdata.Append(nil, udataHash, []byte(ar.Rule.Hash()))
			if ar.Counted != "" {
				udata = userdata.Append(udata, udataCounted, []byte(ar.Counted))
			}
			kr := &nftables.Rule{Table: table, Chain: &nftables.Chain{Name: ar.Chain, Table: table}, Exprs: exprs, UserData: udata}
			if ar.Before != 0 {
				kr.Position = ar.Before
				c.InsertRule(kr)
			} else {
				c.AddRule(kr)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// wireMessage is what of a queued message goes to the kernel, and its tag.
type wireMessage struct {
	What  string
	Type  uint16
	Flags uint16
	Data  []byte
}

func wireOf(b *batch) []wireMessage {
	out := make([]wireMessage, len(b.msgs))
	for i, m := range b.msgs {
		out[i] = wireMessage{What: b.what[i], Type: uint16(m.Header.Type), Flags: uint16(m.Header.Flags), Data: m.Data}
	}
	return out
}
