package nft_test

import (
	"net/netip"
	"testing"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
)

// TestApplyMarksItsCommit: an apply that commits, and one that finds
// nothing to write, leave a Mark of the generation the kernel is at, the
// namespace and the ruleset; while nothing commits, Unchanged holds,
// also across traffic through the counters.
func TestApplyMarksItsCommit(t *testing.T) {
	k := nfttest.New()
	fw := nft.NewApplier(nft.WithKernel(k))
	rs := compile(t, baseYAML, "", nil)
	res, err := fw.Apply(rs)
	if err != nil || res.Mark == nil {
		t.Fatalf("first apply: %+v, %v; want a Mark", res, err)
	}
	gen, _ := k.Generation()
	want := nft.Mark{Namespace: nfttest.DefaultNamespace, Generation: gen, Ruleset: nft.Fingerprint(rs)}
	if *res.Mark != want {
		t.Errorf("Mark %+v, want %+v", *res.Mark, want)
	}
	if err := k.Count("web", 3, 180); err != nil {
		t.Fatal(err)
	}
	if ok, err := fw.Unchanged(compile(t, baseYAML, "", nil), *res.Mark); !ok || err != nil {
		t.Errorf("Unchanged right after the apply: %v, %v; want true", ok, err)
	}
	again, err := fw.Apply(rs)
	if err != nil || again.Messages != 0 || again.Mark == nil || *again.Mark != want {
		t.Errorf("apply with nothing to write: %+v, %v; want no message and Mark %+v", again, err, want)
	}
}

// TestUnchangedSeesEveryCommit: after anything that commits (to our table
// or to another one), a reboot, in another namespace, or for another
// ruleset, Unchanged says false; the apply that follows then reads the
// table, restores the ruleset where it differs, and leaves a new Mark.
func TestUnchangedSeesEveryCommit(t *testing.T) {
	other := nfttest.DefaultNamespace
	other.Cookie, other.Inode = 2, 4026532000
	rebooted := nfttest.DefaultNamespace
	rebooted.Boot = "9b0d7c4e-1111-4111-8111-000000000001"
	recycled := nfttest.DefaultNamespace
	recycled.Cookie = 7 // same inode, a namespace made after ours went
	cases := []struct {
		name   string
		change func(t *testing.T, k *nfttest.Kernel)
		// other is the policy applied then, "" for the same one.
		other string
		// writes: whether the apply that follows must write.
		writes bool
	}{
		{name: "element added by another tool", writes: true, change: func(t *testing.T, k *nfttest.Kernel) {
			r := nft.AddrRange{From: netip.MustParseAddr("10.9.9.9"), To: netip.MustParseAddr("10.9.9.9")}
			must(t, k.AddElements("trusted-v4", r))
		}},
		{name: "table deleted", writes: true, change: func(t *testing.T, k *nfttest.Kernel) { must(t, k.DeleteTable()) }},
		{name: "chain flushed", writes: true, change: func(t *testing.T, k *nfttest.Kernel) { must(t, k.FlushChain("input")) }},
		{name: "commit to another table", change: func(t *testing.T, k *nfttest.Kernel) { k.CommitElsewhere() }},
		{name: "another ruleset", other: changedYAML, writes: true},
		{name: "another namespace", change: func(t *testing.T, k *nfttest.Kernel) { k.SetNamespace(other) }},
		{name: "a namespace with the inode of a deleted one", change: func(t *testing.T, k *nfttest.Kernel) { k.SetNamespace(recycled) }},
		{name: "reboot", change: func(t *testing.T, k *nfttest.Kernel) { k.SetNamespace(rebooted) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := nfttest.New()
			fw := nft.NewApplier(nft.WithKernel(k))
			res, err := fw.Apply(compile(t, baseYAML, "", nil))
			if err != nil || res.Mark == nil {
				t.Fatalf("first apply: %+v, %v", res, err)
			}
			if c.change != nil {
				c.change(t, k)
			}
			doc := baseYAML
			if c.other != "" {
				doc = c.other
			}
			rs := compile(t, doc, "", nil)
			if ok, err := fw.Unchanged(rs, *res.Mark); ok || err != nil {
				t.Fatalf("Unchanged: %v, %v; want false", ok, err)
			}
			after, err := fw.Apply(rs)
			if err != nil || after.Changed() != c.writes {
				t.Fatalf("apply after the change: %+v, %v; want writes %v", after, err, c.writes)
			}
			if eq, err := fw.Equal(rs); !eq || err != nil {
				t.Errorf("the table is not as planned after the apply: %v, %v", eq, err)
			}
			gen, _ := k.Generation()
			if after.Mark == nil || after.Mark.Generation != gen {
				t.Fatalf("apply after the change left Mark %+v, want one of generation %d", after.Mark, gen)
			}
			if ok, err := fw.Unchanged(rs, *after.Mark); !ok || err != nil {
				t.Errorf("Unchanged after the repair: %v, %v; want true", ok, err)
			}
		})
	}
}

