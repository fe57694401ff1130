package nft

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/policy"
)

// Lab addresses of TestShardedSetKernel: the blocked ones are the highest
// of their set, so they are in its last shard.
const (
	shardBlockedV4 = "192.0.2.200"
	shardBlockedV6 = "2001:db8::200"
	shardFreeV4    = "192.0.2.100"
)

// shardPolicy is largeSetPolicy with n random IPv4 prefixes below
// 192.0.0.0, n/4 IPv6 /64s below 2001:db8::, and the two blocked lab
// addresses.
func shardPolicy(seed uint64, n int) *policy.Policy {
	var prefixes []netip.Prefix
	for _, p := range randomPrefixes(seed, 2*n) {
		if len(prefixes) < n && p.Addr().Less(netip.MustParseAddr("192.0.0.0")) {
			prefixes = append(prefixes, p)
		}
	}
	for i := range n / 4 {
		prefixes = append(prefixes, netip.MustParsePrefix(fmt.Sprintf("2001:db7:%x:%x::/64", seed, 2*i)))
	}
	prefixes = append(prefixes, netip.MustParsePrefix(shardBlockedV4+"/32"), netip.MustParsePrefix(shardBlockedV6+"/128"))
	return largeSetPolicy(prefixes)
}

// TestShardedSetKernel applies sets larger than a lowered threshold and
// checks, after each step, that the kernel holds exactly the policy's
// ranges across the shards: the first apply; one element changed, which
// writes one shard and no rule; the set grown four times, a reshard; and
// shrunk back to one set. Traffic from an address of the last shard is
// dropped, from one outside the set not; `nft -f` loads the sharded table
// as nft lists it.
func TestShardedSetKernel(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	l := newLab(t, shardBlockedV4, shardFreeV4, shardBlockedV6)
	const threshold = 1024
	l.fw = NewApplier(WithNetNS(l.host.FD), WithShardThreshold(threshold))
	srv := serve(t, l.host, "tcp", 6443)
	compileP := func(p *policy.Policy) *Ruleset {
		rs, err := Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	exact := func(step string, rs *Ruleset, wantShards int) {
		t.Helper()
		for _, name := range []string{"blocklist-v4", "blocklist-v6"} {
			set := rs.Set(name)
			checkSet(t, l.host, set)
			_, shards := kernelSetFolded(t, l.host, name, set.V6)
			if want := min(wantShards, (len(set.Ranges)+threshold-1)/threshold); (shards == 0) != (want <= 1) || (want > 1 && shards != want) {
				t.Errorf("%s: %s has %d shards, want %d", step, name, shards, want)
			}
		}
		in, err := l.fw.Inspect(rs)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rs.String(), in.Text); diff != "" {
			t.Errorf("%s: the kernel renders differently from the ruleset (-ruleset +kernel):\n%s", step, diff)
		}
		if in.Plan.Messages != 0 {
			t.Errorf("%s: applying again would write %q", step, in.Plan.Changes)
		}
	}
	traffic := func(step string) {
		t.Helper()
		for _, tc := range []struct {
			from string
			to   string
			want outcome
		}{{shardBlockedV4, hostV4, timedOut}, {shardBlockedV6, hostV6, timedOut}, {shardFreeV4, hostV4, accepted}} {
			before := l.counters(t)
			if got := (flow{"tcp", tc.from, tc.to, 6443}).try(t, l.client, srv, tc.want); got != tc.want {
				t.Errorf("%s: from %s: %s, want %s", step, tc.from, got, tc.want)
			}
			dropped := l.counters(t)["drop-blocklisted"].Packets - before["drop-blocklisted"].Packets
			if (dropped > 0) != (tc.want == timedOut) {
				t.Errorf("%s: from %s: drop-blocklisted counted %d packets", step, tc.from, dropped)
			}
		}
	}

	rs := compileP(shardPolicy(1, 5000))
	l.apply(t, rs)
	exact("first apply", rs, 5)
	traffic("first apply")

	// nft reads the shards' names and span matches back and loads them.
	listed := l.host.MustRun(t, "nft", "list", "table", "inet", TableName)
	file := filepath.Join(t.TempDir(), "sharded.nft")
	if err := os.WriteFile(file, []byte(listed), 0o600); err != nil {
		t.Fatal(err)
	}
	copyNS := netnstest.New(t, "shardcopy")
	copyNS.MustRun(t, "nft", "-f", file)
	if again := copyNS.MustRun(t, "nft", "list", "table", "inet", TableName); again != listed {
		t.Errorf("nft -f of the sharded table lists differently:\n%s", cmp.Diff(listed, again))
	}

	p := shardPolicy(1, 5000)
	p.Sets[0].Prefixes[100] = netip.MustParsePrefix("10.99.99.99/32")
	changed := compileP(p)
	res := l.apply(t, changed)
	// 10.99.99.99 may be in one of the random /24s: then only the
	// replaced prefix goes.
	onlyDeleted := len(res.Changes) == 1 && strings.HasPrefix(res.Changes[0], "delete 1 ranges from set blocklist-v4.s.")
	if !oneElementSwapped(res.Changes, "blocklist-v4") && !onlyDeleted {
		t.Errorf("one element changed: changes %q", res.Changes)
	}
	exact("one element changed", changed, 5)

	grown := compileP(shardPolicy(2, 20000))
	res = l.apply(t, grown)
	t.Logf("grown to 20,000: %d messages", res.Messages)
	exact("grown", grown, 20)
	traffic("grown")

	shrunk := compileP(shardPolicy(3, 800))
	l.apply(t, shrunk)
	exact("shrunk", shrunk, 1)
	traffic("shrunk")
}
