package nft

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Inspection is what table inet edgefw holds, and what applying a ruleset
// to it would write, from one read of the kernel.
type Inspection struct {
	// Text renders the table as Ruleset.String renders a ruleset: for a
	// table that holds exactly a ruleset, the two are equal byte for
	// byte. "" when the table does not exist.
	//
	// Rules are recognised by the hash edgefw stores in each, and
	// rendered as the ruleset that has that hash writes them; a rule no
	// given ruleset has is a comment naming its handle (`nft -a list
	// chain inet edgefw CHAIN` shows it). Elements are shown for address
	// interval sets, which are the only ones edgefw makes.
	Text string
	// Plan is what Apply would write now: its Changes and Messages, as
	// Apply would report them. Nothing is sent. If the kernel refused
	// that patch, Apply would replace the table's contents instead.
	Plan Result
}

// Inspect reads table inet edgefw once, renders what it holds, and plans
// rs against it without writing anything: what the kernel holds, and
// what Apply(rs) would change. The rendering knows the rules of rs and of
// the known rulesets (such as the one running), and lays the table out in
// their order, so that it reads as a diff against rs.String(). With a nil
// rs it only renders.
func (a *Applier) Inspect(rs *Ruleset, known ...*Ruleset) (Inspection, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ks, err := a.kernel.ReadTable()
	if err != nil {
		return Inspection{}, err
	}
	refs := slices.DeleteFunc(append([]*Ruleset{rs}, known...), func(r *Ruleset) bool { return r == nil })
	in := Inspection{Text: renderKernel(ks, refs, a.shardAbove)}
	if rs == nil {
		return in, nil
	}
	_, res, err := a.prepare(ks, rs, false)
	if err != nil {
		return Inspection{}, err
	}
	in.Plan = res
	return in, nil
}

// renderKernel renders what the kernel holds, laid out in the order of
// refs: each object where the first ruleset that has it puts it, then
// objects no ruleset has, by name. Shards are shown as the policy's sets
// and rules (see shard.go): the refs are sharded over ks as the Applier
// with threshold shardAbove would write them, and the kernel's rules
// that are one ref rule's shards, in order, are that one rule.
func renderKernel(ks *TableState, refs []*Ruleset, shardAbove int) string {
	if !ks.Exists {
		return ""
	}
	var counters, sets, chains []string
	texts := map[string]string{}
	// sharded maps the hash of a rule's first shard to its shards' hashes
	// and the rule's text.
	sharded := map[string]shardedRule{}
	for _, rs := range refs {
		counters = append(counters, rs.Counters...)
		for _, s := range rs.Sets {
			sets = append(sets, s.Name)
		}
		for _, m := range rs.Meters {
			sets = append(sets, m.Name)
		}
		layout := planShards(rs, ks, shardAbove)
		for _, ch := range rs.Chains {
			chains = append(chains, ch.Name)
			for _, r := range ch.Rules {
				texts[r.Hash()] = r.String()
				shards := layout.rule(r)
				if len(shards) < 2 {
					continue
				}
				hashes := make([]string, len(shards))
				for i, sr := range shards {
					hashes[i] = sr.Hash()
					texts[hashes[i]] = sr.String()
				}
				sharded[hashes[0]] = shardedRule{hashes: hashes, text: r.String()}
			}
		}
	}
	ks = foldShards(ks)
	t := &tableText{counters: inOrder(ks.Counters, counters)}
	// Named sets before meters, as a ruleset renders them.
	var meters []setText
	for _, name := range inOrder(ks.Sets, sets) {
		if s := ks.Sets[name]; s.Dynamic {
			meters = append(meters, kernelSetText(s))
		} else {
			t.sets = append(t.sets, kernelSetText(s))
		}
	}
	t.sets = append(t.sets, meters...)
	for _, name := range inOrder(ks.Chains, chains) {
		ct := chainText{name: name, header: ks.Chains[name].Base.header()}
		rules := ks.Chains[name].Rules
		for i := 0; i < len(rules); i++ {
			if sr, ok := sharded[rules[i].Hash]; ok && sr.heads(rules[i:]) {
				ct.rules = append(ct.rules, sr.text)
				i += len(sr.hashes) - 1
				continue
			}
			ct.rules = append(ct.rules, kernelRuleText(rules[i], texts))
		}
		t.chains = append(t.chains, ct)
	}
	return t.String()
}

