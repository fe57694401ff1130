package nft_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
	"github.com/edgefw/edgefw/policy"
)

// TestDispatchOnFake applies the dispatched golden to the fake kernel,
// which, like the kernel, refuses to delete a chain a verdict map still
// jumps to, and changes a rule back and forth.
func TestDispatchOnFake(t *testing.T) {
	k := nfttest.New()
	fw := nft.NewApplier(nft.WithKernel(k))
	p, err := policy.Load("testdata/golden/dispatch-100.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := nft.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Apply(rs); err != nil {
		t.Fatalf("apply: %v", err)
	}
	var target string
	for _, ch := range rs.Chains {
		if strings.HasPrefix(ch.Name, "edgefw-dispatch-") {
			target = ch.Name
			break
		}
	}
	if err := k.DeleteChain(target); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("deleting %s, which a map jumps to: %v, want EBUSY", target, err)
	}
	for i := range p.Rules {
		if p.Rules[i].Name == "svc-050" {
			p.Rules[i].Ports[0].Port, p.Rules[i].Ports[0].EndPort = 4000, 4010
		}
	}
	changed, err := nft.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*nft.Ruleset{changed, rs} {
		if _, err := fw.Apply(want); err != nil {
			t.Fatalf("apply: %v", err)
		}
		if res, err := fw.Apply(want); err != nil || res.Messages != 0 {
			t.Fatalf("re-apply: %v, %q", err, res.Changes)
		}
	}
}
