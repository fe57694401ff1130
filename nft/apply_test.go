package nft

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/policy"
)

// TestReapplyWritesNothing applies every golden policy twice: the second
// apply must send no message, leave the ruleset generation where it was,
// and show nothing in nft monitor.
func TestReapplyWritesNothing(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	for name, path := range goldenPolicies(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rs := compileFile(t, path)
			ns := netnstest.New(t, "reapply")
			fw := NewApplier(WithNetNS(ns.FD))
			if res, err := fw.Apply(rs); err != nil || !res.Full && res.Messages == 0 {
				t.Fatalf("first apply: %+v, %v", res, err)
			}
			mon := startMonitor(t, ns)
			gen := generation(t, fw)
			res, err := fw.Apply(compileFile(t, path))
			if err != nil {
				t.Fatalf("second apply: %v", err)
			}
			if res.Messages != 0 || res.Changed() || len(res.Changes) > 0 {
				t.Errorf("second apply wrote %d messages: %q", res.Messages, res.Changes)
			}
			if g := generation(t, fw); g != gen {
				t.Errorf("ruleset generation moved from %d to %d", gen, g)
			}
			if ev := mon.changes(t); len(ev) > 0 {
				t.Errorf("nft monitor saw changes:\n%s", strings.Join(ev, "\n"))
			}
			if eq, err := fw.Equal(rs); err != nil || !eq {
				t.Errorf("Equal = %v, %v; want true", eq, err)
			}
		})
	}
}

func generation(t *testing.T, fw *Applier) uint32 {
	t.Helper()
	g, err := fw.Generation()
	if err != nil {
		t.Fatalf("read generation: %v", err)
	}
	return g
}

const incrementalBase = `
version: 1
sets:
  trusted: [192.0.2.0/25, 198.51.100.0/24, 203.0.113.8/29, "2001:db8::/64"]
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 80}]
    action: accept
  - name: metrics
    direction: input
    from: [{set: trusted}]
    ports: [{protocol: tcp, port: 9100}]
    action: accept
  - name: other
    direction: input
    ports: [{protocol: tcp, port: 8080}]
    action: accept
`

// TestChangeKeepsOtherCounters changes a policy around a rule that has
// counted traffic: the rule's kernel rule stays in place, its counter and
// the implicit counters keep their values, and only what changed is sent.
func TestChangeKeepsOtherCounters(t *testing.T) {
	l := newLab(t, plainV4)
	l.apply(t, compileYAML(t, incrementalBase))
	srv := serve(t, l.host, "tcp", 80)
	web := flow{"tcp", plainV4, hostV4, 80}
	for range 3 {
		if got := web.try(t, l.client, srv, accepted); got != accepted {
			t.Fatalf("%s: %s", web, got)
		}
	}
	before := l.counters(t)
	if before["web"].Packets == 0 {
		t.Fatalf("web counted nothing: %v", before)
	}
	handles := ruleHandles(t, l.host)

	// Change another rule's port, add a rule before web and remove one.
	changed := strings.NewReplacer("port: 8080", "port: 8081", "rules:\n", `rules:
  - name: new-first
    direction: input
    ports: [{protocol: udp, port: 5000}]
    action: accept
`).Replace(incrementalBase)
	changed = strings.Replace(changed, `  - name: metrics
    direction: input
    from: [{set: trusted}]
    ports: [{protocol: tcp, port: 9100}]
    action: accept
`, "", 1)
	res := l.apply(t, compileYAML(t, changed))
	if res.Full {
		t.Errorf("the change was applied by full replacement: %q", res.Changes)
	}
	wantChanges := []string{
		`add counter "new-first"`,
		`delete rule ` + handles[`ip saddr @trusted-v4 tcp dport 9100 counter name "metrics" accept`] + ` of chain input`,
		`delete rule ` + handles[`ip6 saddr @trusted-v6 tcp dport 9100 counter name "metrics" accept`] + ` of chain input`,
		`delete rule ` + handles[`tcp dport 8080 counter name "other" accept`] + ` of chain input`,
		`delete counter "metrics"`,
		`add rule "new-first" in chain input`,
		`add rule "other" in chain input`,
	}
	if diff := cmp.Diff(wantChanges, res.Changes); diff != "" {
		t.Errorf("changes written (-want +got):\n%s", diff)
	}

	after := l.counters(t)
	for name, c := range before {
		if name == "metrics" || background(name) {
			continue
		}
		if after[name] != c {
			t.Errorf("counter %s went from %+v to %+v", name, c, after[name])
		}
	}
	if h := ruleHandles(t, l.host)[`tcp dport 80 counter name "web" accept`]; h != handles[`tcp dport 80 counter name "web" accept`] {
		t.Errorf("web's rule was rewritten: handle %s, was %s", h, handles[`tcp dport 80 counter name "web" accept`])
	}
	if eq, err := l.fw.Equal(compileYAML(t, changed)); err != nil || !eq {
		t.Errorf("Equal after the change = %v, %v", eq, err)
	}

	// The kept rule still works and still counts into the same counter.
	if got := web.try(t, l.client, srv, accepted); got != accepted {
		t.Fatalf("%s after the change: %s", web, got)
	}
	if c := l.counters(t)["web"]; c.Packets <= before["web"].Packets {
		t.Errorf("web's counter did not move after the change: %+v", c)
	}

	// Changing web's own match rewrites its kernel rule, but its named
	// counter, and so its value, stays.
	l.apply(t, compileYAML(t, strings.Replace(changed, "port: 80}", "port: 81}", 1)))
	if c := l.counters(t)["web"]; c.Packets <= before["web"].Packets {
		t.Errorf("web's counter lost its value when its rule changed: %+v", c)
	}
}

