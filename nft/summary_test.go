package nft_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
)

// TestApplySummary checks what Result.Summary says an apply changed, in
// the policy's terms, on the fake kernel. (changedYAML keeps the set
// trusted, unused: its elements stay.)
func TestApplySummary(t *testing.T) {
	trustedMore := strings.Replace(baseYAML, "203.0.113.8/29", "203.0.113.64/26, 192.0.2.200/32", 1)
	webLimited := strings.Replace(baseYAML, "ports: [{protocol: tcp, port: 80}]",
		"ports: [{protocol: tcp, port: 80}]\n    limit: {rate: 10/minute, burst: 5}", 1)
	tests := []struct {
		name     string
		from, to string
		want     nft.Summary
	}{
		{name: "same policy", from: baseYAML, to: baseYAML, want: nft.Summary{}},
		{name: "rule added, removed and changed", from: baseYAML, to: changedYAML,
			want: nft.Summary{RulesAdded: []string{"new-first"}, RulesRemoved: []string{"metrics"}, RulesChanged: []string{"other"}}},
		{name: "set elements only", from: baseYAML, to: trustedMore,
			want: nft.Summary{ElementsAdded: 2, ElementsRemoved: 1}},
		{name: "a limit is the rule's own change", from: baseYAML, to: webLimited,
			want: nft.Summary{RulesChanged: []string{"web"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fw := nft.NewApplier(nft.WithKernel(nfttest.New()))
			if _, err := fw.Apply(compile(t, tt.from, "", nil)); err != nil {
				t.Fatal(err)
			}
			res, err := fw.Apply(compile(t, tt.to, "", nil))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, res.Summary); diff != "" {
				t.Errorf("summary (-want +got):\n%s\nchanges: %q", diff, res.Changes)
			}
			if res.Summary.Empty() != tt.want.Empty() {
				t.Errorf("Empty() = %v", res.Summary.Empty())
			}
		})
	}
}

// TestApplySummaryOfRestore: restoring a deleted table adds every rule and
// element again, which is what a drift repair writes.
func TestApplySummaryOfRestore(t *testing.T) {
	k := nfttest.New()
	fw := nft.NewApplier(nft.WithKernel(k))
	rs := compile(t, baseYAML, "", nil)
	first, err := fw.Apply(rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web", "metrics", "other", "edgefw-default-input"} {
		if !slices.Contains(first.Summary.RulesAdded, name) {
			t.Errorf("the first apply does not add %s: %v", name, first.Summary.RulesAdded)
		}
	}
	if first.Summary.ElementsAdded != 4 || len(first.Summary.RulesChanged)+len(first.Summary.RulesRemoved) != 0 {
		t.Errorf("first apply: %+v", first.Summary)
	}
	if err := k.DeleteTable(); err != nil {
		t.Fatal(err)
	}
	restore, err := fw.Apply(rs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first.Summary, restore.Summary); diff != "" {
		t.Errorf("the restore does not redo the first apply (-first +restore):\n%s", diff)
	}
}

// TestApplySummaryAfterFullRewrite: when the patch is refused and the
// table is rewritten, the summary still says what differed.
func TestApplySummaryAfterFullRewrite(t *testing.T) {
	k := &refusingOnce{Kernel: nfttest.New()}
	k.refused = append(k.refused, nil) // let the first apply through
	fw := nft.NewApplier(nft.WithKernel(k))
	if _, err := fw.Apply(compile(t, baseYAML, "", nil)); err != nil {
		t.Fatal(err)
	}
	k.refused = nil
	res, err := fw.Apply(compile(t, changedYAML, "", nil))
	if err != nil || !res.Full {
		t.Fatalf("apply: %+v, %v; want a full rewrite", res, err)
	}
	want := nft.Summary{RulesAdded: []string{"new-first"}, RulesRemoved: []string{"metrics"}, RulesChanged: []string{"other"}}
	if diff := cmp.Diff(want, res.Summary); diff != "" {
		t.Errorf("summary after a full rewrite (-want +got):\n%s", diff)
	}
}
