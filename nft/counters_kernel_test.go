package nft

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// getObjectsCounters reads the counters as edgefw did before counters.go,
// through google/nftables: the reference the raw dump must agree with.
func getObjectsCounters(t testing.TB, netns int) map[string]Counter {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(netns))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := c.GetObjects(table)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Counter{}
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok && co.Table.Name == TableName {
			out[co.Name] = Counter{Packets: co.Packets, Bytes: co.Bytes}
		}
	}
	return out
}

// TestCountersKernel reads a thousand counters on the kept socket, among
// other tables' counters and a quota of ours, across the table's
// deletion and return.
func TestCountersKernel(t *testing.T) {
	ns := netnstest.New(t, "counters")
	fw := NewApplier(WithNetNS(ns.FD))
	defer fw.Close()
	if _, err := fw.Counters(); !errors.Is(err, ErrNoTable) {
		t.Fatalf("counters without a table: %v, want ErrNoTable", err)
	}
	rs, err := compile(manyRulesPolicy(1000, -1), compileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Apply(rs); err != nil {
		t.Fatal(err)
	}
	ns.MustRun(t, "nft", "add table inet other; add counter inet other rule-1 { packets 5 bytes 6 }; add counter inet other stray { packets 1 bytes 2 }")
	ns.MustRun(t, "nft", "add quota inet "+TableName+" q { over 1 mbytes }")
	ns.MustRun(t, "nft", "reset counter inet "+TableName+" rule-7")
	// Values as the kernel holds them (nft cannot set a named counter's
	// value, but traffic-free counters read 0 and the dump must say so).
	for range 3 {
		got, err := fw.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(rs.Counters) {
			t.Errorf("%d counters read, the ruleset has %d", len(got), len(rs.Counters))
		}
		if d := cmp.Diff(getObjectsCounters(t, ns.FD), got); d != "" {
			t.Errorf("counters (-google/nftables +raw dump):\n%s", d)
		}
	}

	ns.MustRun(t, "nft", "delete table inet "+TableName)
	if _, err := fw.Counters(); !errors.Is(err, ErrNoTable) {
		t.Fatalf("counters after the table was deleted: %v, want ErrNoTable", err)
	}
	if _, err := fw.Apply(rs); err != nil {
		t.Fatal(err)
	}
	got, err := fw.Counters()
	if err != nil || len(got) != len(rs.Counters) {
		t.Fatalf("counters after the table came back: %d, %v", len(got), err)
	}
}

// BenchmarkCounters reads 1,000 counters of a table that also holds a
// 100,000-element set: the raw dump on the kept socket against
// google/nftables' GetObjects (the read before counters.go).
func BenchmarkCounters(b *testing.B) {
	ns := netnstest.New(b, "bcounters")
	fw := NewApplier(WithNetNS(ns.FD))
	defer fw.Close()
	p := largeSetPolicy(randomPrefixes(13, 100_000))
	p.Rules = append(p.Rules, manyRulesPolicy(1000, -1).Rules...)
	rs, err := compile(p, compileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := fw.Apply(rs); err != nil {
		b.Fatal(err)
	}
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c, err := fw.Counters(); err != nil || len(c) != len(rs.Counters) {
				b.Fatal(len(c), err)
			}
		}
	})
	b.Run("google-nftables", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c := getObjectsCounters(b, ns.FD); len(c) != len(rs.Counters) {
				b.Fatal(fmt.Sprint(len(c)))
			}
		}
	})
}
