package nft

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/policy"
)

// randomPrefixes returns n IPv4 prefixes, /24s and /32s, the same for the
// same seed. No two overlap or touch, so they stay n ranges after merging.
func randomPrefixes(seed uint64, n int) []netip.Prefix {
	rng := rand.New(rand.NewPCG(seed, 0x6564676566770a))
	const (
		firstBlock = 1 << 16   // 1.0.0.0
		lastBlock  = 224 << 16 // below multicast
	)
	whole := map[uint32]bool{} // /24 blocks used whole
	hosts := map[uint32]bool{} // /24 blocks holding /32s
	taken := map[uint32]bool{} // addresses used as /32s
	addr := func(v uint32) netip.Addr {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	}
	out := make([]netip.Prefix, 0, n)
	for len(out) < n {
		block := firstBlock + rng.Uint32N(lastBlock-firstBlock)
		if rng.IntN(10) < 3 {
			// A /24 must not touch another /24 or hold /32s.
			if whole[block] || whole[block-1] || whole[block+1] || hosts[block] {
				continue
			}
			whole[block] = true
			out = append(out, netip.PrefixFrom(addr(block<<8), 24))
			continue
		}
		// /32s take odd host numbers 1..253: never adjacent to each other
		// or to a neighbouring /24.
		if whole[block] {
			continue
		}
		a := block<<8 | (2*rng.Uint32N(127) + 1)
		if taken[a] {
			continue
		}
		taken[a], hosts[block] = true, true
		out = append(out, netip.PrefixFrom(addr(a), 32))
	}
	return out
}

func largeSetPolicy(prefixes []netip.Prefix) *policy.Policy {
	return &policy.Policy{
		Version:  1,
		Defaults: policy.Defaults{Input: policy.Drop, Forward: policy.Accept, Output: policy.Accept},
		Failsafe: []policy.PortRange{{Protocol: policy.TCP, Port: 22, EndPort: 22}},
		Sets:     []policy.Set{{Name: "blocklist", Prefixes: prefixes}},
		Rules: []policy.Rule{
			{Name: "drop-blocklisted", Direction: policy.Input, From: []policy.Peer{{Set: "blocklist"}}, Action: policy.Drop, Log: true},
			{Name: "ssh", Direction: policy.Input, Ports: []policy.PortRange{{Protocol: policy.TCP, Port: 22, EndPort: 22}}, Action: policy.Accept},
			{Name: "kube-api", Direction: policy.Input, Ports: []policy.PortRange{{Protocol: policy.TCP, Port: 6443, EndPort: 6443}}, Action: policy.Accept},
		},
	}
}

// TestLargeSet applies a policy whose set holds 100,000 CIDRs, re-applies
// it and changes one element, logging how long each takes, and checks by
// reading the set back that the kernel holds every element.
func TestLargeSet(t *testing.T) {
	if testing.Short() {
		t.Skip("takes long: a 100,000-element set")
	}
	ns := netnstest.New(t, "large")
	fw := NewApplier(WithNetNS(ns.FD))
	const n = 100_000
	prefixes := randomPrefixes(1, n)
	rs, err := Compile(largeSetPolicy(prefixes))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(rs.Set("blocklist-v4").Ranges); got != n {
		t.Fatalf("compiled set has %d ranges, want %d", got, n)
	}

	start := time.Now()
	res, err := fw.Apply(rs)
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	t.Logf("first apply of %d CIDRs: %v (%d messages)", n, time.Since(start), res.Messages)
	checkSet(t, ns, rs.Set("blocklist-v4"))

	start = time.Now()
	res, err = fw.Apply(rs)
	if err != nil {
		t.Fatalf("re-apply: %v", err)
	}
	t.Logf("idempotent re-apply: %v (%d messages)", time.Since(start), res.Messages)
	if res.Messages != 0 {
		t.Errorf("re-apply wrote %d messages: %q", res.Messages, res.Changes)
	}

	start = time.Now()
	res, err = NewApplier(WithNetNS(ns.FD)).Apply(rs)
	if err != nil {
		t.Fatalf("re-apply by a new Applier: %v", err)
	}
	t.Logf("idempotent re-apply by a new Applier, which reads the set back: %v (%d messages)", time.Since(start), res.Messages)
	if res.Messages != 0 {
		t.Errorf("re-apply by a new Applier wrote %d messages: %q", res.Messages, res.Changes)
	}

	changed := append([]netip.Prefix{netip.MustParsePrefix("192.0.2.77/32")}, prefixes[1:]...)
	rs2, err := Compile(largeSetPolicy(changed))
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	res, err = fw.Apply(rs2)
	if err != nil {
		t.Fatalf("one-element change: %v", err)
	}
	t.Logf("one-element change: %v (%d messages: %q)", time.Since(start), res.Messages, res.Changes)
	// The set is sharded: the old element leaves its shard, the new one
	// goes into its own, and no rule changes.
	if !oneElementSwapped(res.Changes, "blocklist-v4") {
		t.Errorf("changes %q, want one range deleted from a shard of blocklist-v4 and one added to one", res.Changes)
	}
	checkSet(t, ns, rs2.Set("blocklist-v4"))
}

