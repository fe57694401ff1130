package nft

import (
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestBatchAsksForNoEchoes checks that no message of a batch asks the
// kernel to echo it: google/nftables asks for an echo of every rule, and
// the echoes of a large batch filled the socket's receive buffer until the
// transaction's acknowledgement was dropped (TestManyRules timed out).
func TestBatchAsksForNoEchoes(t *testing.T) {
	b, err := newBatch()
	if err != nil {
		t.Fatal(err)
	}
	ch := &Chain{Name: "input", Hook: "input", Policy: "drop"}
	if err := b.add("rule", func(c *nftables.Conn) error {
		c.AddTable(table)
		c.AddChain(kernelChain(ch))
		c.AddRule(&nftables.Rule{Table: table, Chain: kernelChain(ch)})
		c.InsertRule(&nftables.Rule{Table: table, Chain: kernelChain(ch), Position: 1})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rules := 0
	for _, m := range b.msgs {
		if m.Header.Type&0xff == unix.NFT_MSG_NEWRULE {
			rules++
		}
		if m.Header.Flags&netlink.Echo != 0 {
			t.Errorf("message of type %#x asks for an echo", m.Header.Type)
		}
	}
	if rules != 2 {
		t.Errorf("%d rule messages, want 2", rules)
	}
}
