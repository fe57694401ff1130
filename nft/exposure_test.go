package nft

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/policy"
)

// exposureText renders an exposure one rule a line, for the goldens.
func exposureText(e Exposure) string {
	var b strings.Builder
	for _, d := range e.Directions {
		fmt.Fprintf(&b, "%s (default %s, counter %s, logged %t)\n", d.Direction, d.Default, d.DefaultCounter, d.DefaultLogged)
		for _, r := range d.Rules {
			fmt.Fprintf(&b, "  %s %s", r.Counter, r.Kind)
			if r.Implicit != "" {
				fmt.Fprintf(&b, "/%s", r.Implicit)
			}
			if r.Tunnel != "" {
				fmt.Fprintf(&b, "(%s)", r.Tunnel)
			}
			fmt.Fprintf(&b, " %s %s", r.Action, r.Mode)
			field := func(name, v string) {
				if v != "" {
					fmt.Fprintf(&b, " %s=%s", name, v)
				}
			}
			field("logged", map[bool]string{true: "yes"}[r.Logged])
			field("family", string(r.Family))
			field("services", servicesText(r.Services))
			field("from", endpointsText(r.From))
			field("to", endpointsText(r.To))
			field("states", strings.Join(r.States, ","))
			if r.Limit != nil {
				field("limit", fmt.Sprintf("%+v", *r.Limit))
			}
			if r.ConnLimit != nil {
				field("connlimit", fmt.Sprintf("%+v", *r.ConnLimit))
			}
			field("limited", r.LimitedCounter)
			field("never", map[bool]string{true: "yes"}[r.Never])
			b.WriteString("\n")
		}
	}
	return b.String()
}

