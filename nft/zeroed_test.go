package nft_test

import (
	"slices"
	"testing"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
)

// TestResultZeroed checks that an apply names the counters that count
// again from zero, and only those: all of a table created (at boot, or
// restored after someone deleted it), a new rule's, a rule's whose action
// changed; none when the rules keep their meaning.
func TestResultZeroed(t *testing.T) {
	const web = `version: 1
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 443}]
    action: accept
`
	const webAndDeny = web + `  - name: deny-telnet
    direction: input
    ports: [{protocol: tcp, port: 23}]
    action: drop
`
	const webDropped = `version: 1
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 443}]
    action: drop
  - name: deny-telnet
    direction: input
    ports: [{protocol: tcp, port: 23}]
    action: drop
`
	k := nfttest.New()
	fw := nft.NewApplier(nft.WithKernel(k))
	apply := func(doc string) []string {
		t.Helper()
		res, err := fw.Apply(compile(t, doc, "", nil))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(res.Zeroed)
		return res.Zeroed
	}
	first := apply(web)
	if !slices.Contains(first, "web") || !slices.Contains(first, "edgefw-default-input") {
		t.Errorf("table created: zeroed %q, want every counter", first)
	}
	if got := apply(web); len(got) != 0 {
		t.Errorf("same policy again: zeroed %q, want none", got)
	}
	if got := apply(webAndDeny); !slices.Equal(got, []string{"deny-telnet"}) {
		t.Errorf("rule added: zeroed %q, want [deny-telnet]", got)
	}
	if got := apply(webDropped); !slices.Equal(got, []string{"web"}) {
		t.Errorf("action changed: zeroed %q, want [web]", got)
	}
	if err := k.DeleteTable(); err != nil {
		t.Fatal(err)
	}
	if got := apply(webDropped); !slices.Contains(got, "web") || !slices.Contains(got, "deny-telnet") {
		t.Errorf("table deleted by someone else, restored: zeroed %q, want every counter", got)
	}
}
