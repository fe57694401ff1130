package nft

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// othersRuleset is what other tools own on a typical edge host: Docker's or
// a CNI's masquerading, a firewall manager's inet filter table, and a table
// that merely shares our table's name in another family.
const othersRuleset = `
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" ip saddr 172.17.0.0/16 masquerade
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 10.96.0.1 tcp dport 443 dnat to 192.0.2.10:6443
	}
}
table inet filter {
	counter seen {
	}

	set allowed {
		type ipv4_addr
		elements = { 192.0.2.9 }
	}

	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 9999 counter name "seen" drop
		ip saddr @allowed jump helper
	}

	chain forward {
		type filter hook forward priority filter + 10; policy drop;
	}

	chain helper {
		accept
	}
}
table ip edgefw {
	chain output {
		type filter hook output priority 100; policy accept;
	}
}
`

// TestOtherTablesUntouched applies, re-applies, changes and deletes our
// table next to other tools' tables: theirs stay byte for byte as they
// were, and OtherHooked reports their base chains at our hooks.
func TestOtherTablesUntouched(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "others")
	load := ns.Command("nft", "-f", "-")
	load.Stdin = strings.NewReader(othersRuleset)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	theirs := func() string {
		var b strings.Builder
		for _, tbl := range [][]string{{"ip", "nat"}, {"inet", "filter"}, {"ip", "edgefw"}} {
			b.WriteString(ns.MustRun(t, "nft", "-a", "list", "table", tbl[0], tbl[1]))
		}
		return b.String()
	}
	want := theirs()

	fw := NewApplier(WithNetNS(ns.FD))
	steps := []struct {
		name string
		do   func() error
	}{
		{"apply", func() error { _, err := fw.Apply(compileYAML(t, trafficPolicy)); return err }},
		{"re-apply", func() error { _, err := fw.Apply(compileYAML(t, trafficPolicy)); return err }},
		{"apply a change", func() error {
			_, err := fw.Apply(compileYAML(t, strings.Replace(trafficPolicy, "port: 80}", "port: 81}", 1)))
			return err
		}},
		{"apply another policy", func() error { _, err := fw.Apply(compileYAML(t, "version: 1\n")); return err }},
		{"delete", fw.Delete},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := theirs(); got != want {
			t.Errorf("after %s, the other tables changed:\n%s", step.name, cmp.Diff(want, got))
		}
		if step.name == "delete" {
			break
		}
		hooked, err := fw.OtherHooked()
		if err != nil {
			t.Fatalf("OtherHooked: %v", err)
		}
		wantHooked := []HookedTable{
			{Family: "ip", Table: "nat", Chain: "output", Hook: "output", Priority: -100, Policy: "accept"},
			{Family: "inet", Table: "filter", Chain: "input", Hook: "input", Priority: 0, Policy: "accept"},
			{Family: "inet", Table: "filter", Chain: "forward", Hook: "forward", Priority: 10, Policy: "drop"},
			{Family: "ip", Table: "edgefw", Chain: "output", Hook: "output", Priority: 100, Policy: "accept"},
		}
		if diff := cmp.Diff(wantHooked, hooked); diff != "" {
			t.Errorf("after %s, OtherHooked (-want +got):\n%s", step.name, diff)
		}
	}
	if out := ns.MustRun(t, "nft", "list", "tables"); strings.Contains(out, "inet "+TableName) {
		t.Errorf("table inet %s is still there after Delete:\n%s", TableName, out)
	}
	if err := fw.Delete(); err != nil {
		t.Errorf("deleting a deleted table: %v", err)
	}
}
