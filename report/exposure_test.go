package report

import "testing"

// TestRuleText checks the sentences a non-expert reads.
func TestRuleText(t *testing.T) {
	tcp := func(from, to uint16) []Service { return []Service{{Protocol: "tcp", Ports: []PortRange{{from, to}}}} }
	mgmt := Endpoint{Set: "mgmt-nets", Size: &SetSize{IPv4Ranges: 1, IPv6Ranges: 1, IPv4Addresses: 65536}}
	for _, tc := range []struct {
		dir  string
		rule ExposedRule
		want string
	}{
		{"input", ExposedRule{Rule: "kube-api", Action: "accept", Services: tcp(6443, 6443)}, "Anyone may connect to TCP 6443 (kube-api)."},
		{"input", ExposedRule{Rule: "ssh", Action: "accept", Services: tcp(22, 22), From: []Endpoint{mgmt}},
			"TCP 22 from the set mgmt-nets (2 ranges) is accepted (ssh)."},
		{"input", ExposedRule{Rule: "nodeports", Action: "accept", Services: tcp(30000, 32767),
			From: []Endpoint{{CIDR: "0.0.0.0/0", Except: []string{"192.0.2.0/24"}}, {Interface: "wg0"}}},
			"TCP 30000–32767 from any IPv4 address except 192.0.2.0/24 or interface wg0 is accepted (nodeports)."},
		{"input", ExposedRule{Rule: "drop-blocklisted", Action: "drop", Logged: true,
			From: []Endpoint{{Set: "blocklist", Size: &SetSize{IPv4Ranges: 3, Singles: true}}}},
			"All traffic from the set blocklist (3 addresses) is dropped, counted and logged (drop-blocklisted)."},
		{"input", ExposedRule{Rule: "web", Action: "accept", Services: []Service{{Protocol: "tcp", Ports: []PortRange{{80, 80}, {443, 443}, {8000, 8090}}}}},
			"Anyone may connect to TCP 80, 443 and 8000–8090 (web)."},
		{"input", ExposedRule{Rule: "v4-only", Action: "accept", Family: "ipv4", Services: tcp(179, 179)},
			"Anyone may connect to TCP 179 (IPv4 only) (v4-only)."},
		{"input", ExposedRule{Rule: "api", Action: "accept", Services: tcp(6443, 6443), Limit: &Limit{Rate: 100, Per: "minute", Burst: 20, PerSource: true},
			ConnLimit: &ConnLimit{Max: 10}, LimitedCounter: "edgefw-limited-api"},
			"Anyone may connect to TCP 6443 (api); at most 100 packets a minute (bursts of 20) per source address and at most 10 connections at a time: " +
				"packets beyond are dropped and counted in edgefw-limited-api."},
		{"input", ExposedRule{Rule: "watch-telnet", Action: "reject", Mode: "audit", Logged: true, Services: []Service{{Protocol: "tcp", Ports: []PortRange{{23, 23}}}, {Protocol: "udp", Ports: []PortRange{{23, 23}}}}},
			"Watched, not enforced: TCP 23 and UDP 23 would be rejected; it is counted, logged and let through (watch-telnet)."},
		{"input", ExposedRule{Rule: "reject-tcp", Action: "reject", Services: tcp(25, 25)},
			"TCP 25 is rejected and counted; the sender is told so (reject-tcp)."},
		{"output", ExposedRule{Rule: "backend-egress", Action: "accept", Family: "ipv4", Services: tcp(3000, 3000), To: []Endpoint{{CIDR: "10.20.0.0/16"}}},
			"Outgoing TCP 3000 to 10.20.0.0/16 is accepted (backend-egress)."},
		{"forward", ExposedRule{Rule: "pods-out", Action: "accept", From: []Endpoint{{Interface: "cni*"}}, To: []Endpoint{{Interface: "eth0"}}},
			"All forwarded traffic from interface cni* to interface eth0 is accepted (pods-out)."},
		{"output", ExposedRule{Rule: "dns", Action: "accept", Services: []Service{{Protocol: "udp", Ports: []PortRange{{53, 53}}}},
			To: []Endpoint{{CIDR: "192.0.2.53/32"}, {CIDR: "2001:db8::53/128"}}},
			"Outgoing UDP 53 to 192.0.2.53 or 2001:db8::53 is accepted (dns)."},
		{"input", ExposedRule{Rule: "never", Action: "accept", Never: true}, "Matches no packet: its addresses and protocols exclude each other (never)."},
		{"input", ExposedRule{Rule: "edgefw-failsafe", Kind: "implicit", Implicit: "failsafe", Action: "accept", Services: tcp(22, 22)},
			"Failsafe, before every rule so that operators cannot lock themselves out: anyone may connect to TCP 22 (edgefw-failsafe)."},
		{"input", ExposedRule{Rule: "edgefw-tunnel-wg0", Kind: "implicit", Implicit: "tunnel", Tunnel: "wg0", Action: "accept",
			Services: []Service{{Protocol: "udp", Ports: []PortRange{{51820, 51820}}}}},
			"Anyone may send to UDP 51820, the WireGuard listen port of tunnel wg0 (WireGuard answers only its peers' keys) (edgefw-tunnel-wg0)."},
		{"input", ExposedRule{Rule: "edgefw-loopback-input", Kind: "implicit", Implicit: "loopback", Action: "accept", From: []Endpoint{{Interface: "lo"}}},
			"Traffic on the loopback interface lo, between programs of the host itself, is accepted (edgefw-loopback-input)."},
		{"input", ExposedRule{Rule: "ping", Action: "accept", Family: "ipv4", Services: []Service{{Protocol: "icmp"}}},
			"Anyone may connect to ICMP (IPv4 only) (ping)."},
		{"input", ExposedRule{Rule: "udp-any", Action: "accept", Services: []Service{{Protocol: "udp"}}, From: []Endpoint{{CIDR: "10.0.0.0/8"}}},
			"All UDP from 10.0.0.0/8 is accepted (udp-any)."},
	} {
		if got := ruleText(tc.dir, tc.rule); got != tc.want {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.dir, tc.rule.Rule, got, tc.want)
		}
	}
}

func TestDefaultText(t *testing.T) {
	for _, tc := range []struct {
		d    DirectionExposure
		want string
	}{
		{DirectionExposure{Default: "drop", DefaultCounter: "edgefw-default-input", DefaultLogged: true},
			"Everything else is dropped and counted (edgefw-default-input); a sample is logged."},
		{DirectionExposure{Default: "accept", DefaultCounter: "edgefw-default-output"}, "Everything else is accepted and counted (edgefw-default-output)."},
	} {
		if got := defaultText(tc.d); got != tc.want {
			t.Errorf("got %s\nwant %s", got, tc.want)
		}
	}
}
