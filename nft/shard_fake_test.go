package nft_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
)

// recording is a fake kernel that keeps the ops of every transaction it
// is given.
type recording struct {
	*nfttest.Kernel
	txs [][]nft.Op
}

func (k *recording) Commit(tx *nft.Transaction) error {
	k.txs = append(k.txs, tx.Ops())
	return k.Kernel.Commit(tx)
}

// shardedYAML is a policy whose set big holds n IPv4 /24s (10.0.0.0/24,
// 10.0.2.0/24, ...: none touch) and two IPv6 prefixes, looked up from the
// sources by one rule and to the destinations by another; the /24 at
// index replaced, if any, is a /32 in it instead.
func shardedYAML(n, replaced int) string {
	var items []string
	for i := range n {
		p := fmt.Sprintf("10.%d.%d.0/24", i/128, 2*(i%128))
		if i == replaced {
			p = fmt.Sprintf("10.%d.%d.7/32", i/128, 2*(i%128))
		}
		items = append(items, p)
	}
	items = append(items, `"2001:db8::/64"`, `"2001:db8:1::/64"`)
	return `
version: 1
sets:
  big: [` + strings.Join(items, ", ") + `]
rules:
  - name: drop-big
    direction: input
    from: [{set: big}]
    action: drop
    log: true
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 80}]
    action: accept
  - name: to-big
    direction: output
    to: [{set: big}]
    ports: [{protocol: tcp, port: 443}]
    action: reject
`
}

// TestShardedSetOnFake applies a set larger than the threshold, changes
// one element (one shard patched, no rule written), grows it four times
// (a reshard) and shrinks it back to one set: each time the table is
// what the ruleset says, Inspect renders it as the policy's ruleset, and
// applying again writes nothing.
func TestShardedSetOnFake(t *testing.T) {
	k := &recording{Kernel: nfttest.New()}
	const threshold = 64
	fw := nft.NewApplier(nft.WithKernel(k), nft.WithShardThreshold(threshold))
	w := &world{kernel: k, fw: fw, fake: k.Kernel}
	check := func(step string, rs *nft.Ruleset) {
		t.Helper()
		t.Logf("checking: %s", step)
		checkHolds(t, w, rs)
		if eq, err := fw.Equal(rs); !eq || err != nil {
			t.Errorf("%s: Equal = %v, %v", step, eq, err)
		}
	}
	shards := func() []string {
		var out []string
		for name := range k.Snapshot().Sets {
			if strings.Contains(name, ".s.") {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}

	rs := compile(t, shardedYAML(1000, -1), "", nil)
	if _, err := fw.Apply(rs); err != nil {
		t.Fatal(err)
	}
	check("first apply", rs)
	first := shards()
	if len(first) != (1000+threshold-1)/threshold {
		t.Fatalf("shards %q", first)
	}
	if _, ok := k.Snapshot().Sets["big-v6"]; !ok {
		t.Errorf("the small IPv6 set was sharded or renamed")
	}

	changed := compile(t, shardedYAML(1000, 500), "", nil)
	k.txs = nil
	res, err := fw.Apply(changed)
	if err != nil {
		t.Fatal(err)
	}
	check("one element changed", changed)
	if len(k.txs) != 1 {
		t.Fatalf("%d transactions", len(k.txs))
	}
	touched := map[string]bool{}
	for _, op := range k.txs[0] {
		switch op := op.(type) {
		case nft.AddElements:
			touched[op.Set.Name] = true
		case nft.DeleteElements:
			touched[op.Set.Name] = true
		default:
			t.Errorf("one element changed: op %q", op.Change())
		}
	}
	if len(touched) != 1 || !slices.Equal(shards(), first) {
		t.Errorf("one element changed: sets %v touched, shards %q (before %q)", touched, shards(), first)
	}
	if s := res.Summary; s.ElementsAdded != 1 || s.ElementsRemoved != 1 || len(s.RulesChanged)+len(s.RulesAdded)+len(s.RulesRemoved) != 0 {
		t.Errorf("one element changed: summary %+v", s)
	}

	// Drift: one shard rule deleted, a stray element in a shard. The
	// table then shows the remaining shard rules one by one, the stray
	// element in the policy's set; the repair writes one rule and deletes
	// one element, and keeps the shards.
	ks := k.Snapshot()
	input := ks.Chains["input"].Rules
	var shardRules []nft.RuleState
	for _, r := range input {
		if slices.Contains(r.Counters, "drop-big") {
			shardRules = append(shardRules, r)
		}
	}
	// drop-big's rules: the log rule's shards, the drop rule's, then
	// IPv6's two. Delete the drop rule's last shard.
	if err := k.DeleteRule("input", shardRules[2*len(first)-1].Handle); err != nil {
		t.Fatal(err)
	}
	stray := nft.AddrRange{From: netip.MustParseAddr("10.0.1.1"), To: netip.MustParseAddr("10.0.1.1")}
	if err := k.AddElements(first[0], stray); err != nil {
		t.Fatal(err)
	}
	in, err := fw.Inspect(changed)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(in.Text, "ip saddr @"+first[0]) || !strings.Contains(in.Text, "10.0.1.1") {
		t.Errorf("drift: the table does not show the remaining shard rules or the stray element:\n%s", in.Text)
	}
	res, err = fw.Apply(changed)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 2 || !slices.Equal(shards(), first) {
		t.Errorf("drift repaired with %q; shards %q", res.Changes, shards())
	}
	check("drift repaired", changed)

	// A reshard rewrites the rules that look the set up, which the
	// policy did not change: the summary says only elements changed.
	noRuleChanged := func(step string, res nft.Result) {
		t.Helper()
		if s := res.Summary; len(s.RulesChanged)+len(s.RulesAdded)+len(s.RulesRemoved) != 0 || s.ElementsAdded == 0 {
			t.Errorf("%s: summary %+v", step, s)
		}
	}
	grown := compile(t, shardedYAML(4000, -1), "", nil)
	if res, err = fw.Apply(grown); err != nil {
		t.Fatal(err)
	}
	noRuleChanged("grown", res)
	check("grown", grown)
	if got := shards(); len(got) != (4000+threshold-1)/threshold {
		t.Errorf("grown to 4000: %d shards", len(got))
	}

	shrunk := compile(t, shardedYAML(threshold/4, -1), "", nil)
	if res, err = fw.Apply(shrunk); err != nil {
		t.Fatal(err)
	}
	noRuleChanged("shrunk", res)
	check("shrunk", shrunk)
	if got := shards(); len(got) != 0 {
		t.Errorf("shrunk to %d: shards %q", threshold/4, got)
	}
	if s, ok := k.Snapshot().Sets["big-v4"]; !ok || len(s.Elements) != threshold/4 {
		t.Errorf("shrunk: set big-v4 is %+v", s)
	}
}