// ruleHandles maps the rules of table inet edgefw, as nft lists them, to
// their handles.
func ruleHandles(t *testing.T, ns *netnstest.NS) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(ns.MustRun(t, "nft", "-a", "list", "table", "inet", TableName), "\n") {
		rule, handle, ok := strings.Cut(strings.TrimSpace(line), " # handle ")
		if ok && !strings.HasPrefix(rule, "chain ") && !strings.HasPrefix(rule, "set ") && !strings.HasPrefix(rule, "counter ") {
			out[rule] = handle
		}
	}
	return out
}

// TestSetChangeWritesOnlyElements changes named sets in ways that merge,
// split, grow and shrink their ranges: each apply must write only element
// messages, and the kernel must then hold exactly the new contents.
func TestSetChangeWritesOnlyElements(t *testing.T) {
	ns := netnstest.New(t, "setdiff")
	fw := NewApplier(WithNetNS(ns.FD))
	withSet := func(elems string) *Ruleset {
		return compileYAML(t, `
version: 1
sets:
  s: [`+elems+`]
rules:
  - {name: r, direction: input, from: [{set: s}], action: accept}
`)
	}
	if _, err := fw.Apply(withSet(`10.0.0.0/24, 10.0.2.0/24, 192.0.2.7/32, "2001:db8::/64"`)); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name, elems string
		changes     []string
	}{
		{"add one", `10.0.0.0/24, 10.0.2.0/24, 10.9.0.0/16, 192.0.2.7/32, "2001:db8::/64"`,
			[]string{"add 1 ranges to set s-v4"}},
		{"remove one", `10.0.0.0/24, 10.0.2.0/24, 192.0.2.7/32, "2001:db8::/64"`,
			[]string{"delete 1 ranges from set s-v4"}},
		{"replace one", `10.0.0.0/24, 10.0.2.0/24, 192.0.2.8/32, "2001:db8::/64"`,
			[]string{"delete 1 ranges from set s-v4", "add 1 ranges to set s-v4"}},
		{"fill the gap: three ranges merge into one", `10.0.0.0/24, 10.0.1.0/24, 10.0.2.0/24, 192.0.2.8/32, "2001:db8::/64"`,
			[]string{"delete 2 ranges from set s-v4", "add 1 ranges to set s-v4"}},
		{"split it again", `10.0.0.0/24, 10.0.2.0/24, 192.0.2.8/32, "2001:db8::/64"`,
			[]string{"delete 1 ranges from set s-v4", "add 2 ranges to set s-v4"}},
		{"same start, longer", `10.0.0.0/23, 10.0.2.0/24, 192.0.2.8/32, "2001:db8::/64"`,
			[]string{"delete 2 ranges from set s-v4", "add 1 ranges to set s-v4"}},
		{"ipv6 only", `10.0.0.0/23, 10.0.2.0/24, 192.0.2.8/32, "2001:db8::/64", "2001:db8:1::/48"`,
			[]string{"add 1 ranges to set s-v6"}},
		{"emptied", `"2001:db8::/64"`,
			[]string{"delete 2 ranges from set s-v4", "delete 1 ranges from set s-v6"}},
		{"whole space", `0.0.0.0/0, "::/0"`,
			[]string{"add 1 ranges to set s-v4", "delete 1 ranges from set s-v6", "add 1 ranges to set s-v6"}},
	}
	for _, step := range steps {
		rs := withSet(step.elems)
		res, err := fw.Apply(rs)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if diff := cmp.Diff(step.changes, res.Changes); diff != "" || res.Full {
			t.Errorf("%s: changes (-want +got), full %v:\n%s", step.name, res.Full, diff)
		}
		if res.Messages != len(step.changes) {
			t.Errorf("%s: %d messages, want %d", step.name, res.Messages, len(step.changes))
		}
		for _, s := range rs.Sets {
			if got := kernelRanges(t, ns, s.Name, s.V6); !slices.Equal(got, s.Ranges) {
				t.Errorf("%s: kernel set %s holds %v, want %v", step.name, s.Name, got, s.Ranges)
			}
		}
	}
}

