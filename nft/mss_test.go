package nft

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// TestMSSClampMovesOnUpgrade: a table written by an edgefwd that put the
// MSS clamp after the established accept in forward (where it never saw a
// SYN-ACK) is brought to the new order by an ordinary apply, and the
// counters of the rules it moves past keep their values.
func TestMSSClampMovesOnUpgrade(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "mss-upgrade")
	fw := NewApplier(WithNetNS(ns.FD))
	const path = "testdata/golden/tunnels"
	rs := compileFile(t, path+".yaml")

	old := compileFile(t, path+".yaml")
	for _, ch := range old.Chains {
		if ch.Name != "forward" {
			continue
		}
		clamps := slices.DeleteFunc(slices.Clone(ch.Rules), func(r *Rule) bool { return r.Stmt == nil })
		rest := slices.DeleteFunc(ch.Rules, func(r *Rule) bool { return r.Stmt != nil })
		if len(clamps) == 0 {
			t.Fatalf("%s has no MSS clamp in forward", path)
		}
		// The old compiler: the clamps after the ICMP errors, before the default.
		ch.Rules = slices.Concat(rest[:len(rest)-1], clamps, rest[len(rest)-1:])
	}
	// A counter that has counted, as a running site's would have.
	const seeded = "edgefw-established-forward"
	ns.MustRun(t, "nft", "add", "table", "inet", TableName)
	ns.MustRun(t, "nft", "add", "counter", "inet", TableName, seeded, "{", "packets", "7", "bytes", "700", "}")
	if _, err := fw.Apply(old); err != nil {
		t.Fatalf("apply the old order: %v", err)
	}
	if eq, err := fw.Equal(rs); err != nil || eq {
		t.Fatalf("Equal(new order) over the old order = %v, %v; want false", eq, err)
	}
	res, err := fw.Apply(rs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("upgrade wrote %d messages (full %v): %q", res.Messages, res.Full, res.Changes)
	golden, err := os.ReadFile(path + ".nft")
	if err != nil {
		t.Fatal(err)
	}
	// The seeded counter is listed first; the chain is what moved.
	if diff := cmp.Diff(lines(chainListing(t, string(golden), "forward")), lines(chainListing(t, listTable(t, ns), "forward"))); diff != "" {
		t.Errorf("chain forward after the upgrade (-golden +listed):\n%s", diff)
	}
	c, err := fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c[seeded], (Counter{Packets: 7, Bytes: 700}); got != want {
		t.Errorf("counter %s after the upgrade: %+v, want %+v kept", seeded, got, want)
	}
}

// chainListing cuts one chain out of a listing of table inet edgefw.
func chainListing(t *testing.T, listing, chain string) string {
	t.Helper()
	_, rest, ok := strings.Cut(listing, "\tchain "+chain+" {\n")
	body, _, closed := strings.Cut(rest, "\n\t}\n")
	if !ok || !closed {
		t.Fatalf("no chain %s in:\n%s", chain, listing)
	}
	return body
}
