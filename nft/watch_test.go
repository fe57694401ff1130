package nft

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// neighbour commits to tables of its own in ns every interval, as
// kube-proxy or Docker do, until the test ends. Each round adds a table
// with a chain and a set with an element, then deletes it: two commits,
// with notifications of every kind. Every other round the table is ip
// edgefw: named like ours, in another family. The returned function stops
// it and says how many commits it made.
func neighbour(t *testing.T, ns *netnstest.NS, interval time.Duration) func() int {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	commits := 0
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
			tb := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
			if i%2 == 0 {
				tb = &nftables.Table{Family: nftables.TableFamilyINet, Name: "neighbour"}
			}
			c.AddTable(tb)
			c.AddChain(&nftables.Chain{Name: "input", Table: tb, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
			s := &nftables.Set{Table: tb, Name: "svc", KeyType: nftables.TypeIPAddr}
			if err := c.AddSet(s, []nftables.SetElement{{Key: []byte{10, 0, 0, byte(i)}}}); err != nil {
				t.Error(err)
				return
			}
			if err := c.Flush(); err != nil {
				t.Error(err)
				return
			}
			c.DelTable(tb)
			if err := c.Flush(); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			commits += 2
			mu.Unlock()
		}
	}()
	stopped := false
	end := func() int {
		if !stopped {
			close(stop)
			<-done
			stopped = true
		}
		mu.Lock()
		defer mu.Unlock()
		return commits
	}
	t.Cleanup(func() { end() })
	return end
}

// TestBusyNeighbour reads and repairs a table with a large set while
// another tool commits to its own tables many times a second: the reads
// succeed, the Applier that wrote the set keeps trusting what it wrote
// across the other tool's commits, and a change to our own table still
// ends that trust and is repaired.
func TestBusyNeighbour(t *testing.T) {
	ns := netnstest.New(t, "busy")
	// One set of 20,000 ranges, not shards: this is about the watch.
	fw := NewApplier(WithNetNS(ns.FD), WithShardThreshold(-1))
	rs, err := Compile(largeSetPolicy(randomPrefixes(3, 20_000)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Apply(rs); err != nil {
		t.Fatal(err)
	}
	gen := generation(t, fw)
	stop := neighbour(t, ns, 2*time.Millisecond)

	// A fresh Applier reads the set back, while generations go by.
	start := time.Now()
	fresh := NewApplier(WithNetNS(ns.FD), WithShardThreshold(-1))
	if eq, err := fresh.Equal(rs); !eq || err != nil {
		t.Fatalf("a fresh Applier's Equal = %v, %v", eq, err)
	}
	t.Logf("a fresh Applier read the table in %v", time.Since(start))
	if res, err := fresh.Apply(rs); err != nil || res.Messages != 0 {
		t.Errorf("a fresh Applier's re-apply: %d messages %q, %v", res.Messages, res.Changes, err)
	}

	// The writer's knowledge of its set outlives the neighbour's commits.
	if res, err := fw.Apply(rs); err != nil || res.Messages != 0 {
		t.Errorf("re-apply: %d messages %q, %v", res.Messages, res.Changes, err)
	}
	if fw.kernel.(*netlinkKernel).known == nil {
		t.Error("the Applier forgot its set contents after other tables' commits")
	}

	// A change to our table, among the neighbour's commits, is seen. (The
	// nft tool would take seconds here: it too rereads the ruleset until
	// the generation holds still.)
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	stray := []AddrRange{prefixRange(netip.MustParsePrefix("192.0.2.99/32"))}
	if err := c.SetAddElements(kernelSet(rs.Set("blocklist-v4")), addrElements(stray)); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	res, err := fw.Apply(rs)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if want := []string{"delete 1 ranges from set blocklist-v4"}; !slices.Equal(res.Changes, want) {
		t.Errorf("repair: changes %q, want %q", res.Changes, want)
	}
	if fw.kernel.(*netlinkKernel).known == nil {
		t.Error("the Applier did not remember its set after repairing it")
	}
	if eq, err := fw.Equal(rs); !eq || err != nil {
		t.Errorf("Equal after the repair = %v, %v", eq, err)
	}
	commits := stop()
	if moved := generation(t, fw) - gen; moved < 20 || int(moved) < commits {
		t.Errorf("the generation moved by %d in %d neighbour commits: the test did not test", moved, commits)
	}
	t.Logf("the neighbour committed %d times", commits)
	checkSet(t, ns, rs.Set("blocklist-v4"))
}
