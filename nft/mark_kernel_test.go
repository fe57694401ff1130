package nft

import (
	"os"
	"syscall"
	"testing"

	"github.com/edgefw/edgefw/internal/bootid"
	"github.com/edgefw/edgefw/internal/netnstest"
)

// TestMarkOnKernel: an apply marks the generation of its own commit, in
// the namespace it wrote to; a new Applier (as in a new process) finds
// the kernel unchanged while only traffic passes, and changed after any
// commit by anyone. After a change to our table the apply restores it;
// after a commit to another table, it finds nothing to write, writes
// nothing, and marks the generation it found.
func TestMarkOnKernel(t *testing.T) {
	netnstest.RequireTool(t, "nft", "ping")
	ns := netnstest.New(t, "mark")
	rs, err := Compile(largeSetPolicy(randomPrefixes(11, 300)))
	if err != nil {
		t.Fatal(err)
	}
	fw := NewApplier(WithNetNS(ns.FD))
	defer fw.Close()
	res, err := fw.Apply(rs)
	if err != nil || res.Mark == nil {
		t.Fatalf("first apply: %v, Mark %v; want a Mark", err, res.Mark)
	}
	m := *res.Mark
	if g := generation(t, fw); m.Generation != g {
		t.Fatalf("Mark of generation %d, the kernel is at %d", m.Generation, g)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+ns.Name, &st); err != nil {
		t.Fatal(err)
	}
	boot, _ := os.ReadFile(bootid.Path)
	if m.Namespace.Inode != st.Ino || m.Namespace.Dev != st.Dev || m.Namespace.Cookie == 0 || m.Namespace.Boot == "" ||
		m.Namespace.Boot+"\n" != string(boot) {
		t.Errorf("Mark's namespace %+v; the test's namespace has inode %d on device %d", m.Namespace, st.Ino, st.Dev)
	}
	if m.Ruleset != Fingerprint(rs) {
		t.Errorf("Mark's ruleset %s, want %s", m.Ruleset, Fingerprint(rs))
	}

	// Traffic through the counters, and reads, are no commit.
	before, err := fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	ns.MustRun(t, "ping", "-c", "3", "-i", "0.01", "-W", "1", "127.0.0.1")
	after, err := fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if after["edgefw-loopback-input"].Packets <= before["edgefw-loopback-input"].Packets {
		t.Fatalf("loopback counter did not move: %+v -> %+v", before["edgefw-loopback-input"], after["edgefw-loopback-input"])
	}
	ns.MustRun(t, "nft", "list", "ruleset")
	unchanged(t, ns, rs, m, true)

	other := netnstest.New(t, "markother")
	if res, err := NewApplier(WithNetNS(other.FD)).Apply(rs); err != nil || res.Mark == nil {
		t.Fatalf("apply in another namespace: %v, Mark %v", err, res.Mark)
	} else if res.Mark.Namespace == m.Namespace {
		t.Fatalf("two namespaces, one identity: %+v", m.Namespace)
	} else {
		// Same ruleset, and quite possibly the same generation.
		unchanged(t, ns, rs, Mark{Namespace: res.Mark.Namespace, Generation: m.Generation, Ruleset: m.Ruleset}, false)
	}

	changes := []struct {
		name   string
		nft    []string
		writes bool
	}{
		{"element added to our set", []string{"add", "element", "inet", "edgefw", "blocklist-v4", "{ 192.0.2.99 }"}, true},
		{"rule added to our chain", []string{"add", "rule", "inet", "edgefw", "input", "counter"}, true},
		{"ruleset flushed", []string{"flush", "ruleset"}, true},
		{"another table added", []string{"add", "table", "ip", "other"}, false},
	}
	for _, c := range changes {
		ns.MustRun(t, append([]string{"nft"}, c.nft...)...)
		unchanged(t, ns, rs, m, false)
		fresh := NewApplier(WithNetNS(ns.FD))
		res, err := fresh.Apply(rs)
		fresh.Close()
		if err != nil || res.Changed() != c.writes || res.Mark == nil {
			t.Fatalf("%s: apply: %v, %d messages, Mark %v; want writes %v and a Mark", c.name, err, res.Messages, res.Mark, c.writes)
		}
		if g := generation(t, fw); res.Mark.Generation != g {
			t.Fatalf("%s: Mark of generation %d, the kernel is at %d", c.name, res.Mark.Generation, g)
		}
		if eq, err := NewApplier(WithNetNS(ns.FD)).Equal(rs); !eq || err != nil {
			t.Fatalf("%s: the table is not as planned after the apply: %v, %v", c.name, eq, err)
		}
		m = *res.Mark
		unchanged(t, ns, rs, m, true)
	}
}

// unchanged checks what a new Applier in ns says of m, and that asking
// committed nothing.
func unchanged(t *testing.T, ns *netnstest.NS, rs *Ruleset, m Mark, want bool) {
	t.Helper()
	fw := NewApplier(WithNetNS(ns.FD))
	defer fw.Close()
	before := generation(t, fw)
	ok, err := fw.Unchanged(rs, m)
	if err != nil || ok != want {
		t.Fatalf("Unchanged(%+v): %v, %v; want %v", m, ok, err, want)
	}
	if after := generation(t, fw); after != before {
		t.Fatalf("Unchanged moved the generation from %d to %d", before, after)
	}
}