// TestMappedBlockBoundaries keeps IPv6 set boundaries next to
// ::ffff:0:0/96 (the IPv4-mapped block; ::fffe:0:0/96 ends with an end
// element at ::ffff:0:0) as IPv6 when it reads them back:
// re-applying writes nothing and a fresh Applier finds the table equal.
func TestMappedBlockBoundaries(t *testing.T) {
	ns := netnstest.New(t, "mapped")
	for i, elems := range []string{`"::fffe:0:0/96"`, `"::fffe:ffff:ff00/120", 10.0.0.0/8, "2001:db8::/32"`, `"::1:0:0:0/96"`} {
		rs := compileYAML(t, `
version: 1
sets:
  s: [`+elems+`]
rules:
  - {name: r, direction: input, from: [{set: s}], action: accept}
`)
		if _, err := NewApplier(WithNetNS(ns.FD)).Apply(rs); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for _, s := range rs.Sets {
			if got := kernelRanges(t, ns, s.Name, s.V6); !slices.Equal(got, s.Ranges) {
				t.Errorf("step %d: kernel set %s holds %v, want %v", i, s.Name, got, s.Ranges)
			}
		}
		res, err := NewApplier(WithNetNS(ns.FD)).Apply(rs)
		if err != nil || res.Messages != 0 {
			t.Errorf("step %d: re-apply wrote %d messages %q: %v", i, res.Messages, res.Changes, err)
		}
		if eq, err := NewApplier(WithNetNS(ns.FD)).Equal(rs); !eq || err != nil {
			t.Errorf("step %d: Equal = %v, %v", i, eq, err)
		}
	}
}

// kernelRanges reads a set back with google/nftables, independently of
// Apply's own reader.
func kernelRanges(t testing.TB, ns *netnstest.NS, name string, v6 bool) []AddrRange {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD), nftables.AsLasting(), nftables.WithSockOptions(largeDumps))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	s, err := c.GetSetByName(table, name)
	if err != nil {
		t.Fatalf("get set %s: %v", name, err)
	}
	elems, err := c.GetSetElements(s)
	if err != nil {
		t.Fatalf("get elements of %s: %v", name, err)
	}
	return elementRanges(elems, v6)
}

// pipeline is what the daemon and edgefwctl apply do with a policy file.
func pipeline(fw *Applier, file string, doc []byte) error {
	p, err := policy.Parse(file, doc)
	if err != nil {
		return err
	}
	rs, err := Compile(p)
	if err != nil {
		return err
	}
	_, err = fw.Apply(rs)
	return err
}

