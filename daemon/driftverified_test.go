package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestDriftRepairAfterMemoryRelease: with a set large enough that applies
// and comparisons return memory to the OS, a deleted table and a deleted
// element are still restored exactly.
func TestDriftRepairAfterMemoryRelease(t *testing.T) {
	h := newHarness(t)
	var list strings.Builder
	for i := range releaseAfterRanges + 10 {
		fmt.Fprintf(&list, "10.%d.%d.0/24\n", i/128, 2*(i%128)) // not adjacent: not merged
	}
	file := filepath.Join(h.dir, "block.txt")
	if err := os.WriteFile(file, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := `version: 1
sets:
  block: {file: ` + file + `}
rules:
  - name: drop-block
    direction: input
    from: [{set: block}]
    action: drop
`
	h.write(t, doc)
	d := h.daemon(t)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !h.holds(t, doc) {
		t.Fatal("the large set was not applied")
	}
	var set *nft.SetState
	for _, s := range h.kernel.Snapshot().Sets {
		if len(s.Elements) > 7 {
			set = s
		}
	}
	if set == nil {
		t.Fatal("no set with the file's ranges in the kernel")
	}
	if err := h.kernel.DeleteElements(set.Name, set.Elements[7]); err != nil {
		t.Fatal(err)
	}
	if c := d.checkDrift(true); !c.drifted || c.err != nil || !h.holds(t, doc) {
		t.Fatalf("a deleted element was not restored: %+v", c)
	}
	h.flush(t)
	if c := d.checkDrift(false); !c.drifted || c.err != nil || !h.holds(t, doc) {
		t.Fatalf("the deleted table was not restored: %+v", c)
	}
}
