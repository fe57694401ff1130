package nfttest_test

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
)

func r(from, to string) nft.AddrRange {
	return nft.AddrRange{From: netip.MustParseAddr(from), To: netip.MustParseAddr(to)}
}

// errno returns the errno of a *nft.KernelError, or 0.
func errno(err error) syscall.Errno {
	var ke *nft.KernelError
	if errors.As(err, &ke) {
		return ke.Errno
	}
	return 0
}

// TestDriftIsCheckedLikeTheKernel makes the changes someone else would,
// and some the kernel refuses: each refused one changes nothing and does
// not move the generation.
func TestDriftIsCheckedLikeTheKernel(t *testing.T) {
	k := nfttest.New()
	if err := k.AddCounter("c", nft.Counter{}); errno(err) != syscall.ENOENT {
		t.Errorf("a counter without a table: %v", err)
	}
	if err := k.DeleteTable(); errno(err) != syscall.ENOENT {
		t.Errorf("deleting no table: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(k.AddTable())
	must(k.AddCounter("c", nft.Counter{Packets: 2, Bytes: 20}))
	must(k.AddChain("in", &nft.BaseChain{Type: "filter", Hook: "input", Policy: "drop"}))
	must(k.AddChain("reg", nil))
	must(k.AddSet(nft.SetState{Name: "s", KeyType: "ipv4_addr", Interval: true, Elements: []nft.AddrRange{r("10.0.0.0", "10.0.0.255")}}))
	h, err := k.AddRule("in", nfttest.Rule{Counters: []string{"c"}, Sets: []string{"s"}, Jump: "reg", Exprs: 6})
	must(err)
	must(k.Count("c", 1, 10))
	gen, _ := k.Generation()
	before := k.Snapshot()

	for name, err := range map[string]error{
		"add a counter that exists":    k.AddCounter("c", nft.Counter{}),
		"delete a chain jumped to":     k.DeleteChain("reg"),
		"delete a set in use":          k.DeleteSet("s"),
		"add an overlapping range":     k.AddElements("s", r("10.0.0.128", "10.0.1.0")),
		"delete a missing range":       k.DeleteElements("s", r("10.0.0.0", "10.0.0.127")),
		"move a base chain":            k.AddChain("in", &nft.BaseChain{Type: "filter", Hook: "output", Policy: "drop"}),
		"jump to a base chain":         func() error { _, err := k.AddRule("reg", nfttest.Rule{Jump: "in"}); return err }(),
		"count into a missing counter": func() error { _, err := k.AddRule("in", nfttest.Rule{Counters: []string{"nope"}}); return err }(),
		"delete a missing rule":        k.DeleteRule("in", h+100),
	} {
		want := map[string]syscall.Errno{
			"add a counter that exists": 0, "delete a chain jumped to": syscall.EBUSY, "delete a set in use": syscall.EBUSY,
			"add an overlapping range": syscall.EEXIST, "delete a missing range": syscall.ENOENT, "move a base chain": syscall.EOPNOTSUPP,
			"jump to a base chain": syscall.EOPNOTSUPP, "count into a missing counter": syscall.ENOENT, "delete a missing rule": syscall.ENOENT,
		}[name]
		if errno(err) != want {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	if g, _ := k.Generation(); g != gen+1 { // the one that succeeded: adding a counter that exists
		t.Errorf("generation moved from %d to %d", gen, g)
	}
	after := k.Snapshot()
	if after.Counters["c"] != (nft.Counter{Packets: 3, Bytes: 30}) {
		t.Errorf("counter c: %+v, want its value kept", after.Counters["c"])
	}
	if len(after.Chains["in"].Rules) != 1 || len(after.Sets["s"].Elements) != 1 || after.Chains["in"].Base.Hook != "input" {
		t.Errorf("refused changes changed the table: %+v", after)
	}

	// Snapshots are copies.
	before.Chains["in"].Rules = nil
	before.Sets["s"].Elements[0] = r("1.1.1.1", "1.1.1.1")
	if s := k.Snapshot(); len(s.Chains["in"].Rules) != 1 || s.Sets["s"].Elements[0] != r("10.0.0.0", "10.0.0.255") {
		t.Error("changing a snapshot changed the fake")
	}

	// Deleting a chain takes its rules with it, once nothing jumps to it.
	must(k.FlushChain("in"))
	must(k.DeleteChain("reg"))
	must(k.SetPolicy("in", "accept"))
	if s := k.Snapshot(); s.Chains["reg"] != nil || s.Chains["in"].Base.Policy != "accept" {
		t.Errorf("after flush, delete and policy: %+v", s.Chains)
	}
	if h2, err := k.AddRule("in", nfttest.Rule{Insert: true, Exprs: 1}); err != nil || h2 <= h {
		t.Errorf("a new rule's handle %d, after %d: %v", h2, h, err)
	}
	must(k.DeleteTable())
	if _, err := k.Counters(); !errors.Is(err, nft.ErrNoTable) {
		t.Errorf("Counters without a table: %v", err)
	}
	if err := k.Count("c", 1, 1); !errors.Is(err, nft.ErrNoTable) {
		t.Errorf("Count without a table: %v", err)
	}
}
