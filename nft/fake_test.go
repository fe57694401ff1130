package nft_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
)

// refusingOnce refuses the first transaction it is given, as the kernel
// refuses a patch it cannot apply.
type refusingOnce struct {
	*nfttest.Kernel
	refused []*nft.Transaction
}

func (k *refusingOnce) Commit(tx *nft.Transaction) error {
	if len(k.refused) == 0 {
		k.refused = append(k.refused, tx)
		return &nft.KernelError{What: tx.Ops()[0].Change(), Errno: syscall.EINVAL}
	}
	return k.Kernel.Commit(tx)
}

// TestApplyFallsBackToFull: when the kernel refuses the patch, Apply
// replaces the table's contents in one transaction, counters kept; when
// there was no table, there is nothing to fall back to.
func TestApplyFallsBackToFull(t *testing.T) {
	k := &refusingOnce{Kernel: nfttest.New()}
	fw := nft.NewApplier(nft.WithKernel(k))
	rs := compile(t, baseYAML, "", nil)
	if _, err := fw.Apply(rs); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("first apply, refused, on no table: %v; want the refusal", err)
	}
	if res, err := fw.Apply(rs); err != nil || res.Full {
		t.Fatalf("first apply: %+v, %v", res, err)
	}
	if err := k.Count("web", 3, 180); err != nil {
		t.Fatal(err)
	}
	changed := compile(t, changedYAML, "", nil)
	k.refused = nil
	res, err := fw.Apply(changed)
	if err != nil || !res.Full {
		t.Fatalf("apply after a refused patch: %+v, %v; want a full replacement", res, err)
	}
	if len(k.refused) != 1 || slices.Equal(res.Changes, opChanges(k.refused[0])) ||
		!slices.Contains(res.Changes, "replace elements of set trusted-v4") {
		t.Errorf("the replacement %q is not a full one; the refused patch was %q", res.Changes, opChanges(k.refused[0]))
	}
	if c, _ := k.Counters(); c["web"] != (nft.Counter{Packets: 3, Bytes: 180}) {
		t.Errorf("web's counter after the replacement: %+v", c["web"])
	}
	if eq, err := fw.Equal(changed); !eq || err != nil {
		t.Errorf("Equal after the replacement = %v, %v", eq, err)
	}
}

func opChanges(tx *nft.Transaction) []string {
	var out []string
	for _, op := range tx.Ops() {
		out = append(out, op.Change())
	}
	return out
}

// TestApplierOnFake goes through what the daemon asks of an Applier, on
// the fake: apply, read counters and generation, list other tables,
// delete, and errors from a kernel that cannot be read or written.
func TestApplierOnFake(t *testing.T) {
	k := nfttest.New()
	fw := nft.NewApplier(nft.WithKernel(k))
	if _, err := fw.Counters(); !errors.Is(err, nft.ErrNoTable) {
		t.Errorf("Counters without a table: %v", err)
	}
	if err := fw.Delete(); err != nil {
		t.Errorf("Delete without a table: %v", err)
	}
	rs := compile(t, baseYAML, "", nil)
	gen, _ := fw.Generation()
	if _, err := fw.Apply(rs); err != nil {
		t.Fatal(err)
	}
	if g, _ := fw.Generation(); g != gen+1 {
		t.Errorf("generation %d after one commit from %d", g, gen)
	}
	c, err := fw.Counters()
	if err != nil || len(c) != len(rs.Counters) {
		t.Errorf("Counters = %v, %v", c, err)
	}
	others := []nft.HookedTable{{Family: "ip", Table: "nat", Chain: "output", Hook: "output", Priority: -100, Policy: "accept"}}
	k.SetOtherHooked(others)
	if got, err := fw.OtherHooked(); err != nil || !cmp.Equal(got, others) {
		t.Errorf("OtherHooked = %v, %v", got, err)
	}

	k.FailCommits(errors.New("kernel says no"))
	if _, err := fw.Apply(compile(t, changedYAML, "", nil)); err == nil || err.Error() != "kernel says no" {
		t.Errorf("Apply with commits failing: %v", err)
	}
	k.FailCommits(nil)
	k.FailReads(errors.New("cannot read"))
	if _, err := fw.Equal(rs); err == nil {
		t.Error("Equal with reads failing succeeded")
	}
	if _, err := fw.Inspect(rs); err == nil {
		t.Error("Inspect with reads failing succeeded")
	}
	k.FailReads(nil)
	if eq, err := fw.Equal(rs); !eq || err != nil {
		t.Errorf("Equal = %v, %v; the failures changed the table", eq, err)
	}

	if err := fw.Delete(); err != nil {
		t.Fatal(err)
	}
	if k.Snapshot().Exists {
		t.Error("the table is still there after Delete")
	}
	if err := fw.Close(); err != nil {
		t.Error(err)
	}
}

// TestInspectOnFake renders a table with drift on the fake as
// TestInspectShowsDrift does on the kernel: a rule no given ruleset has is
// a comment naming its handle and what wrote it.
func TestInspectOnFake(t *testing.T) {
	k := nfttest.New()
	fw := nft.NewApplier(nft.WithKernel(k))
	running := compile(t, baseYAML, "", nil)
	if _, err := fw.Apply(running); err != nil {
		t.Fatal(err)
	}
	h, err := k.AddRule("input", nfttest.Rule{Exprs: 1})
	if err != nil {
		t.Fatal(err)
	}
	candidate := compile(t, strings.Replace(baseYAML, "port: 80}", "port: 81}", 1), "", nil)
	in, err := fw.Inspect(candidate)
	if err != nil {
		t.Fatal(err)
	}
	web := handlesOf(k.Snapshot())("input", "web")
	for _, want := range []string{
		fmt.Sprintf("# rule handle %d: written by edgefw for another ruleset (6 expressions)", web),
		fmt.Sprintf("# rule handle %d: not written by edgefw (1 expression)", h),
	} {
		if !strings.Contains(in.Text, want) {
			t.Errorf("the rendering lacks %q:\n%s", want, in.Text)
		}
	}
	wantPlan := []string{fmt.Sprintf("delete rule %d of chain input", web), fmt.Sprintf("delete rule %d of chain input", h), `add rule "web" in chain input`}
	if !slices.Equal(in.Plan.Changes, wantPlan) || !in.Plan.Changed() {
		t.Errorf("plan %q, want %q", in.Plan.Changes, wantPlan)
	}
	if in, err := fw.Inspect(candidate, running); err != nil || strings.Contains(in.Text, fmt.Sprintf("handle %d:", web)) {
		t.Errorf("with the running ruleset known, web's rule is not text: %v\n%s", err, in.Text)
	}
}