func servicesText(ss []Service) string {
	var parts []string
	for _, s := range ss {
		p := string(s.Protocol)
		if len(s.Ports) > 0 {
			p += "/" + renderPorts(s.Ports)
		}
		if len(s.ICMPTypes) > 0 {
			p += "/" + strings.Join(s.ICMPTypes, "|")
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

func endpointsText(eps []Endpoint) string {
	var parts []string
	for _, ep := range eps {
		switch {
		case ep.Set != "":
			parts = append(parts, fmt.Sprintf("set:%s%+v", ep.Set, *ep.SetSize))
		case ep.Interface != "":
			parts = append(parts, "if:"+ep.Interface)
		default:
			p := ep.Prefix.String()
			for _, x := range ep.Except {
				p += "-" + x.String()
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ",")
}

// TestExposureGolden pins the exposure of each golden policy: each
// testdata/golden/NAME.yaml reads back as testdata/exposure/NAME.txt. Run
// with -update to rewrite them, then review the diff.
func TestExposureGolden(t *testing.T) {
	for name, path := range goldenPolicies(t) {
		t.Run(name, func(t *testing.T) {
			got := exposureText(compileFile(t, path).Exposure())
			golden := filepath.Join("testdata", "exposure", name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestExposureGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s exposes differently from %s (-golden +derived):\n%s", path, golden, diff)
			}
		})
	}
}

// TestExposureSpecExample checks, field by field, what the SPEC's
// example exposes: the rules as the policy wrote them, sets with their
// sizes, a CIDR with except, limits, implicit rules and defaults.
func TestExposureSpecExample(t *testing.T) {
	e := compileFile(t, "testdata/golden/spec-example-full.yaml").Exposure()
	if len(e.Directions) != 3 {
		t.Fatalf("directions: %d", len(e.Directions))
	}
	in := e.Directions[0]
	if in.Direction != policy.Input || in.Default != policy.Drop || in.DefaultCounter != "edgefw-default-input" || !in.DefaultLogged {
		t.Errorf("input default: %+v", in)
	}
	rules := map[string]ExposedRule{}
	var order []string
	for _, r := range in.Rules {
		rules[r.Counter] = r
		order = append(order, r.Counter)
	}
	wantOrder := []string{"edgefw-established-input", "edgefw-invalid-input", "edgefw-loopback-input", "edgefw-icmpv6-nd-input",
		"edgefw-icmp-errors-input", "edgefw-failsafe", "edgefw-tunnel-wg0", "drop-blocklisted", "ssh-from-mgmt", "kube-api", "nodeports"}
	if diff := cmp.Diff(wantOrder, order); diff != "" {
		t.Errorf("input rules in evaluation order (-want +got):\n%s", diff)
	}
	tcp := func(from, to uint16) []Service {
		return []Service{{Protocol: policy.TCP, Ports: []PortSpan{{from, to}}}}
	}
	want := map[string]ExposedRule{
		"ssh-from-mgmt": {Counter: "ssh-from-mgmt", Kind: KindUser, Action: policy.Accept, Mode: policy.Enforce, Services: tcp(22, 22),
			From: []Endpoint{{Set: "mgmt-nets", SetSize: &SetSize{IPv4Ranges: 1, IPv6Ranges: 1, IPv4Addresses: 65536}}}},
		"kube-api": {Counter: "kube-api", Kind: KindUser, Action: policy.Accept, Mode: policy.Enforce, Services: tcp(6443, 6443),
			Limit: &policy.Limit{Rate: 100, Per: "minute", Burst: 20, PerSource: true}, ConnLimit: &policy.ConnLimit{Max: 10, PerSource: true},
			LimitedCounter: "edgefw-limited-kube-api"},
		"nodeports": {Counter: "nodeports", Kind: KindUser, Action: policy.Accept, Mode: policy.Enforce, Services: tcp(30000, 32767),
			From: []Endpoint{{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Except: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, {Interface: "wg0"}}},
		"drop-blocklisted": {Counter: "drop-blocklisted", Kind: KindUser, Action: policy.Drop, Mode: policy.Enforce, Logged: true,
			From: []Endpoint{{Set: "blocklist", SetSize: &SetSize{IPv4Ranges: 3, IPv6Ranges: 2, IPv4Addresses: 3*65536 + 1 + 256}}}},
		"edgefw-tunnel-wg0": {Counter: "edgefw-tunnel-wg0", Kind: KindImplicit, Implicit: ImplicitTunnel, Tunnel: "wg0", Action: policy.Accept,
			Mode: policy.Enforce, Services: []Service{{Protocol: policy.UDP, Ports: []PortSpan{{51820, 51820}}}}},
		"edgefw-loopback-input": {Counter: "edgefw-loopback-input", Kind: KindImplicit, Implicit: ImplicitLoopback, Action: policy.Accept,
			Mode: policy.Enforce, From: []Endpoint{{Interface: "lo"}}},
		"edgefw-established-input": {Counter: "edgefw-established-input", Kind: KindImplicit, Implicit: ImplicitEstablished,
			Action: policy.Accept, Mode: policy.Enforce, States: []string{"established", "related"}},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, rules[name], cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	out := e.Directions[2]
	if out.Direction != policy.Output || out.Default != policy.Accept || out.DefaultLogged {
		t.Errorf("output default: %+v", out)
	}
	egress := out.Rules[len(out.Rules)-1]
	if egress.Counter != "backend-egress" || endpointsText(egress.To) != "10.20.0.0/16" || egress.From != nil || egress.Family != policy.IPv4 {
		t.Errorf("backend-egress: %+v", egress)
	}
}

// TestRangeEndpoints checks that anonymous ranges read back as the CIDRs
// with except they came from, where that is shorter than their prefixes.
func TestRangeEndpoints(t *testing.T) {
	for _, tc := range []struct {
		cidrs  []string
		except []string
		want   string
	}{
		{[]string{"10.0.0.0/8"}, nil, "10.0.0.0/8"},
		{[]string{"0.0.0.0/0"}, []string{"192.0.2.0/24"}, "0.0.0.0/0-192.0.2.0/24"},
		{[]string{"10.0.0.0/8", "192.168.0.0/16"}, nil, "10.0.0.0/8,192.168.0.0/16"},
		{[]string{"192.168.0.0/16", "172.16.0.0/12"}, []string{"192.168.10.0/24", "192.168.20.0/23", "172.16.0.1/32"},
			"172.16.0.0/12-172.16.0.1/32,192.168.0.0/16-192.168.10.0/24-192.168.20.0/23"},
		{[]string{"2001:db8::/32"}, []string{"2001:db8:dead::/48"}, "2001:db8::/32-2001:db8:dead::/48"},
		{[]string{"198.51.100.0/24", "203.0.113.5/32"}, nil, "198.51.100.0/24,203.0.113.5/32"},
		{[]string{"10.0.0.0/24", "10.0.1.0/24"}, nil, "10.0.0.0/23"},
	} {
		var rs, cut []AddrRange
		for _, c := range tc.cidrs {
			rs = append(rs, prefixRange(netip.MustParsePrefix(c)))
		}
		for _, c := range tc.except {
			cut = append(cut, prefixRange(netip.MustParsePrefix(c)))
		}
		got := endpointsText(rangeEndpoints(subtractRanges(mergeRanges(rs), mergeRanges(cut))))
		if got != tc.want {
			t.Errorf("%v except %v: %s; want %s", tc.cidrs, tc.except, got, tc.want)
		}
	}
}