// TestInvalidPolicyChangesNothing runs invalid policies through parse,
// compile and apply: each fails, and the ruleset, counters included, is
// byte for byte what it was.
func TestInvalidPolicyChangesNothing(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	l := newLab(t, plainV4)
	l.apply(t, compileYAML(t, trafficPolicy))
	srv := serve(t, l.host, "tcp", 80)
	if got := (flow{"tcp", plainV4, hostV4, 80}).try(t, l.client, srv, accepted); got != accepted {
		t.Fatalf("traffic before the test: %s", got)
	}
	l.quiesce(t)
	before := l.host.MustRun(t, "nft", "list", "ruleset")
	gen := generation(t, l.fw)

	invalid := map[string]string{
		"unknown field":        "version: 1\nrules:\n  - {name: a, direction: input, action: accept, colour: red}\n",
		"duplicate rule names": "version: 1\nrules:\n  - {name: a, direction: input, action: accept}\n  - {name: a, direction: input, action: drop}\n",
		"host bits set":        "version: 1\nrules:\n  - {name: a, direction: input, from: [{cidr: 192.0.2.1/24}], action: accept}\n",
		"endPort below port":   "version: 1\nrules:\n  - {name: a, direction: input, ports: [{protocol: tcp, port: 90, endPort: 80}], action: accept}\n",
		"undefined set":        "version: 1\nrules:\n  - {name: a, direction: input, from: [{set: nope}], action: accept}\n",
		"reserved name":        "version: 1\nrules:\n  - {name: edgefw-x, direction: input, action: accept}\n",
		"not yaml":             "version: 1\nrules: [\n",
	}
	for name, doc := range invalid {
		err := pipeline(l.fw, "bad.yaml", []byte(doc))
		if err == nil {
			t.Errorf("%s: the policy was accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), "bad.yaml:") {
			t.Errorf("%s: the error does not name the file: %v", name, err)
		}
	}
	if after := l.host.MustRun(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("the ruleset changed:\n%s", cmp.Diff(before, after))
	}
	if g := generation(t, l.fw); g != gen {
		t.Errorf("ruleset generation moved from %d to %d", gen, g)
	}
}

// quiesce removes the lab's link, so that no packet (IPv6 neighbour
// discovery comes unasked) moves a counter while a test compares listings.
func (l *lab) quiesce(t *testing.T) {
	t.Helper()
	l.host.MustRun(t, "ip", "link", "del", l.hostIf)
}

// TestKernelRejectionChangesNothing applies rulesets that pass the
// compiler's checks but not the kernel's: Apply fails with a KernelError
// that names the failing rule or set, and the ruleset, counters included,
// is byte for byte what it was.
func TestKernelRejectionChangesNothing(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	l := newLab(t, plainV4)
	good := compileYAML(t, trafficPolicy)
	l.apply(t, good)
	srv := serve(t, l.host, "tcp", 80)
	if got := (flow{"tcp", plainV4, hostV4, 80}).try(t, l.client, srv, accepted); got != accepted {
		t.Fatalf("traffic before the test: %s", got)
	}
	l.quiesce(t)
	before := l.host.MustRun(t, "nft", "list", "ruleset")
	counters := l.counters(t)
	if counters["web"].Packets == 0 {
		t.Fatalf("web counted nothing: %v", counters)
	}
	gen := generation(t, l.fw)

	tests := []struct {
		name   string
		mutate func(rs *Ruleset)
		what   string // KernelError.What
	}{
		{"counter that does not exist", func(rs *Ruleset) {
			r := findRule(t, rs, "web")
			r.Counter = "not-a-counter"
		}, `add rule "web" in chain input`},
		{"set that does not exist", func(rs *Ruleset) {
			r := findRule(t, rs, "mgmt-admin")
			for i, m := range r.Matches {
				if am, ok := m.(AddrMatch); ok {
					am.Set = "missing-v4"
					r.Matches[i] = am
				}
			}
		}, `add rule "mgmt-admin" in chain input`},
		{"limit rate of zero", func(rs *Ruleset) {
			r := findRule(t, rs, "dns")
			r.Limit = &RateLimit{Rate: 0, Per: "second"}
		}, `add rule "dns" in chain input`},
		{"mss clamping in input", func(rs *Ruleset) {
			findRule(t, rs, "web").Stmt = MSSClampStmt{}
		}, `add rule "web" in chain input`},
		{"set name too long", func(rs *Ruleset) {
			rs.Sets = append(rs.Sets, &AddrSet{Name: strings.Repeat("s", 300)})
		}, `add set ` + strings.Repeat("s", 300) + ` (0 ranges)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := compileYAML(t, trafficPolicy)
			tc.mutate(bad)
			_, err := l.fw.Apply(bad)
			var ke *KernelError
			if !errors.As(err, &ke) {
				t.Fatalf("Apply = %v, want a *KernelError", err)
			}
			if ke.What != tc.what || !strings.Contains(err.Error(), tc.what) {
				t.Errorf("the error names %q, want %q: %v", ke.What, tc.what, err)
			}
			t.Logf("error: %v", err)
			if after := l.host.MustRun(t, "nft", "list", "ruleset"); after != before {
				t.Errorf("the ruleset changed:\n%s", cmp.Diff(before, after))
			}
			if c := l.counters(t); !maps.Equal(c, counters) {
				t.Errorf("counters changed: %s", cmp.Diff(counters, c))
			}
			if g := generation(t, l.fw); g != gen {
				t.Errorf("ruleset generation moved from %d to %d", gen, g)
			}
		})
	}
	// The good ruleset is still the one in the kernel.
	if eq, err := l.fw.Equal(good); err != nil || !eq {
		t.Errorf("Equal(good) = %v, %v", eq, err)
	}
}

// findRule returns the first kernel rule of a policy rule.
func findRule(t *testing.T, rs *Ruleset, owner string) *Rule {
	t.Helper()
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			if r.Owner == owner {
				return r
			}
		}
	}
	t.Fatalf("no rule %q", owner)
	return nil
}

// TestMalformedRulesetRejected gives Apply rulesets whose names collide:
// they are refused before anything is sent.
func TestMalformedRulesetRejected(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "malformed")
	fw := NewApplier(WithNetNS(ns.FD))
	if _, err := fw.Apply(compileYAML(t, trafficPolicy)); err != nil {
		t.Fatal(err)
	}
	before := ns.MustRun(t, "nft", "list", "ruleset")
	for name, mutate := range map[string]func(rs *Ruleset){
		"two chains": func(rs *Ruleset) {
			rs.Chains = append(rs.Chains, &Chain{Name: "input", Hook: policy.Output, Policy: policy.Accept})
		},
		"two sets":     func(rs *Ruleset) { rs.Sets = append(rs.Sets, &AddrSet{Name: rs.Sets[0].Name}) },
		"two counters": func(rs *Ruleset) { rs.Counters = append(rs.Counters, "web") },
	} {
		rs := compileYAML(t, trafficPolicy)
		mutate(rs)
		_, err := fw.Apply(rs)
		var ke *KernelError
		if err == nil || errors.As(err, &ke) || !strings.Contains(err.Error(), "invalid ruleset") {
			t.Errorf("%s: Apply = %v, want an invalid ruleset error", name, err)
		}
	}
	if after := ns.MustRun(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("the ruleset changed:\n%s", cmp.Diff(before, after))
	}
}

// largeDumps makes the kernel send dumps on this socket in messages of
// 32 KiB rather than a page (see dumpBufferSize): it reads one reply with
// a large buffer, which the kernel remembers as the reader's size.
func largeDumps(c *netlink.Conn) error {
	if _, err := c.Send(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}); err != nil {
		return err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var rerr error
	if err := raw.Read(func(fd uintptr) bool {
		_, _, rerr = unix.Recvfrom(int(fd), make([]byte, dumpBufferSize), 0)
		return rerr != unix.EAGAIN
	}); err != nil {
		return err
	}
	return rerr
}

// TestForeignChangesRepaired changes table inet edgefw behind the
// Applier's back, as a stray script would: the next Apply notices, even
// for set elements it does not read back while nothing else commits, and
// restores exactly the ruleset.
func TestForeignChangesRepaired(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "drift")
	fw := NewApplier(WithNetNS(ns.FD))
	rs := compileYAML(t, incrementalBase)
	if _, err := fw.Apply(rs); err != nil {
		t.Fatal(err)
	}
	golden := tableBlocks(t, ns)
	handles := ruleHandles(t, ns)
	for _, tc := range []struct {
		name    string
		nft     []string
		changes []string
	}{
		{"element added", []string{"add element inet edgefw trusted-v4 { 10.1.2.3 }"},
			[]string{"delete 1 ranges from set trusted-v4"}},
		{"element removed", []string{"delete element inet edgefw trusted-v6 { 2001:db8::/64 }"},
			[]string{"add 1 ranges to set trusted-v6"}},
		{"rule deleted", []string{"delete rule inet edgefw input handle " + handles[`tcp dport 80 counter name "web" accept`]},
			[]string{`add rule "web" in chain input`}},
		{"rule added", []string{"insert rule inet edgefw input tcp dport 23 accept"},
			nil},
		{"chain policy changed", []string{"add chain inet edgefw input { policy accept; }"},
			[]string{"set policy of chain input to drop"}},
		{"chain replaced at another hook", []string{"flush chain inet edgefw input", "delete chain inet edgefw input",
			"add chain inet edgefw input { type filter hook output priority filter; policy drop; }"},
			nil},
		{"chain replaced at another priority", []string{"flush chain inet edgefw input", "delete chain inet edgefw input",
			"add chain inet edgefw input { type filter hook input priority 10; policy drop; }"},
			nil},
		{"set flushed", []string{"flush set inet edgefw trusted-v4"},
			[]string{"add 3 ranges to set trusted-v4"}},
		{"table deleted", []string{"delete table inet edgefw"},
			nil},
	} {
		for _, cmd := range tc.nft {
			ns.MustRun(t, "nft", cmd)
		}
		res, err := fw.Apply(rs)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.changes != nil {
			if diff := cmp.Diff(tc.changes, res.Changes); diff != "" {
				t.Errorf("%s: changes (-want +got):\n%s", tc.name, diff)
			}
		} else if res.Messages == 0 {
			t.Errorf("%s: nothing was repaired", tc.name)
		}
		if diff := cmp.Diff(golden, tableBlocks(t, ns)); diff != "" {
			t.Errorf("%s: the table was not restored (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestForeignChainsRepaired adds chains, sets and maps to table inet
// edgefw that refer to one another, and rules in our chains that jump to
// them: the kernel refuses to delete a chain, set or map still referred
// to, so Apply must take them apart in order, in both the incremental
// patch and the full replacement.
func TestForeignChainsRepaired(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "strays")
	fw := NewApplier(WithNetNS(ns.FD))
	rs := compileYAML(t, incrementalBase)
	if _, err := fw.Apply(rs); err != nil {
		t.Fatal(err)
	}
	golden := tableBlocks(t, ns)
	for _, tc := range []struct {
		name string
		nft  []string
	}{
		{"a chain our chain jumps to", []string{
			"add chain inet edgefw stray",
			"add rule inet edgefw stray accept",
			"insert rule inet edgefw input jump stray",
		}},
		{"chains, a set and a map that refer to one another", []string{
			"add chain inet edgefw stray1",
			"add chain inet edgefw stray2",
			"add rule inet edgefw stray2 counter name web accept",
			"add map inet edgefw vm { type ipv4_addr : verdict; elements = { 10.0.0.1 : jump stray2 } }",
			"add set inet edgefw odd { type ipv4_addr; elements = { 10.0.0.2 } }",
			"add rule inet edgefw stray1 ip saddr vmap @vm",
			"add rule inet edgefw stray1 ip saddr @odd goto stray2",
			"add rule inet edgefw stray1 ip saddr @trusted-v4 jump stray2",
			"insert rule inet edgefw input jump stray1",
			"add rule inet edgefw output ip daddr @odd jump stray2",
		}},
		{"one of our chains replaced by a chain another jumps to", []string{
			"flush chain inet edgefw forward",
			"delete chain inet edgefw forward",
			"add chain inet edgefw forward",
			"add rule inet edgefw forward counter name web drop",
			"insert rule inet edgefw input jump forward",
			"insert rule inet edgefw output jump forward",
		}},
	} {
		for _, full := range []bool{false, true} {
			for _, cmd := range tc.nft {
				ns.MustRun(t, "nft", cmd)
			}
			var err error
			if full {
				err = applyFull(fw, rs)
			} else {
				_, err = fw.Apply(rs)
			}
			if err != nil {
				t.Fatalf("%s (full %v): %v", tc.name, full, err)
			}
			if diff := cmp.Diff(golden, tableBlocks(t, ns)); diff != "" {
				t.Errorf("%s (full %v): the table was not restored (-want +got):\n%s", tc.name, full, diff)
			}
			if eq, err := NewApplier(WithNetNS(ns.FD)).Equal(rs); !eq || err != nil {
				t.Errorf("%s (full %v): Equal = %v, %v", tc.name, full, eq, err)
			}
		}
	}
}

// applyFull sends the full replacement that Apply falls back to.
func applyFull(fw *Applier, rs *Ruleset) error {
	_, err := ApplyFull(fw, rs)
	return err
}

// tableBlocks lists table inet edgefw as its counters, sets and chains,
// each a block of text, in name order: a chain recreated by a repair is
// listed after the others, which is no difference.
func tableBlocks(t *testing.T, ns *netnstest.NS) []string {
	t.Helper()
	var blocks []string
	for _, block := range strings.Split(listTable(t, ns), "\n\n") {
		blocks = append(blocks, strings.Trim(block, "\n}"))
	}
	slices.Sort(blocks)
	return blocks
}

// countedPolicy has a rule web with a limit, so that both web and its
// limited counter count; %s and %s are its direction and action, and
// other is a rule whose counter no change touches.
const countedPolicy = `
version: 1
rules:
  - name: other
    direction: input
    ports: [{protocol: tcp, port: 8080}]
    action: accept
  - name: web
    direction: %s
    ports: [{protocol: tcp, port: 80}]
    limit: {rate: 1/minute, burst: 1}
    action: %s
`

// TestCounterResetWhenMeaningChanges changes the action, then the
// direction, of a rule that has counted: its counter starts again from
// zero, in the same transaction that rewrites its rules, so that a metric
// labelled with the new action or direction does not start at the old
// total. Counters whose direction and action stay keep their values.
func TestCounterResetWhenMeaningChanges(t *testing.T) {
	l := newLab(t, plainV4)
	l.apply(t, compileYAML(t, fmt.Sprintf(countedPolicy, "input", "accept")))
	srv := serve(t, l.host, "tcp", 80, 8080)
	web := flow{"tcp", plainV4, hostV4, 80}
	if got := web.try(t, l.client, srv, accepted); got != accepted {
		t.Fatalf("%s: %s", web, got)
	}
	if got := web.try(t, l.client, srv, timedOut); got != timedOut {
		t.Fatalf("%s beyond the limit: %s", web, got)
	}
	if got := (flow{"tcp", plainV4, hostV4, 8080}).try(t, l.client, srv, accepted); got != accepted {
		t.Fatalf("other: %s", got)
	}
	before := l.counters(t)
	limited := LimitedCounter("web")
	for _, name := range []string{"web", limited, "other"} {
		if before[name].Packets == 0 {
			t.Fatalf("%s counted nothing: %v", name, before)
		}
	}

	// The action changes: web's counter is reset; the limited counter
	// still counts drops in input and keeps its value.
	res := l.apply(t, compileYAML(t, fmt.Sprintf(countedPolicy, "input", "drop")))
	if res.Full || !slices.Contains(res.Changes, `reset counter "web": now counts input drop`) {
		t.Errorf("changes (full %v): %q", res.Full, res.Changes)
	}
	after := l.counters(t)
	if after["web"] != (Counter{}) {
		t.Errorf("web's counter was kept when its action changed: %+v", after["web"])
	}
	for _, name := range []string{limited, "other"} {
		if after[name] != before[name] {
			t.Errorf("counter %s went from %+v to %+v", name, before[name], after[name])
		}
	}
	if res, err := l.fw.Apply(compileYAML(t, fmt.Sprintf(countedPolicy, "input", "drop"))); err != nil || res.Messages != 0 {
		t.Errorf("re-apply: %d messages %q, %v", res.Messages, res.Changes, err)
	}

	// The direction changes: both of web's counters are reset.
	rs := compileYAML(t, fmt.Sprintf(countedPolicy, "output", "drop"))
	res = l.apply(t, rs)
	for _, name := range []string{"web", limited} {
		if !slices.Contains(res.Changes, fmt.Sprintf("reset counter %q: now counts output drop", name)) {
			t.Errorf("%s was not reset: %q", name, res.Changes)
		}
	}
	after = l.counters(t)
	if after[limited] != (Counter{}) || after["other"] != before["other"] {
		t.Errorf("counters after the direction changed: %v, before %v", after, before)
	}
	if eq, err := NewApplier(WithNetNS(l.host.FD)).Equal(rs); !eq || err != nil {
		t.Errorf("Equal = %v, %v", eq, err)
	}
}
