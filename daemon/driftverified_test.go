package daemon

import (
	"context"
	"testing"

	"github.com/edgefw/edgefw/nft"
)

// TestGenerationVerified: the periodic full comparison is skipped only
// while the generation is the one at which the table was last written by
// the daemon or compared equal; any commit by someone else, to our table
// or not, makes the next periodic check compare, and a comparison (with
// its repair) makes the table verified again.
func TestGenerationVerified(t *testing.T) {
	h := newHarness(t)
	d := h.daemon(t)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !d.generationVerified() {
		t.Fatal("the table the daemon just wrote is not verified")
	}
	if err := h.kernel.AddCounter("stray", nft.Counter{}); err != nil {
		t.Fatal(err)
	}
	if d.generationVerified() {
		t.Fatal("a counter added by someone else is taken as verified: the periodic check would skip it")
	}
	c := d.checkDrift(true)
	if !c.drifted || c.err != nil {
		t.Fatalf("the stray counter was not repaired: %+v", c)
	}
	if !d.generationVerified() {
		t.Fatal("the repaired table is not verified")
	}
	h.flush(t)
	if d.generationVerified() {
		t.Fatal("a deleted table is taken as verified")
	}
	d.checkDrift(true)
	if !h.holds(t, policyA) || !d.generationVerified() {
		t.Fatal("the deleted table was not restored and verified")
	}
	// A commit elsewhere moves the generation too: the table is compared
	// once, found equal, and verified at the new generation.
	if err := h.kernel.AddTable(); err != nil {
		t.Fatal(err)
	}
	if d.generationVerified() {
		t.Fatal("a moved generation is taken as verified")
	}
	if c := d.checkDrift(true); c.drifted || c.err != nil {
		t.Fatalf("an equal table was repaired: %+v", c)
	}
	if !d.generationVerified() {
		t.Fatal("a table compared equal is not verified")
	}
}
