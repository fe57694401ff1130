package nft

import (
	"os/exec"
	"testing"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/policy"
)

// TestPauseAccounting: a pause in which the generation moved by our
// commit alone counts as the touch the watch would have heard; any other
// move is a loss, as after an overflow.
func TestPauseAccounting(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after uint32
		committed     bool
		touches       uint64
		losses        uint64
	}{
		{"our commit alone", 7, 8, true, 1, 0},
		{"refused, nothing else", 7, 7, false, 0, 0},
		{"another commit too", 7, 9, true, 0, 1},
		{"refused, another commit", 7, 8, false, 0, 1},
		{"wrapped, skipping 0", 0xffffffff, 1, true, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lost []TableChange
			w := &tableWatch{done: tc.before, floor: tc.before, cur: true, changed: func(c TableChange) { lost = append(lost, c) }}
			w.accountPause(tc.before, tc.after, tc.committed)
			if w.touches != tc.touches || w.losses != tc.losses {
				t.Errorf("touches %d, losses %d; want %d, %d", w.touches, w.losses, tc.touches, tc.losses)
			}
			if w.floor != tc.after || w.done != tc.after || w.cur {
				t.Errorf("floor %d, done %d, cur %v; want %d, %d, false", w.floor, w.done, w.cur, tc.after, tc.after)
			}
			if len(lost) != int(tc.losses) {
				t.Errorf("reported %d losses, want %d", len(lost), tc.losses)
			}
		})
	}
}

// TestOwnCommitUnheard applies a set of 20,000 CIDRs: the Applier's watch
// does not listen to that commit (whose element notifications overflowed
// it), so it keeps what it wrote as known, and it listens again after:
// another tool's commit to our table ends that trust.
func TestOwnCommitUnheard(t *testing.T) {
	ns := netnstest.New(t, "unheard")
	netnstest.RequireTool(t, "nft")
	// One set of 20,000 ranges, not shards: this is about the watch.
	fw := NewApplier(WithNetNS(ns.FD), WithShardThreshold(-1))
	defer fw.Close()
	rs, err := Compile(largeSetPolicy(randomPrefixes(11, 20_000)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Apply(rs); err != nil {
		t.Fatal(err)
	}
	k := fw.kernel.(*netlinkKernel)
	if k.watch == nil || k.watch.losses != 0 || k.watch.touches != 1 {
		t.Fatalf("after our commit the watch has %+v, want one touch and no loss", k.watch)
	}
	if got := len(k.known["blocklist-v4"]); got != 20_000 {
		t.Fatalf("the Kernel knows %d ranges of what it wrote, want 20000", got)
	}
	if res, err := fw.Apply(rs); err != nil || res.Messages != 0 {
		t.Fatalf("re-apply: %d messages, %v", res.Messages, err)
	}
	if err := ns.Do(func() error {
		return exec.Command("nft", "add", "element", "inet", TableName, "blocklist-v4", "{ 192.0.2.1 }").Run()
	}); err != nil {
		t.Fatal(err)
	}
	res, err := fw.Apply(rs)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"delete 1 ranges from set blocklist-v4"}; !equalStrings(res.Changes, want) {
		t.Errorf("after another tool's commit: changes %q, want %q", res.Changes, want)
	}
	checkSet(t, ns, rs.Set("blocklist-v4"))
}

// TestQuietCommit: the watch pauses for a transaction of many set ranges
// or of many messages (rules, chains, counters: 1,000 port rules), and
// listens to small ones, such as a daemon's change of a few elements.
func TestQuietCommit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     *policy.Policy
		quiet bool
	}{
		{"a few rules", manyRulesPolicy(10, -1), false},
		{"1,000 port rules", manyRulesPolicy(1000, -1), true},
		{"1,000 ranges", largeSetPolicy(randomPrefixes(3, 1000)), true},
		{"100 ranges", largeSetPolicy(randomPrefixes(3, 100)), false},
	} {
		rs, err := Compile(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		tx, _, err := NewApplier(WithShardThreshold(-1)).prepare(&TableState{}, rs, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := tx.quietCommit(); got != tc.quiet {
			t.Errorf("%s (%d messages): quiet %v, want %v", tc.name, tx.Messages(), got, tc.quiet)
		}
	}
}
