package nfttest

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// TestChanges: the fake notifies an Applier's commits as this process's
// and drift as another's, as the kernel's notifications name the
// committer; a commit that writes nothing is not notified; a cancelled
// subscription is closed; FailChanges refuses new ones.
func TestChanges(t *testing.T) {
	k := New()
	ctx, cancel := context.WithCancel(context.Background())
	changes, err := k.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := nft.Compile(&policy.Policy{Version: 1, Defaults: policy.Defaults{Input: policy.Drop, Forward: policy.Accept, Output: policy.Accept}})
	if err != nil {
		t.Fatal(err)
	}
	fw := nft.NewApplier(nft.WithKernel(k))
	if _, err := fw.Apply(rs); err != nil {
		t.Fatal(err)
	}
	if c := <-changes; c.PID != os.Getpid() || c.Lost {
		t.Errorf("an Applier's commit notified as %+v, want this process", c)
	}
	if res, err := fw.Apply(rs); err != nil || res.Changed() {
		t.Fatalf("re-apply: %+v, %v", res, err)
	}
	k.SetDrifter(77, "iptables-nft")
	if err := k.FlushChain("input"); err != nil {
		t.Fatal(err)
	}
	gen, _ := k.Generation()
	if c := <-changes; c.PID != 77 || c.By != "iptables-nft[77]" || c.Generation != gen {
		t.Errorf("drift notified as %+v, want iptables-nft[77] at generation %d", c, gen)
	}
	k.NotifyLost()
	if c := <-changes; !c.Lost {
		t.Errorf("NotifyLost sent %+v", c)
	}
	cancel()
	if _, ok := <-changes; ok {
		t.Error("the subscription stays open after its context ended")
	}
	k.FailChanges(errors.New("no notifications"))
	if _, err := k.Changes(context.Background()); err == nil {
		t.Error("Changes succeeded after FailChanges")
	}
}