// shardedRule is a rule of a ruleset as the kernel holds it sharded: the
// hashes of its shards' rules, in order, and its own text.
type shardedRule struct {
	hashes []string
	text   string
}

// heads reports whether rules start with all of the rule's shards, in
// order: then they show as the one rule.
func (sr shardedRule) heads(rules []RuleState) bool {
	if len(rules) < len(sr.hashes) {
		return false
	}
	for i, h := range sr.hashes {
		if rules[i].Hash != h {
			return false
		}
	}
	return true
}

// inOrder returns the keys of present in the order they first appear in
// order, then the others sorted.
func inOrder[V any](present map[string]V, order []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, name := range order {
		if _, ok := present[name]; ok && !seen[name] {
			out = append(out, name)
			seen[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(present)) {
		if !seen[name] {
			out = append(out, name)
		}
	}
	return out
}

// kernelSetText declares a kernel set as nft lists it, with its elements
// when it is an address interval set.
func kernelSetText(s *SetState) setText {
	st := setText{name: s.Name, typ: s.KeyType, size: s.Size}
	if s.IsMap {
		st.typ += " : " + s.DataType
	}
	// nft lists the flags in this order (set_print_declaration).
	for _, f := range []struct {
		on   bool
		name string
	}{{s.Constant, "constant"}, {s.Dynamic, "dynamic"}, {s.Interval, "interval"}, {s.HasTimeout, "timeout"}} {
		if f.on {
			st.flags = append(st.flags, f.name)
		}
	}
	if s.HasTimeout {
		st.timeout = s.Timeout
	}
	v4, v6 := s.KeyType == nftables.TypeIPAddr.Name, s.KeyType == nftables.TypeIP6Addr.Name
	if s.Interval && !s.IsMap && !s.Dynamic && (v4 || v6) {
		st.elements = renderElements(&AddrSet{V6: v6, Ranges: s.Elements})
	}
	return st
}

// header declares a base chain as nft lists it; "" for a regular chain
// (nil).
func (b *BaseChain) header() string {
	if b == nil {
		return ""
	}
	return baseChainHeader(b.Type, b.Hook, priorityText(b.Priority), b.Policy)
}

// basePriorityPolicy returns a base chain's priority and its policy,
// accept or drop.
func basePriorityPolicy(ch *nftables.Chain) (int32, string) {
	var prio int32
	if ch.Priority != nil {
		prio = int32(*ch.Priority)
	}
	if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
		return prio, "drop"
	}
	return prio, "accept"
}

// inetHookName names a hook of the inet family as nft does.
func inetHookName(h nftables.ChainHook) string {
	switch h {
	case unix.NF_INET_PRE_ROUTING:
		return "prerouting"
	case unix.NF_INET_LOCAL_IN:
		return "input"
	case unix.NF_INET_FORWARD:
		return "forward"
	case unix.NF_INET_LOCAL_OUT:
		return "output"
	case unix.NF_INET_POST_ROUTING:
		return "postrouting"
	case nfInetIngress:
		return "ingress"
	}
	return "hook-" + strconv.FormatUint(uint64(h), 10)
}

// nfInetIngress is NF_INET_INGRESS (linux/netfilter.h), which x/sys/unix
// does not define.
const nfInetIngress = 5

// priorityText writes a chain priority as nft does near the filter
// priority (0): "filter", "filter + 5", "filter - 5"; others as numbers.
func priorityText(p int32) string {
	switch {
	case p == 0:
		return "filter"
	case p > 0 && p <= 10:
		return fmt.Sprintf("filter + %d", p)
	case p < 0 && p >= -10:
		return fmt.Sprintf("filter - %d", -p)
	}
	return strconv.Itoa(int(p))
}

// kernelRuleText renders a kernel rule by the text of the known rule with
// its hash, or as a comment saying where it comes from.
func kernelRuleText(r RuleState, texts map[string]string) string {
	if text, ok := texts[r.Hash]; ok && r.Hash != "" {
		return text
	}
	who := "not written by edgefw"
	if r.Hash != "" {
		who = "written by edgefw for another ruleset"
	}
	exprs := "expressions"
	if r.Exprs == 1 {
		exprs = "expression"
	}
	return fmt.Sprintf("# rule handle %d: %s (%d %s)", r.Handle, who, r.Exprs, exprs)
}
