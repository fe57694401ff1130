package nft

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// TestReadKnowsMapCounters reads a direct map's counters from its object
// map, then knows them by its rule's hash until someone else touches the
// table. A wrong entry planted in what the Kernel knows shows which read
// used it.
func TestReadKnowsMapCounters(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "mapcounters")
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	var want []string
	for port := 1; port <= 8; port++ {
		fmt.Fprintf(&b, "  - {name: x%d, direction: input, ports: [{protocol: tcp, port: %d}], action: accept}\n", port, port)
		want = append(want, fmt.Sprintf("x%d", port))
	}
	if _, err := NewApplier(WithNetNS(ns.FD)).Apply(compileYAML(t, b.String())); err != nil {
		t.Fatal(err)
	}
	k := newNetlinkKernel(ns.FD)
	defer k.Close()
	direct := func() RuleState {
		t.Helper()
		ks, err := k.ReadTable()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ks.Chains["input"].Rules {
			if len(r.MapCounters) > 0 {
				return r
			}
		}
		t.Fatal("no rule with map counters in chain input")
		return RuleState{}
	}
	r := direct()
	if !slices.Equal(r.MapCounters, want) || r.Counted != "input accept" {
		t.Fatalf("direct map: counters %q counted %q, want %q counted input accept", r.MapCounters, r.Counted, want)
	}
	if !slices.Equal(k.mapCounters[r.Hash], want) || len(k.mapCounters) != 1 {
		t.Fatalf("known map counters %q, want %q under %s", k.mapCounters, want, r.Hash)
	}

	k.mapCounters[r.Hash] = []string{"planted"}
	if got := direct().MapCounters; !slices.Equal(got, []string{"planted"}) {
		t.Errorf("a read with nothing changed dumped the map (%q) rather than use what it knew", got)
	}
	// Our own commit keeps what the Kernel knows: the map's rule, with
	// its hash, is as it was.
	k.mapCounters[r.Hash] = []string{"planted"}
	more := b.String() + "  - {name: icmp, direction: input, ports: [{protocol: icmp}], action: accept}\n"
	if _, err := NewApplier(WithKernel(k)).Apply(compileYAML(t, more)); err != nil {
		t.Fatal(err)
	}
	if got := direct().MapCounters; !slices.Equal(got, []string{"planted"}) {
		t.Errorf("after our own commit, a read dumped the unchanged map (%q) rather than use what it knew", got)
	}
	k.mapCounters[r.Hash] = []string{"planted"}
	ns.MustRun(t, "nft", "add chain inet "+TableName+" foreign")
	if got := direct().MapCounters; !slices.Equal(got, want) {
		t.Errorf("after another tool's commit, a read took map counters %q, want %q read again", got, want)
	}
}