// busyKernel is a kernel where another tool commits to a table of its own
// while the Applier reads ours, and, with during, while the Applier
// commits.
type busyKernel struct {
	*nfttest.Kernel
	duringCommit bool
}

func (k *busyKernel) ReadTable() (*nft.TableState, error) {
	if !k.duringCommit {
		k.CommitElsewhere()
	}
	return k.Kernel.ReadTable()
}

func (k *busyKernel) Commit(tx *nft.Transaction) error {
	err := k.Kernel.Commit(tx)
	if k.duringCommit {
		k.CommitElsewhere()
	}
	return err
}

// TestNoMarkWhenAnotherCommitCame: when anyone else committed between
// the Applier's first look at the generation and its last, it cannot
// tell which generation is its own, and leaves no Mark, whether it wrote
// or not.
func TestNoMarkWhenAnotherCommitCame(t *testing.T) {
	for _, duringCommit := range []bool{false, true} {
		k := &busyKernel{Kernel: nfttest.New(), duringCommit: duringCommit}
		fw := nft.NewApplier(nft.WithKernel(k))
		rs := compile(t, baseYAML, "", nil)
		if res, err := fw.Apply(rs); err != nil || res.Mark != nil {
			t.Errorf("commit (another during commit: %v): %+v, %v; want no Mark", duringCommit, res, err)
		}
		if res, err := fw.Apply(rs); err != nil || res.Messages != 0 || (res.Mark != nil) != duringCommit {
			t.Errorf("apply with nothing to write (another during the read: %v): %+v, %v; want a Mark only if none came",
				!duringCommit, res, err)
		}
	}
}

// TestMarkAfterFallback: a refused patch commits nothing, so the full
// replacement that follows is the one commit, and marked.
func TestMarkAfterFallback(t *testing.T) {
	k := &refusingOnce{Kernel: nfttest.New()}
	fw := nft.NewApplier(nft.WithKernel(k))
	if _, err := fw.Apply(compile(t, baseYAML, "", nil)); err == nil {
		t.Fatal("the first apply was not refused")
	}
	if _, err := fw.Apply(compile(t, baseYAML, "", nil)); err != nil {
		t.Fatal(err)
	}
	k.refused = nil
	rs := compile(t, changedYAML, "", nil)
	res, err := fw.Apply(rs)
	if err != nil || !res.Full || res.Mark == nil {
		t.Fatalf("apply after a refused patch: %+v, %v; want a full replacement and a Mark", res, err)
	}
	if ok, err := fw.Unchanged(rs, *res.Mark); !ok || err != nil {
		t.Errorf("Unchanged after the replacement: %v, %v", ok, err)
	}
}

// TestFingerprint: equal rulesets have one fingerprint; one element, a
// rule, or what a counter counts makes another.
func TestFingerprint(t *testing.T) {
	base := nft.Fingerprint(compile(t, baseYAML, "", nil))
	if again := nft.Fingerprint(compile(t, baseYAML, "", nil)); again != base {
		t.Errorf("the same policy has fingerprints %s and %s", base, again)
	}
	variants := map[string]*nft.Ruleset{
		"another policy": compile(t, changedYAML, "", nil),
		"one element more": compile(t, baseYAML, "", func(rs *nft.Ruleset) {
			s := rs.Set("trusted-v4")
			s.Ranges = append(s.Ranges, nft.AddrRange{From: netip.MustParseAddr("203.0.113.200"), To: netip.MustParseAddr("203.0.113.200")})
		}),
		"an element's end": compile(t, baseYAML, "", func(rs *nft.Ruleset) {
			s := rs.Set("trusted-v4")
			s.Ranges[0].To = s.Ranges[0].To.Prev()
		}),
		"a counter's meaning": compile(t, baseYAML, "", func(rs *nft.Ruleset) { rs.Rules[0].Kind = "other" }),
	}
	for name, rs := range variants {
		if nft.Fingerprint(rs) == base {
			t.Errorf("%s: same fingerprint as the base policy", name)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
