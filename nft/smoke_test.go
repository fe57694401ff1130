package nft

import (
	"net/netip"
	"testing"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/policy"
)

func TestSmokeApply(t *testing.T) {
	ns := netnstest.New(t, "smoke")
	p := &policy.Policy{
		Version:  1,
		Defaults: policy.Defaults{Input: policy.Drop, Forward: policy.Accept, Output: policy.Accept},
		Failsafe: []policy.PortRange{{Protocol: policy.TCP, Port: 22, EndPort: 22}},
		Sets: []policy.Set{{Name: "mgmt", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/16"), netip.MustParsePrefix("fd00:10::/48")}},
			{Name: "block", Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("198.51.100.0/24")}}},
		Rules: []policy.Rule{
			{Name: "drop-block", Direction: policy.Input, From: []policy.Peer{{Set: "block"}}, Action: policy.Drop, Log: true},
			{Name: "ssh", Direction: policy.Input, From: []policy.Peer{{Set: "mgmt"}}, Ports: []policy.PortRange{{Protocol: policy.TCP, Port: 22, EndPort: 22}}, Action: policy.Accept},
			{Name: "nodeports", Direction: policy.Input, From: []policy.Peer{{CIDR: netip.MustParsePrefix("0.0.0.0/0"), Except: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, {Interface: "wg0"}},
				Ports: []policy.PortRange{{Protocol: policy.TCP, Port: 30000, EndPort: 32767}, {Protocol: policy.UDP, Port: 53, EndPort: 53}, {Protocol: policy.UDP, Port: 123, EndPort: 123}}, Action: policy.Reject},
			{Name: "egress", Direction: policy.Output, To: []policy.Peer{{CIDR: netip.MustParsePrefix("10.20.0.0/16")}}, Ports: []policy.PortRange{{Protocol: policy.TCP, Port: 3000, EndPort: 3000}, {Protocol: policy.ICMP}}, Action: policy.Accept},
		},
		Tunnels: []policy.Tunnel{{Name: "wg0", ListenPort: 51820}},
	}
	rs, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rs.String())
	a := NewApplier(WithNetNS(ns.FD))
	res, err := a.Apply(rs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first apply: %d messages", res.Messages)
	t.Log(ns.MustRun(t, "nft", "list", "ruleset"))
	res, err = a.Apply(rs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 0 {
		t.Fatalf("second apply wrote %d messages: %v", res.Messages, res.Changes)
	}
	out, err := ns.Run("nft", "-c", "-f", "-")
	_ = out
	_ = err
}
