package policy

import (
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustKey(t *testing.T, s string) [32]byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad test key %q", s)
	}
	return [32]byte(b)
}

// builtPolicy is a valid Policy built in code, named as the decoder's
// tests name theirs (reject_test.go): a set a, a rule r, a tunnel wg0 with
// a peer gw.
func builtPolicy(t *testing.T) *Policy {
	return &Policy{
		Version:  1,
		Defaults: Defaults{Input: Drop, Forward: Accept, Output: Accept},
		Failsafe: []PortRange{{Protocol: TCP, Port: 22, EndPort: 22}},
		Sets:     []Set{{Name: "a", Prefixes: prefixes(t, "10.0.0.0/8", "fd00::/8")}},
		Rules: []Rule{{Name: "r", Direction: Input, Action: Accept,
			Ports: []PortRange{{Protocol: TCP, Port: 22, EndPort: 22}}}},
		Tunnels: []Tunnel{{
			Name: "wg0", Backend: BackendAuto, PrivateKeyFile: "/etc/edgefw/keys/wg0.key", ListenPort: 51820,
			Addresses: prefixes(t, "10.0.0.2/24"),
			Peers: []TunnelPeer{{Name: "gw", PublicKey: mustKey(t, testKey), Endpoint: "gw.example.com:51820",
				AllowedIPs: prefixes(t, "10.0.0.0/24"), PersistentKeepalive: 25 * time.Second}},
		}},
	}
}

// structRejection is a mistake a Policy can hold. Its name is that of the
// decoder's case (rejectionCases) for the same mistake, if there is one.
type structRejection struct {
	name   string
	mutate func(t *testing.T, p *Policy)
	// want is the whole error text.
	want string
}