// oneElementSwapped reports whether changes delete one range from a
// shard of set and add one to a shard of it, and nothing else.
func oneElementSwapped(changes []string, set string) bool {
	del, add := 0, 0
	for _, c := range changes {
		name, ok := strings.CutPrefix(c, "delete 1 ranges from set ")
		if ok {
			del++
		} else if name, ok = strings.CutPrefix(c, "add 1 ranges to set "); ok {
			add++
		}
		if base, _, shard := parseShardName(name); !ok || !shard || base != set {
			return false
		}
	}
	return del == 1 && add == 1 && len(changes) == 2
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkSet reads a set back from the kernel with google/nftables (the nft
// CLI takes seconds on a set this size), its shards folded into one, and
// compares it range by range.
func checkSet(t *testing.T, ns *netnstest.NS, want *AddrSet) {
	t.Helper()
	start := time.Now()
	got, shards := kernelSetFolded(t, ns, want.Name, want.V6)
	t.Logf("read back %d ranges of %s (%d shards) in %v", len(got), want.Name, shards, time.Since(start))
	if len(got) != len(want.Ranges) {
		t.Fatalf("the kernel holds %d ranges in %s, want %d", len(got), want.Name, len(want.Ranges))
	}
	for i := range got {
		if got[i] != want.Ranges[i] {
			t.Fatalf("range %d of %s is %v, want %v", i, want.Name, got[i], want.Ranges[i])
		}
	}
}

// kernelSetFolded reads the named set from the kernel, or its shards
// folded into one as Inspect shows them, and how many shards it has (0:
// one set).
func kernelSetFolded(t testing.TB, ns *netnstest.NS, name string, v6 bool) ([]AddrRange, int) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	sets, err := c.GetSets(table)
	if err != nil {
		t.Fatal(err)
	}
	ks := &TableState{Exists: true, Sets: map[string]*SetState{}}
	shards := 0
	for _, s := range sets {
		if set, _, ok := parseShardName(s.Name); s.Name != name && (!ok || set != name) {
			continue
		} else if ok {
			shards++
		}
		ks.Sets[s.Name] = &SetState{Name: s.Name, KeyType: s.KeyType.Name, Interval: true,
			Elements: kernelRanges(t, ns, s.Name, v6)}
	}
	folded, ok := foldShards(ks).Sets[name]
	if !ok || (shards > 0 && len(ks.Sets) != shards) {
		t.Fatalf("the kernel holds no set %s, or both it and shards of it: %d shards", name, shards)
	}
	return folded.Elements, shards
}

// manyRulesPolicy has n input rules, each opening one port; the rule at
// index changed opens another port.
func manyRulesPolicy(n, changed int) *policy.Policy {
	p := &policy.Policy{Version: 1, Defaults: policy.Defaults{Input: policy.Drop, Forward: policy.Accept, Output: policy.Accept}}
	for i := range n {
		port := uint16(1000 + i)
		if i == changed {
			port = 60000
		}
		p.Rules = append(p.Rules, policy.Rule{Name: fmt.Sprintf("rule-%d", i), Direction: policy.Input,
			Ports: []policy.PortRange{{Protocol: policy.TCP, Port: port, EndPort: port}}, Action: policy.Accept})
	}
	return p
}

// TestManyRules applies a chain of 10,000 rules, laid out linearly (see
// TestManyRulesDispatched for the verdict map), 20,000 messages with
// their counters: the transaction's replies must not overflow (they did,
// with ENOBUFS after a successful commit), and re-applying or changing
// one rule in the middle must neither rewrite the chain nor need memory
// in the square of its length (the rule diff once took 1.3 GB here).
func TestManyRules(t *testing.T) {
	ns := netnstest.New(t, "many")
	fw := NewApplier(WithNetNS(ns.FD))
	const n = 10_000
	compile := func(changed int) *Ruleset {
		rs, err := compile(manyRulesPolicy(n, changed), compileOptions{linear: true})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	start := time.Now()
	res, err := fw.Apply(compile(-1))
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	t.Logf("first apply of %d rules: %v (%d messages)", n, time.Since(start), res.Messages)
	start = time.Now()
	if res, err = fw.Apply(compile(-1)); err != nil || res.Messages != 0 {
		t.Fatalf("re-apply: %d messages, %v", res.Messages, err)
	}
	t.Logf("re-apply: %v", time.Since(start))
	start = time.Now()
	if res, err = fw.Apply(compile(n / 2)); err != nil || res.Messages != 2 {
		t.Fatalf("changing one rule: %v, %d messages: %q", err, res.Messages, res.Changes)
	}
	t.Logf("one rule changed: %v", time.Since(start))
}

// TestLargeAnonymousSet gives one rule 3,000 addresses of its own: its
// anonymous set takes more than one message of elements, and the kernel
// holds every one.
func TestLargeAnonymousSet(t *testing.T) {
	ns := netnstest.New(t, "anon")
	fw := NewApplier(WithNetNS(ns.FD))
	var peers []policy.Peer
	for _, p := range randomPrefixes(3, 3000) {
		peers = append(peers, policy.Peer{CIDR: p})
	}
	p := largeSetPolicy(nil)
	p.Rules = append(p.Rules, policy.Rule{Name: "inline", Direction: policy.Input, From: peers, Action: policy.Accept})
	rs, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Apply(rs); err != nil {
		t.Fatalf("apply: %v", err)
	}
	want := findRule(t, rs, "inline").Matches[0].(AddrMatch).Ranges
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	sets, err := c.GetSets(table)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range sets {
		if !s.Anonymous || s.KeyType != nftables.TypeIPAddr {
			continue
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := elementRanges(elems, false); len(got) == len(want) {
			found = true
			if !slices.Equal(got, want) {
				t.Errorf("the anonymous set holds other ranges than the rule's")
			}
		}
	}
	if !found {
		t.Errorf("no anonymous set holds the rule's %d ranges", len(want))
	}
	if res, err := fw.Apply(rs); err != nil || res.Messages != 0 {
		t.Errorf("re-apply: %d messages, %v", res.Messages, err)
	}
}

// TestLargeSetBackAndForth changes one element of a 100,000-element set
// and changes it back, several times, reading the table after each apply
// with the same Applier and with a new one: a daemon once could not read
// its own table after the second change ("the table kept changing while
// it was read", for minutes, with no commit anywhere).
func TestLargeSetBackAndForth(t *testing.T) {
	if testing.Short() {
		t.Skip("takes long: a 100,000-element set")
	}
	ns := netnstest.New(t, "backforth")
	fw := NewApplier(WithNetNS(ns.FD))
	defer fw.Close()
	const n = 100_000
	prefixes := randomPrefixes(7, n)
	original, err := Compile(largeSetPolicy(prefixes))
	if err != nil {
		t.Fatal(err)
	}
	changed, err := Compile(largeSetPolicy(append([]netip.Prefix{netip.MustParsePrefix("192.0.2.77/32")}, prefixes[1:]...)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Apply(original); err != nil {
		t.Fatalf("first apply: %v", err)
	}
	for i, rs := range []*Ruleset{changed, original, changed, original, changed, original} {
		start := time.Now()
		res, err := fw.Apply(rs)
		if err != nil {
			t.Fatalf("change %d: %v", i+1, err)
		}
		t.Logf("change %d: %v, %d messages", i+1, time.Since(start), res.Messages)
		if res.Messages != 2 {
			t.Errorf("change %d wrote %d messages, want 2: %q", i+1, res.Messages, res.Changes)
		}
		start = time.Now()
		if eq, err := fw.Equal(rs); err != nil || !eq {
			t.Fatalf("after change %d the same Applier reads the table: equal %v, %v", i+1, eq, err)
		}
		t.Logf("change %d: read back by the same Applier in %v", i+1, time.Since(start))
		start = time.Now()
		if eq, err := NewApplier(WithNetNS(ns.FD)).Equal(rs); err != nil || !eq {
			t.Fatalf("after change %d a new Applier reads the table: equal %v, %v", i+1, eq, err)
		}
		t.Logf("change %d: read back by a new Applier in %v", i+1, time.Since(start))
	}
	checkSet(t, ns, original.Set("blocklist-v4"))
}

// TestVeryLargeSet applies 250,000 CIDRs into an empty namespace in one
// transaction, its elements packed as many to a message as fit the 16-bit
// attribute length: the commit is neither refused for its size (EMSGSIZE)
// nor lost in its replies (ENOBUFS), and the kernel holds every range.
func TestVeryLargeSet(t *testing.T) {
	if testing.Short() {
		t.Skip("takes long: a 250,000-element set")
	}
	ns := netnstest.New(t, "verylarge")
	fw := NewApplier(WithNetNS(ns.FD))
	defer fw.Close()
	const n = 250_000
	rs, err := Compile(largeSetPolicy(randomPrefixes(13, n)))
	if err != nil {
		t.Fatal(err)
	}
	set := rs.Set("blocklist-v4")
	start := time.Now()
	res, err := fw.Apply(rs)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	t.Logf("first apply of %d CIDRs: %v (%d messages)", n, time.Since(start), res.Messages)
	elemMsgs := len(rangeMessages(unix.NFT_MSG_NEWSETELEM, set.Name, 1, set.Ranges))
	if limit := n * rangeElemsLen(set.Ranges[0]) / maxElemListBytes * 2; elemMsgs > limit {
		t.Errorf("%d element messages for %d ranges, want at most %d", elemMsgs, n, limit)
	}
	checkSet(t, ns, set)
}
