package nft

import (
	"maps"
	"slices"
	"testing"
)

// TestElementsAfter derives what the netlink Kernel knows of its sets
// after a commit from the ops it sent, as the kernel applies them.
func TestElementsAfter(t *testing.T) {
	r := func(p string) AddrRange { return prefixRange(mustPrefix(p)) }
	s := &AddrSet{Name: "s"}
	before := map[string][]AddrRange{"s": {r("10.0.0.0/24"), r("10.0.2.0/24")}, "gone": {r("10.9.0.0/16")}, "flushed": {r("10.8.0.0/16")}}
	after := elementsAfter(before, []Op{
		DeleteElements{Set: s, Ranges: []AddrRange{r("10.0.2.0/24")}},
		AddElements{Set: s, Ranges: []AddrRange{r("10.0.1.0/24"), r("10.0.0.0/24")}},
		DeleteSet{Name: "gone"},
		AddSet{Set: &AddrSet{Name: "new", Ranges: []AddrRange{r("10.7.0.0/16")}}},
		ReplaceElements{Set: &AddrSet{Name: "flushed", Ranges: []AddrRange{r("10.6.0.0/16")}}},
	})
	want := map[string][]AddrRange{"s": {r("10.0.0.0/24"), r("10.0.1.0/24")}, "new": {r("10.7.0.0/16")}, "flushed": {r("10.6.0.0/16")}}
	if !maps.EqualFunc(after, want, slices.Equal) {
		t.Errorf("after = %v, want %v", after, want)
	}
	if len(before["s"]) != 2 || before["gone"] == nil {
		t.Errorf("elementsAfter changed what it started from: %v", before)
	}
	if after := elementsAfter(before, []Op{DeleteTable{}}); len(after) != 0 {
		t.Errorf("after deleting the table: %v", after)
	}
}