func validateCases() []structRejection {
	long := strings.Repeat("a", 49)
	rule := func(p *Policy) *Rule { return &p.Rules[0] }
	tunnel := func(p *Policy) *Tunnel { return &p.Tunnels[0] }
	peer := func(p *Policy) *TunnelPeer { return &p.Tunnels[0].Peers[0] }
	cidr := netip.MustParsePrefix
	// secondPeer adds a peer gw2 with another key and allowed IP.
	secondPeer := func(t *testing.T, p *Policy) *TunnelPeer {
		p.Tunnels[0].Peers = append(p.Tunnels[0].Peers, TunnelPeer{Name: "gw2", PublicKey: mustKey(t, otherKey), AllowedIPs: prefixes(t, "10.0.1.0/24")})
		return &p.Tunnels[0].Peers[1]
	}
	// secondTunnel adds a tunnel wg1 with its own address and no listen port.
	secondTunnel := func(t *testing.T, p *Policy) *Tunnel {
		p.Tunnels = append(p.Tunnels, Tunnel{Name: "wg1", PrivateKeyFile: "/k", Addresses: prefixes(t, "10.0.1.1/24")})
		return &p.Tunnels[1]
	}
	const (
		nameAlphabetText = "use lowercase letters, digits and -, starting with a letter"
		ifaceValid       = "an interface name is 1 to 15 printable characters without /, :, quotes or spaces, optionally ending in * to match a prefix, like eth0 or veth*"
		endpointValid    = "write HOST:PORT or [IPV6]:PORT, like gw.example.com:51820 or [2001:db8::1]:51820"
	)
	return []structRejection{
		// version, defaults and failsafe.
		{"version 2", func(t *testing.T, p *Policy) { p.Version = 2 }, "version: version 2 is not supported; the only valid version is 1"},
		{"version 0", func(t *testing.T, p *Policy) { p.Version = 0 }, "version: version 0 is not supported; the only valid version is 1"},
		{"default reject", func(t *testing.T, p *Policy) { p.Defaults.Input = Reject }, `defaults.input: "reject" is not a valid default verdict; valid values are accept, drop`},
		{"defaults unset", func(t *testing.T, p *Policy) { p.Defaults = Defaults{} }, `defaults.input: "" is not a valid default verdict; valid values are accept, drop` + "\n" +
			`defaults.forward: "" is not a valid default verdict; valid values are accept, drop` + "\n" +
			`defaults.output: "" is not a valid default verdict; valid values are accept, drop`},
		{"failsafe icmp", func(t *testing.T, p *Policy) { p.Failsafe = []PortRange{{Protocol: ICMP}} }, `failsafe[0].protocol: "icmp" is not a valid protocol; valid values are tcp, udp, sctp`},
		{"failsafe without port", func(t *testing.T, p *Policy) { p.Failsafe = []PortRange{{Protocol: TCP}} }, "failsafe[0].port: required field is missing; a failsafe entry opens one port or range, like {protocol: tcp, port: 22}"},

		// sets.
		{"set entry not a CIDR", func(t *testing.T, p *Policy) { p.Sets[0].Prefixes = []netip.Prefix{{}} }, "sets.a[0]: not a valid CIDR; write an address and a prefix length, like 10.0.0.0/8 or 2001:db8::/32"},
		{"set host bits", func(t *testing.T, p *Policy) { p.Sets[0].Prefixes = prefixes(t, "10.0.0.0/8", "10.0.0.1/24") }, "sets.a[1]: 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?"},
		{"set IPv4-mapped", func(t *testing.T, p *Policy) { p.Sets[0].Prefixes = prefixes(t, "::ffff:10.0.0.0/104") }, "sets.a[0]: ::ffff:10.0.0.0/104 is an IPv4-mapped IPv6 address, which never matches; write it as IPv4, like 10.0.0.0/8"},
		{"set file entry host bits", func(t *testing.T, p *Policy) {
			p.Sets[0].File, p.Sets[0].Prefixes = "/etc/edgefw/a.txt", prefixes(t, "10.0.0.0/8", "10.1.0.1/16")
		}, "sets.a[1]: 10.1.0.1/16 has host bits set; did you mean 10.1.0.0/16?"},
		{"set name invalid", func(t *testing.T, p *Policy) { p.Sets[0].Name = "Mgmt" }, `sets.Mgmt: "Mgmt" is not a valid name; ` + nameAlphabetText + ", like ssh-from-mgmt"},
		{"set name reserved", func(t *testing.T, p *Policy) { p.Sets[0].Name = "edgefw-x" }, `sets.edgefw-x: names beginning with "edgefw-" are reserved for implicit rules; choose another name`},
		{"set name too long", func(t *testing.T, p *Policy) { p.Sets[0].Name = long }, "sets." + long + `: "` + long + `" is 49 characters long; at most 48 are allowed`},
		{"duplicate set", func(t *testing.T, p *Policy) { p.Sets = append(p.Sets, Set{Name: "a"}) }, `sets.a: duplicate set name "a"; it is first defined at sets.a, so choose another name`},

		// rules.
		{"rule name uppercase", func(t *testing.T, p *Policy) { rule(p).Name = "SSH" }, `rules[0].name: "SSH" is not a valid name; ` + nameAlphabetText + ", like ssh-from-mgmt"},
		{"rule name with underscore", func(t *testing.T, p *Policy) { rule(p).Name = "ssh_in" }, `rules[0].name: "ssh_in" is not a valid name; ` + nameAlphabetText + ", like ssh-from-mgmt"},
		{"rule name starts with digit", func(t *testing.T, p *Policy) { rule(p).Name = "1ssh" }, `rules[0].name: "1ssh" is not a valid name; ` + nameAlphabetText + ", like ssh-from-mgmt"},
		{"rule name reserved", func(t *testing.T, p *Policy) { rule(p).Name = "edgefw-ssh" }, `rules[0].name: names beginning with "edgefw-" are reserved for implicit rules; choose another name`},
		{"rule name too long", func(t *testing.T, p *Policy) { rule(p).Name = long }, `rules[0].name: "` + long + `" is 49 characters long; at most 48 are allowed`},
		{"rule name empty string", func(t *testing.T, p *Policy) { rule(p).Name = "" }, "rules[0].name: a name must not be empty; " + nameAlphabetText},
		{"duplicate rule name", func(t *testing.T, p *Policy) {
			p.Rules = append(p.Rules, Rule{Name: "r", Direction: Input, Action: Drop})
		},
			`rules[1].name: duplicate rule name "r"; it is first defined at rules[0].name, so choose another name`},
		{"direction empty", func(t *testing.T, p *Policy) { rule(p).Direction = "" }, `rules[0].direction: "" is not a valid direction; valid values are input, output, forward`},
		{"direction invalid", func(t *testing.T, p *Policy) { rule(p).Direction = "in" }, `rules[0].direction: "in" is not a valid direction; valid values are input, output, forward`},
		{"action empty", func(t *testing.T, p *Policy) { rule(p).Action = "" }, `rules[0].action: "" is not a valid action; valid values are accept, drop, reject`},
		{"action invalid", func(t *testing.T, p *Policy) { rule(p).Action = "allow" }, `rules[0].action: "allow" is not a valid action; valid values are accept, drop, reject`},
		{"mode invalid", func(t *testing.T, p *Policy) { rule(p).Mode = "dry-run" }, `rules[0].mode: "dry-run" is not a valid mode; valid values are enforce, audit`},
		{"mode capitalised", func(t *testing.T, p *Policy) { rule(p).Action, rule(p).Mode = Drop, "Audit" }, `rules[0].mode: "Audit" is not a valid mode; valid values are enforce, audit`},
		{"mode audit on accept", func(t *testing.T, p *Policy) { rule(p).Mode = Audit },
			"rules[0].mode: mode audit counts and logs what a drop or reject rule would deny, and an accept rule denies nothing; use action: drop or reject, or remove mode"},
		{"family invalid", func(t *testing.T, p *Policy) { rule(p).Family = "inet" }, `rules[0].family: "inet" is not a valid family; valid values are ipv4, ipv6`},

		// from and to.
		{"peer with no kind", func(t *testing.T, p *Policy) { rule(p).From = []Peer{{}} },
			"rules[0].from[0]: a peer is exactly one of cidr (with optional except), set or interface; this one has none"},
		{"peer with two kinds", func(t *testing.T, p *Policy) { rule(p).From = []Peer{{CIDR: cidr("10.0.0.0/8"), Set: "a"}} },
			"rules[0].from[0]: a peer is exactly one of cidr (with optional except), set or interface; this one has cidr and set, so split it into one peer for each"},
		{"except without cidr", func(t *testing.T, p *Policy) { rule(p).From = []Peer{{Set: "a", Except: prefixes(t, "10.0.0.0/8")}} },
			"rules[0].from[0].except: except is only valid with cidr; remove it or use {cidr: ..., except: [...]}"},
		{"except outside cidr", func(t *testing.T, p *Policy) {
			rule(p).From = []Peer{{CIDR: cidr("10.0.0.0/8"), Except: prefixes(t, "192.0.2.0/24")}}
		}, "rules[0].from[0].except[0]: 192.0.2.0/24 is not inside cidr 10.0.0.0/8; an except must be a smaller network inside the cidr"},
		{"except wider than cidr", func(t *testing.T, p *Policy) {
			rule(p).From = []Peer{{CIDR: cidr("10.0.0.0/16"), Except: prefixes(t, "10.0.0.0/8")}}
		}, "rules[0].from[0].except[0]: 10.0.0.0/8 is not inside cidr 10.0.0.0/16; an except must be a smaller network inside the cidr"},
		{"except equals cidr", func(t *testing.T, p *Policy) {
			rule(p).From = []Peer{{CIDR: cidr("10.0.0.0/8"), Except: prefixes(t, "10.0.0.0/8")}}
		}, "rules[0].from[0].except[0]: 10.0.0.0/8 is the cidr itself, so the peer would match nothing; an except must be a smaller network inside the cidr"},
		{"except other family", func(t *testing.T, p *Policy) {
			rule(p).From = []Peer{{CIDR: cidr("10.0.0.0/8"), Except: prefixes(t, "fd00::/8")}}
		}, "rules[0].from[0].except[0]: fd00::/8 is IPv6 but cidr 10.0.0.0/8 is IPv4; an except must lie inside the cidr"},
		{"except host bits", func(t *testing.T, p *Policy) {
			rule(p).From = []Peer{{CIDR: cidr("10.0.0.0/8"), Except: prefixes(t, "10.0.0.1/24")}}
		}, "rules[0].from[0].except[0]: 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?"},
		{"peer cidr host bits", func(t *testing.T, p *Policy) { rule(p).From = []Peer{{CIDR: cidr("10.0.0.1/8")}} },
			"rules[0].from[0].cidr: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"},
		{"undefined set", func(t *testing.T, p *Policy) { p.Sets[0].Name = "mgmt"; rule(p).From = []Peer{{Set: "admins"}} },
			`rules[0].from[0].set: undefined set "admins"; defined sets are mgmt`},
		{"undefined set, none defined", func(t *testing.T, p *Policy) { p.Sets = nil; rule(p).To = []Peer{{Set: "admins"}} },
			`rules[0].to[0].set: undefined set "admins"; no sets are defined; define it under sets:`},
		{"interface with slash", func(t *testing.T, p *Policy) { rule(p).From = []Peer{{Interface: "eth0/1"}} },
			`rules[0].from[0].interface: interface "eth0/1" contains '/'; ` + ifaceValid},
		{"interface with colon", func(t *testing.T, p *Policy) { rule(p).From = []Peer{{Interface: "eth0:1"}} },
			`rules[0].from[0].interface: interface "eth0:1" contains ':'; ` + ifaceValid},
		{"interface too long", func(t *testing.T, p *Policy) { rule(p).From = []Peer{{Interface: "abcdefghijklmnop"}} },
			`rules[0].from[0].interface: interface "abcdefghijklmnop" is longer than 15 characters; ` + ifaceValid},
		{"interface wildcard inside", func(t *testing.T, p *Policy) { rule(p).From = []Peer{{Interface: "e*h0"}} },
			`rules[0].from[0].interface: interface "e*h0" contains '*'; ` + ifaceValid},
		{"interface wildcard alone", func(t *testing.T, p *Policy) { rule(p).From = []Peer{{Interface: "*"}} },
			`rules[0].from[0].interface: interface "*" would match every interface; leave out the peer instead, or ` + ifaceValid},
		{"input interface in output rule", func(t *testing.T, p *Policy) { rule(p).Direction = Output; rule(p).From = []Peer{{Interface: "eth0"}} },
			"rules[0].from[0].interface: an output rule's packets have no input interface; match the output interface with to: [{interface: eth0}]"},
		{"output interface in input rule", func(t *testing.T, p *Policy) { rule(p).To = []Peer{{Interface: "eth0"}} },
			"rules[0].to[0].interface: an input rule's packets have no output interface; match the input interface with from: [{interface: eth0}]"},

		// ports.
		{"ports protocol empty", func(t *testing.T, p *Policy) { rule(p).Ports = []PortRange{{Port: 22, EndPort: 22}} },
			`rules[0].ports[0].protocol: "" is not a valid protocol; valid values are tcp, udp, sctp, icmp, icmpv6`},
		{"unknown protocol", func(t *testing.T, p *Policy) { rule(p).Ports = []PortRange{{Protocol: "http", Port: 80, EndPort: 80}} },
			`rules[0].ports[0].protocol: "http" is not a valid protocol; valid values are tcp, udp, sctp, icmp, icmpv6`},
		{"endPort below port", func(t *testing.T, p *Policy) { rule(p).Ports = []PortRange{{Protocol: TCP, Port: 22, EndPort: 21}} },
			"rules[0].ports[0].endPort: endPort 21 is less than port 22; endPort must be at least port"},
		{"single port without endPort", func(t *testing.T, p *Policy) { rule(p).Ports = []PortRange{{Protocol: UDP, Port: 53}} },
			"rules[0].ports[0].endPort: endPort 0 is less than port 53; endPort must be at least port"},
		{"endPort without port", func(t *testing.T, p *Policy) { rule(p).Ports = []PortRange{{Protocol: TCP, EndPort: 22}} },
			"rules[0].ports[0].endPort: endPort needs port; write a range as port: FIRST, endPort: LAST"},
		{"icmp with port", func(t *testing.T, p *Policy) { rule(p).Ports = []PortRange{{Protocol: ICMP, Port: 8}} },
			"rules[0].ports[0].port: icmp has no ports; remove port, or use tcp, udp or sctp"},
		{"icmpv6 with endPort", func(t *testing.T, p *Policy) { rule(p).Ports = []PortRange{{Protocol: ICMPv6, EndPort: 8}} },
			"rules[0].ports[0].endPort: icmpv6 has no ports; remove endPort, or use tcp, udp or sctp"},

		// Families.
		{"family contradicts cidr", func(t *testing.T, p *Policy) {
			rule(p).Family = IPv6
			rule(p).From = []Peer{{CIDR: cidr("10.0.0.0/8")}}
		},
			"rules[0].from[0].cidr: cidr 10.0.0.0/8 matches only IPv4 packets, which contradicts family: ipv6 at rules[0].family; remove one of them"},
		{"family contradicts icmp", func(t *testing.T, p *Policy) { rule(p).Family = IPv6; rule(p).Ports = []PortRange{{Protocol: ICMP}} },
			"rules[0].ports[0].protocol: icmp matches only IPv4 packets, which contradicts family: ipv6 at rules[0].family; remove one of them"},
		{"family contradicts icmpv6", func(t *testing.T, p *Policy) { rule(p).Family = IPv4; rule(p).Ports = []PortRange{{Protocol: ICMPv6}} },
			"rules[0].ports[0].protocol: icmpv6 matches only IPv6 packets, which contradicts family: ipv4 at rules[0].family; remove one of them"},
		{"from IPv4, to IPv6", func(t *testing.T, p *Policy) {
			r := rule(p)
			r.Direction, r.From, r.To = Forward, []Peer{{CIDR: cidr("10.0.0.0/8")}}, []Peer{{CIDR: cidr("fd00::/8")}}
		}, "rules[0].to: to matches only IPv6 packets, which contradicts from, which matches only IPv4 packets; no packet can match both"},
		{"IPv6 address, icmp only", func(t *testing.T, p *Policy) {
			rule(p).From, rule(p).Ports = []Peer{{CIDR: cidr("fd00::/8")}}, []PortRange{{Protocol: ICMP}}
		}, "rules[0].ports: ports matches only IPv4 packets, which contradicts from, which matches only IPv6 packets; no packet can match both"},
		{"IPv6 from entry in a rule to IPv4", func(t *testing.T, p *Policy) {
			r := rule(p)
			r.Direction, r.From, r.To = Forward, []Peer{{CIDR: cidr("10.0.0.0/8")}, {CIDR: cidr("fd00::/8")}}, []Peer{{CIDR: cidr("192.0.2.0/24")}}
		}, "rules[0].from[1].cidr: cidr fd00::/8 matches only IPv6 packets, which contradicts to, which matches only IPv4 packets; this entry can never match, so remove it"},
		{"icmpv6 entry in an IPv4 rule", func(t *testing.T, p *Policy) {
			rule(p).From, rule(p).Ports = []Peer{{CIDR: cidr("10.0.0.0/8")}}, []PortRange{{Protocol: TCP}, {Protocol: ICMPv6}}
		}, "rules[0].ports[1].protocol: icmpv6 matches only IPv6 packets, which contradicts from, which matches only IPv4 packets; this entry can never match, so remove it"},

		// limit and connLimit.
		{"limit rate unit", func(t *testing.T, p *Policy) { rule(p).Limit = &Limit{Rate: 100, Per: "min"} },
			`rules[0].limit.rate: "100/min" is not a valid rate; write COUNT/UNIT with UNIT one of second, minute, hour, day, like 100/minute`},
		{"limit rate zero", func(t *testing.T, p *Policy) { rule(p).Limit = &Limit{Per: "second"} },
			"rules[0].limit.rate: a rate of 0 would drop every packet; the count must be at least 1, or use action: drop"},
		{"connLimit max zero", func(t *testing.T, p *Policy) { rule(p).ConnLimit = &ConnLimit{PerSource: true} },
			"rules[0].connLimit.max: max 0 is out of range; valid values are 1 to 4294967295"},

		// tunnels.
		{"tunnel name empty", func(t *testing.T, p *Policy) { tunnel(p).Name = "" }, "tunnels[0].name: a name must not be empty; " + nameAlphabetText},
		{"tunnel name too long", func(t *testing.T, p *Policy) { tunnel(p).Name = "wg-to-the-cluster" }, `tunnels[0].name: "wg-to-the-cluster" is 17 characters long; at most 15 are allowed`},
		{"tunnel name invalid", func(t *testing.T, p *Policy) { tunnel(p).Name = "WG0" }, `tunnels[0].name: "WG0" is not a valid name; ` + nameAlphabetText + ", like ssh-from-mgmt"},
		{"duplicate tunnel name", func(t *testing.T, p *Policy) { secondTunnel(t, p).Name = "wg0" },
			`tunnels[1].name: duplicate tunnel name "wg0"; it is first defined at tunnels[0].name, so choose another name`},
		{"backend invalid", func(t *testing.T, p *Policy) { tunnel(p).Backend = "wireguard-go" },
			`tunnels[0].backend: "wireguard-go" is not a valid backend; valid values are auto, kernel, userspace`},
		{"privateKeyFile empty string", func(t *testing.T, p *Policy) { tunnel(p).PrivateKeyFile = "" },
			"tunnels[0].privateKeyFile: must name a key file, like /etc/edgefw/keys/wg0.key"},
		{"privateKeyFile relative", func(t *testing.T, p *Policy) { tunnel(p).PrivateKeyFile = "wg0.key" },
			`tunnels[0].privateKeyFile: "wg0.key" is not an absolute path; name the key file in full, like /etc/edgefw/keys/wg0.key`},
		{"presharedKeyFile relative", func(t *testing.T, p *Policy) { peer(p).PresharedKeyFile = "gw.psk" },
			`tunnels[0].peers[0].presharedKeyFile: "gw.psk" is not an absolute path; name the key file in full, like /etc/edgefw/keys/wg0.key`},
		{"shared listenPort", func(t *testing.T, p *Policy) { secondTunnel(t, p).ListenPort = 51820 },
			"tunnels[1].listenPort: listen port 51820 is already used by the tunnel at tunnels[0].listenPort; choose another port"},
		{"addresses empty", func(t *testing.T, p *Policy) { tunnel(p).Addresses = nil },
			"tunnels[0].addresses: a tunnel needs at least one address, like [10.0.0.2/24]"},
		{"address /0", func(t *testing.T, p *Policy) { tunnel(p).Addresses = prefixes(t, "10.0.0.2/0") },
			"tunnels[0].addresses[0]: 10.0.0.2/0 has prefix length 0, so the kernel would route every IPv4 address through the tunnel, taking over the host's default route; an interface address needs a prefix length of at least 1, usually the tunnel subnet's, like 10.0.0.2/24"},
		{"IPv6 address /0", func(t *testing.T, p *Policy) { tunnel(p).Addresses = prefixes(t, "10.0.0.2/24", "fd00::2/0") },
			"tunnels[0].addresses[1]: fd00::2/0 has prefix length 0, so the kernel would route every IPv6 address through the tunnel, taking over the host's default route; an interface address needs a prefix length of at least 1, usually the tunnel subnet's, like fd00::2/64"},
		{"address IPv4-mapped", func(t *testing.T, p *Policy) { tunnel(p).Addresses = prefixes(t, "::ffff:10.0.0.2/120") },
			"tunnels[0].addresses[0]: ::ffff:10.0.0.2/120 is an IPv4-mapped IPv6 address, which never matches; write it as IPv4, like 10.0.0.0/24"},
		{"mtu below IPv4 minimum", func(t *testing.T, p *Policy) { tunnel(p).MTU = 500 }, "tunnels[0].mtu: mtu 500 is out of range; valid values are 576 to 9000"},
		{"mtu below IPv6 minimum", func(t *testing.T, p *Policy) {
			tunnel(p).Addresses = prefixes(t, "10.0.0.1/24", "fd00::1/64")
			tunnel(p).MTU = 1000
		},
			"tunnels[0].mtu: mtu 1000 is out of range; valid values are 1280 to 9000; the tunnel has an IPv6 address, and IPv6 needs at least 1280"},
		{"mtu too large", func(t *testing.T, p *Policy) { tunnel(p).MTU = 9001 }, "tunnels[0].mtu: mtu 9001 is out of range; valid values are 576 to 9000"},

		// Tunnel peers.
		{"duplicate public key", func(t *testing.T, p *Policy) { secondPeer(t, p).PublicKey = mustKey(t, testKey) },
			"tunnels[0].peers[1].publicKey: the same public key is used by the peer at tunnels[0].peers[0].publicKey; each peer of a tunnel needs its own key"},
		{"duplicate peer name", func(t *testing.T, p *Policy) { secondPeer(t, p).Name = "gw" },
			`tunnels[0].peers[1].name: duplicate peer name "gw"; it is first defined at tunnels[0].peers[0].name, so choose another name`},
		{"allowed IP of two peers", func(t *testing.T, p *Policy) { secondPeer(t, p).AllowedIPs = prefixes(t, "10.0.0.0/24") },
			"tunnels[0].peers[1].allowedIPs[0]: 10.0.0.0/24 is already an allowed IP at tunnels[0].peers[0].allowedIPs[0]; WireGuard routes it to one peer only"},
		{"peer name invalid", func(t *testing.T, p *Policy) { peer(p).Name = "GW" }, `tunnels[0].peers[0].name: "GW" is not a valid name; ` + nameAlphabetText + ", like ssh-from-mgmt"},
		{"endpoint without port", func(t *testing.T, p *Policy) { peer(p).Endpoint = "gw.example.com" },
			`tunnels[0].peers[0].endpoint: "gw.example.com" is not a valid endpoint; ` + endpointValid},
		{"endpoint port zero", func(t *testing.T, p *Policy) { peer(p).Endpoint = "gw.example.com:0" },
			`tunnels[0].peers[0].endpoint: endpoint port "0" is not valid; it must be 1 to 65535`},
		{"endpoint port too large", func(t *testing.T, p *Policy) { peer(p).Endpoint = "192.0.2.1:65536" },
			`tunnels[0].peers[0].endpoint: endpoint port "65536" is not valid; it must be 1 to 65535`},
		{"endpoint bad host", func(t *testing.T, p *Policy) { peer(p).Endpoint = "gw_1.example:51820" },
			`tunnels[0].peers[0].endpoint: endpoint host "gw_1.example" is neither an IP address nor a DNS name; ` + endpointValid},
		{"endpoint bad IPv4", func(t *testing.T, p *Policy) { peer(p).Endpoint = "192.0.2.256:51820" },
			`tunnels[0].peers[0].endpoint: endpoint host "192.0.2.256" is neither an IP address nor a DNS name; ` + endpointValid},
		{"endpoint IPv6 without brackets", func(t *testing.T, p *Policy) { peer(p).Endpoint = "2001:db8::1:51820" },
			`tunnels[0].peers[0].endpoint: "2001:db8::1:51820" is not a valid endpoint; ` + endpointValid},
		{"allowedIPs host bits", func(t *testing.T, p *Policy) { peer(p).AllowedIPs = prefixes(t, "10.0.0.1/24") },
			"tunnels[0].peers[0].allowedIPs[0]: 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?"},
		{"allowedIPs empty", func(t *testing.T, p *Policy) { peer(p).AllowedIPs = nil },
			"tunnels[0].peers[0].allowedIPs: a peer needs at least one allowed IP, like [10.0.0.0/24]"},
		{"allowedIPs default route", func(t *testing.T, p *Policy) { peer(p).AllowedIPs = prefixes(t, "0.0.0.0/0") },
			"tunnels[0].peers[0].allowedIPs[0]: 0.0.0.0/0 would route all IPv4 traffic into the tunnel: its route would take over the host's default route, and with it the tunnel's own packets to the peer and remote management; full-tunnel routing (wg-quick's fwmark and policy routing) is not supported, so list the cluster's prefixes instead, like 10.0.0.0/8"},
		{"allowedIPs IPv6 default route", func(t *testing.T, p *Policy) { peer(p).AllowedIPs = prefixes(t, "10.0.0.0/24", "::/0") },
			"tunnels[0].peers[0].allowedIPs[1]: ::/0 would route all IPv6 traffic into the tunnel: its route would take over the host's default route, and with it the tunnel's own packets to the peer and remote management; full-tunnel routing (wg-quick's fwmark and policy routing) is not supported, so list the cluster's prefixes instead, like fd00::/8"},
		{"allowedIPs contain the endpoint", func(t *testing.T, p *Policy) { peer(p).Endpoint = "10.0.0.1:51820" },
			"tunnels[0].peers[0].allowedIPs[0]: allowedIPs 10.0.0.0/24 contains the endpoint 10.0.0.1; the tunnel's own UDP packets to the peer would be routed into the tunnel, so list prefixes that leave out the endpoint's address, or reach the peer at an address outside them"},
		{"allowedIPs contain the IPv6 endpoint", func(t *testing.T, p *Policy) {
			peer(p).Endpoint, peer(p).AllowedIPs = "[fd00::1]:51820", prefixes(t, "fd00::/64")
		}, "tunnels[0].peers[0].allowedIPs[0]: allowedIPs fd00::/64 contains the endpoint fd00::1; the tunnel's own UDP packets to the peer would be routed into the tunnel, so list prefixes that leave out the endpoint's address, or reach the peer at an address outside them"},
		{"allowedIPs contain the IPv4-mapped endpoint", func(t *testing.T, p *Policy) { peer(p).Endpoint = "[::ffff:10.0.0.1]:51820" },
			"tunnels[0].peers[0].allowedIPs[0]: allowedIPs 10.0.0.0/24 contains the endpoint 10.0.0.1; the tunnel's own UDP packets to the peer would be routed into the tunnel, so list prefixes that leave out the endpoint's address, or reach the peer at an address outside them"},
		{"keepalive too long", func(t *testing.T, p *Policy) { peer(p).PersistentKeepalive = 24 * time.Hour },
			"tunnels[0].peers[0].persistentKeepalive: 24h0m0s is out of range; write a duration of whole seconds from 0s to 65535s, like 25s, or a number of seconds"},
		{"keepalive fraction", func(t *testing.T, p *Policy) { peer(p).PersistentKeepalive = 1500 * time.Millisecond },
			"tunnels[0].peers[0].persistentKeepalive: 1.5s is not a whole number of seconds; write a duration of whole seconds from 0s to 65535s, like 25s, or a number of seconds"},
		{"keepalive negative", func(t *testing.T, p *Policy) { peer(p).PersistentKeepalive = -time.Second },
			"tunnels[0].peers[0].persistentKeepalive: -1s is out of range; write a duration of whole seconds from 0s to 65535s, like 25s, or a number of seconds"},
	}
}

// TestValidate checks that Validate refuses each mistake with exactly the
// error expected: the field's path and the message, without a position.
func TestValidate(t *testing.T) {
	if err := Validate(builtPolicy(t)); err != nil {
		t.Fatalf("Validate refused the valid policy: %v", err)
	}
	for _, tc := range validateCases() {
		t.Run(tc.name, func(t *testing.T) {
			p := builtPolicy(t)
			tc.mutate(t, p)
			err := Validate(p)
			if err == nil {
				t.Fatal("Validate accepted the policy")
			}
			errorList(t, err)
			if err.Error() != tc.want {
				t.Errorf("Validate error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

// TestValidateAgreesWithDecoder checks that where the decoder refuses the
// same mistake (a case of the same name), Validate names the same field
// path and says the same, but for how it points to another value (a line
// in the decoder, a path in Validate). The checks are shared; this keeps
// the two walks from naming fields differently.
func TestValidateAgreesWithDecoder(t *testing.T) {
	decoder := map[string]rejection{}
	for _, r := range rejectionCases() {
		decoder[r.name] = r
	}
	shared := 0
	for _, tc := range validateCases() {
		r, ok := decoder[tc.name]
		if !ok {
			continue
		}
		shared++
		p := builtPolicy(t)
		tc.mutate(t, p)
		var got *Error
		if list, ok := Validate(p).(ErrorList); ok && len(list) == 1 {
			got = list[0]
		}
		msg, _, _ := strings.Cut(r.msg, "policy.yaml:")
		msg, _, _ = strings.Cut(msg, " at line ")
		if got == nil || got.Path != r.path || !strings.Contains(got.Msg, msg) {
			t.Errorf("%s: Validate gives %v; the decoder gives %s: ...%s...", tc.name, got, r.path, msg)
		}
	}
	if shared < 80 {
		t.Errorf("only %d cases are shared with the decoder's", shared)
	}
}

func TestValidateNil(t *testing.T) {
	if err := Validate(nil); err == nil || err.Error() != "no policy" {
		t.Errorf("Validate(nil) = %v, want no policy", err)
	}
}

// TestValidateAllErrors checks that Validate reports every problem, in the
// order of the policy's fields, undefined sets last.
func TestValidateAllErrors(t *testing.T) {
	p := builtPolicy(t)
	p.Version = 3
	p.Rules = append(p.Rules, Rule{Name: "Bad", Direction: Input, Action: Accept, From: []Peer{{Set: "nope"}},
		Ports: []PortRange{{Protocol: TCP, Port: 9, EndPort: 1}}})
	p.Tunnels[0].MTU = 100
	want := lines(
		"version: version 3 is not supported; the only valid version is 1",
		`rules[1].name: "Bad" is not a valid name; use lowercase letters, digits and -, starting with a letter, like ssh-from-mgmt`,
		"rules[1].ports[0].endPort: endPort 1 is less than port 9; endPort must be at least port",
		"tunnels[0].mtu: mtu 100 is out of range; valid values are 576 to 9000",
		`rules[1].from[0].set: undefined set "nope"; defined sets are a`,
	)
	if err := Validate(p); err == nil || err.Error()+"\n" != want {
		t.Errorf("Validate error:\n%v\nwant:\n%s", err, want)
	}
}

// TestValidateLoadedPolicy checks Validate on a policy read from files: it
// accepts what Load returns, and its errors carry the position of the rule,
// tunnel or key file they concern, with paths indexed within each file.
func TestValidateLoadedPolicy(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"policy.yaml": lines(
			"version: 1",
			"rules:",
			"  - {name: ssh, direction: input, action: accept, ports: [{protocol: tcp, port: 22}]}",
			"tunnels:",
			"  - name: wg0",
			"    privateKeyFile: wg0.key",
			"    addresses: [10.0.0.2/24]",
		),
		"policy.d/10-web.yaml": lines(
			"rules:",
			"  - {name: web, direction: input, action: accept, ports: [{protocol: tcp, port: 443}]}",
			"  - {name: alt, direction: input, action: accept, ports: [{protocol: tcp, port: 8080}]}",
		),
	})
	main, dropIn := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "policy.d", "10-web.yaml")
	load := func(t *testing.T) *Policy {
		t.Helper()
		p, err := Load(main)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(p); err != nil {
			t.Fatalf("Validate refused what Load returned: %v", err)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		mutate func(p *Policy)
		want   string // MAIN and DROPIN stand for the files
	}{
		{"a drop-in's second rule", func(p *Policy) { p.Rules[2].Ports[0].EndPort = 80 },
			"DROPIN:3:5: rules[1].ports[0].endPort: endPort 80 is less than port 8080; endPort must be at least port"},
		{"a drop-in's rule named as the main file's", func(p *Policy) { p.Rules[1].Name = "ssh" },
			`DROPIN:2:5: rules[0].name: duplicate rule name "ssh"; it is first defined at MAIN:3, so choose another name`},
		{"a key file at its own position", func(p *Policy) { p.Tunnels[0].PrivateKeyFile = "wg0.key" },
			`MAIN:6:21: tunnels[0].privateKeyFile: "wg0.key" is not an absolute path; name the key file in full, like /etc/edgefw/keys/wg0.key`},
		{"defaults have no position", func(p *Policy) { p.Defaults.Output = "reject" },
			`defaults.output: "reject" is not a valid default verdict; valid values are accept, drop`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := load(t)
			tc.mutate(p)
			want := strings.NewReplacer("MAIN", main, "DROPIN", dropIn).Replace(tc.want)
			if err := Validate(p); err == nil || err.Error() != want {
				t.Errorf("Validate error:\n got %v\nwant %s", err, want)
			}
		})
	}
}

// TestValidateAcceptsWhatLoadReturns checks every example policy, as Load
// returns it and as it comes back from JSON (the daemon's saved state).
func TestValidateAcceptsWhatLoadReturns(t *testing.T) {
	var files []string
	for _, pattern := range []string{"testdata/spec-example.yaml", "../packaging/examples/*.yaml", "../nft/testdata/golden/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d policies", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := Validate(p); err != nil {
				t.Errorf("Validate(Load(%s)): %v", f, err)
			}
			data, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var q Policy
			if err := json.Unmarshal(data, &q); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(p, &q, cmpPrefix); diff != "" {
				t.Errorf("JSON changed the policy (-loaded +decoded):\n%s", diff)
			}
			if err := Validate(&q); err != nil {
				t.Errorf("Validate after JSON: %v", err)
			}
		})
	}
}
