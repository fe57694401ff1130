package policy

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cmpPrefix compares netip.Prefix values, whose fields are unexported.
var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func prefixes(t *testing.T, s ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

func abs(t *testing.T, path string) string {
	t.Helper()
	a, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writeFiles writes files (relative name to content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// errorList returns err as an ErrorList, failing the test if it is not one.
func errorList(t *testing.T, err error) ErrorList {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is a %T, not an ErrorList: %v", err, err)
	}
	return list
}

// TestSpecExample checks that the example of SPEC.md loads into exactly
// the policy it describes.
func TestSpecExample(t *testing.T) {
	const file = "testdata/spec-example.yaml"
	got, err := Load(file)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	key, err := base64.StdEncoding.DecodeString(testKey)
	if err != nil {
		t.Fatal(err)
	}
	at := func(line, col int) Pos { return Pos{File: file, Line: line, Col: col} }
	want := &Policy{
		Version:  1,
		Defaults: Defaults{Input: Drop, Forward: Accept, Output: Accept},
		Failsafe: []PortRange{{Protocol: TCP, Port: 22, EndPort: 22}},
		Sets: []Set{
			{Name: "mgmt-nets", Prefixes: prefixes(t, "10.10.0.0/16", "fd00:10::/48"), Pos: at(10, 3)},
			{
				Name:     "blocklist",
				File:     abs(t, "testdata/blocklist.txt"),
				Prefixes: prefixes(t, "198.51.100.0/24", "203.0.113.7/32", "2001:db8:bad::/48"),
				Pos:      at(11, 3),
			},
		},
		Rules: []Rule{
			{
				Name: "drop-blocklisted", Direction: Input, Action: Drop, Log: true, Mode: Enforce,
				From: []Peer{{Set: "blocklist"}},
				Pos:  at(13, 5),
			},
			{
				Name: "ssh-from-mgmt", Direction: Input, Action: Accept, Mode: Enforce,
				From:  []Peer{{Set: "mgmt-nets"}},
				Ports: []PortRange{{Protocol: TCP, Port: 22, EndPort: 22}},
				Pos:   at(18, 5),
			},
			{
				Name: "kube-api", Direction: Input, Action: Accept, Mode: Enforce,
				Ports:     []PortRange{{Protocol: TCP, Port: 6443, EndPort: 6443}},
				Limit:     &Limit{Rate: 100, Per: "minute", Burst: 20, PerSource: true},
				ConnLimit: &ConnLimit{Max: 10, PerSource: true},
				Pos:       at(23, 5),
			},
			{
				Name: "nodeports", Direction: Input, Action: Accept, Mode: Enforce,
				From: []Peer{
					{CIDR: netip.MustParsePrefix("0.0.0.0/0"), Except: prefixes(t, "192.0.2.0/24")},
					{Interface: "wg0"},
				},
				Ports: []PortRange{{Protocol: TCP, Port: 30000, EndPort: 32767}},
				// The wg0 entry matches IPv6 too, so the rule is not IPv4-only.
				Family: Any,
				Pos:    at(29, 5),
			},
			{
				Name: "backend-egress", Direction: Output, Action: Accept, Mode: Enforce,
				To:     []Peer{{CIDR: netip.MustParsePrefix("10.20.0.0/16")}},
				Ports:  []PortRange{{Protocol: TCP, Port: 3000, EndPort: 3000}},
				Family: IPv4,
				Pos:    at(34, 5),
			},
		},
		Tunnels: []Tunnel{{
			Name:           "wg0",
			Backend:        BackendAuto,
			PrivateKeyFile: "/etc/edgefw/keys/wg0.key",
			ListenPort:     51820,
			Addresses:      prefixes(t, "10.0.0.2/24"),
			MTU:            1420,
			Peers: []TunnelPeer{{
				Name:                "cluster-gw",
				PublicKey:           [32]byte(key),
				PresharedKeyFile:    "/etc/edgefw/keys/wg0-cluster.psk",
				Endpoint:            "gw.cluster.example:51820",
				AllowedIPs:          prefixes(t, "10.0.0.0/24", "10.96.0.0/12"),
				PersistentKeepalive: 25 * time.Second,
				Pos:                 at(46, 9),
				PresharedKeyFilePos: at(48, 27),
			}},
			Pos:               at(40, 5),
			PrivateKeyFilePos: at(41, 21),
		}},
		Files: []string{abs(t, file), abs(t, "testdata/blocklist.txt")},
	}
	if diff := cmp.Diff(want, got, cmpPrefix); diff != "" {
		t.Errorf("Load(%s) mismatch (-want +got):\n%s", file, diff)
	}
	if s := got.Set("blocklist"); s == nil || s.Name != "blocklist" {
		t.Errorf("Set(blocklist) = %v", s)
	}
	if s := got.Set("nope"); s != nil {
		t.Errorf("Set(nope) = %v, want nil", s)
	}
	if tun := got.Tunnel("wg0"); tun == nil || tun.ListenPort != 51820 {
		t.Errorf("Tunnel(wg0) = %v", tun)
	}
	if tun := got.Tunnel("wg1"); tun != nil {
		t.Errorf("Tunnel(wg1) = %v, want nil", tun)
	}
}

// TestAccepted checks how valid values are stored.
func TestAccepted(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, p *Policy)
	}{
		{
			name: "defaults and failsafe absent",
			yaml: "version: 1\n",
			check: func(t *testing.T, p *Policy) {
				want := Defaults{Input: Drop, Forward: Accept, Output: Accept}
				if p.Defaults != want {
					t.Errorf("Defaults = %+v, want %+v", p.Defaults, want)
				}
				if diff := cmp.Diff([]PortRange{{Protocol: TCP, Port: 22, EndPort: 22}}, p.Failsafe); diff != "" {
					t.Errorf("Failsafe (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "defaults in part, failsafe disabled",
			yaml: "version: 1\ndefaults: {forward: drop}\nfailsafe: []\n",
			check: func(t *testing.T, p *Policy) {
				want := Defaults{Input: Drop, Forward: Drop, Output: Accept}
				if p.Defaults != want {
					t.Errorf("Defaults = %+v, want %+v", p.Defaults, want)
				}
				if len(p.Failsafe) != 0 {
					t.Errorf("Failsafe = %v, want none", p.Failsafe)
				}
			},
		},
		{
			name: "failsafe ranges",
			yaml: "version: 1\nfailsafe: [{protocol: tcp, port: 2222}, {protocol: udp, port: 60000, endPort: 61000}]\n",
			check: func(t *testing.T, p *Policy) {
				want := []PortRange{{Protocol: TCP, Port: 2222, EndPort: 2222}, {Protocol: UDP, Port: 60000, EndPort: 61000}}
				if diff := cmp.Diff(want, p.Failsafe); diff != "" {
					t.Errorf("Failsafe (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "null values are absent",
			yaml: "version: 1\ndefaults:\nfailsafe:\nsets:\nrules:\ntunnels: ~\n",
			check: func(t *testing.T, p *Policy) {
				if len(p.Failsafe) != 1 || len(p.Sets)+len(p.Rules)+len(p.Tunnels) != 0 {
					t.Errorf("got %+v", p)
				}
			},
		},
		{
			name: "ports",
			yaml: withRule("ports: [{protocol: tcp}, {protocol: udp, port: 53}, {protocol: sctp, port: 1, endPort: 65535}, {protocol: icmp}, {protocol: icmpv6}, {protocol: tcp, port: 0x50}]"),
			check: func(t *testing.T, p *Policy) {
				want := []PortRange{
					{Protocol: TCP},
					{Protocol: UDP, Port: 53, EndPort: 53},
					{Protocol: SCTP, Port: 1, EndPort: 65535},
					{Protocol: ICMP},
					{Protocol: ICMPv6},
					{Protocol: TCP, Port: 80, EndPort: 80},
				}
				if diff := cmp.Diff(want, p.Rules[0].Ports); diff != "" {
					t.Errorf("Ports (-want +got):\n%s", diff)
				}
				if !p.Rules[0].Ports[0].AllPorts() || p.Rules[0].Ports[1].AllPorts() {
					t.Error("AllPorts is wrong")
				}
				if p.Rules[0].Family != Any {
					t.Errorf("Family = %q, want Any", p.Rules[0].Family)
				}
			},
		},
		{
			name: "bare addresses and duplicates in an inline set",
			yaml: "version: 1\nsets:\n  a: [192.0.2.1, \"2001:db8::1\", 10.0.0.0/8, 192.0.2.1/32]\n  b: []\n",
			check: func(t *testing.T, p *Policy) {
				if diff := cmp.Diff(prefixes(t, "192.0.2.1/32", "2001:db8::1/128", "10.0.0.0/8"), p.Sets[0].Prefixes, cmpPrefix); diff != "" {
					t.Errorf("Prefixes (-want +got):\n%s", diff)
				}
				if len(p.Sets[1].Prefixes) != 0 || p.Sets[1].Name != "b" {
					t.Errorf("set b = %+v", p.Sets[1])
				}
			},
		},
		{
			name: "sets keep definition order",
			yaml: "version: 1\nsets: {zeta: [], alpha: [], mid: []}\n",
			check: func(t *testing.T, p *Policy) {
				var names []string
				for _, s := range p.Sets {
					names = append(names, s.Name)
				}
				if diff := cmp.Diff([]string{"zeta", "alpha", "mid"}, names); diff != "" {
					t.Errorf("set order (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "family inferred from addresses",
			yaml: lines(
				"version: 1",
				"sets: {mixed: [10.0.0.0/8, \"fd00::/8\"]}",
				"rules:",
				"  - {name: v4, direction: input, action: accept, from: [{cidr: 10.0.0.0/8}, {cidr: 192.0.2.0/24}]}",
				"  - {name: v6, direction: output, action: accept, to: [{cidr: \"fd00::/8\"}]}",
				"  - {name: mixed-from, direction: input, action: accept, from: [{cidr: 10.0.0.0/8}, {cidr: \"fd00::/8\"}]}",
				"  - {name: set-and-cidr, direction: input, action: accept, from: [{cidr: 10.0.0.0/8}, {set: mixed}]}",
				"  - {name: ping, direction: input, action: accept, ports: [{protocol: icmp}]}",
				"  - {name: ping6, direction: input, action: accept, ports: [{protocol: icmpv6}]}",
				"  - {name: explicit, direction: input, action: accept, family: ipv6, ports: [{protocol: tcp, port: 22}]}",
				"  - {name: narrowed, direction: forward, action: accept, from: [{cidr: 10.0.0.0/8}, {interface: eth0}], to: [{cidr: 192.0.2.0/24}]}",
				"  - {name: fwd-if, direction: forward, action: accept, from: [{interface: eth0}], to: [{interface: \"veth*\"}]}",
			),
			check: func(t *testing.T, p *Policy) {
				want := map[string]Family{
					"v4": IPv4, "v6": IPv6, "mixed-from": Any, "set-and-cidr": Any,
					"ping": IPv4, "ping6": IPv6, "explicit": IPv6, "narrowed": IPv4, "fwd-if": Any,
				}
				for _, r := range p.Rules {
					if r.Family != want[r.Name] {
						t.Errorf("rule %s: Family = %q, want %q", r.Name, r.Family, want[r.Name])
					}
				}
			},
		},
		{
			name: "tunnel defaults and paths",
			yaml: lines(
				"version: 1",
				"tunnels:",
				"  - name: wg1",
				"    backend: userspace",
				"    privateKeyFile: keys/wg1.key",
				"    addresses: [10.1.0.1/24, \"fd01::1/64\"]",
				"    mtu: 1280",
				"    peers:",
				"      - name: a",
				"        publicKey: "+testKey,
				"        presharedKeyFile: a.psk",
				"        endpoint: \"[2001:db8::1]:51820\"",
				"        allowedIPs: [10.1.0.0/24, \"fd01::/64\"]",
				"        persistentKeepalive: 30",
				"      - name: b",
				"        publicKey: "+otherKey,
				"        endpoint: 192.0.2.1:51820",
				"        allowedIPs: [10.2.0.0/16]",
				"        persistentKeepalive: 0s",
			),
			check: func(t *testing.T, p *Policy) {
				tun := p.Tunnels[0]
				if tun.Backend != BackendUserspace || tun.ListenPort != 0 || tun.MTU != 1280 {
					t.Errorf("tunnel = %+v", tun)
				}
				if want := abs(t, "/policies/keys/wg1.key"); tun.PrivateKeyFile != want {
					t.Errorf("PrivateKeyFile = %q, want %q", tun.PrivateKeyFile, want)
				}
				if want := abs(t, "/policies/a.psk"); tun.Peers[0].PresharedKeyFile != want {
					t.Errorf("PresharedKeyFile = %q, want %q", tun.Peers[0].PresharedKeyFile, want)
				}
				if tun.Peers[0].PersistentKeepalive != 30*time.Second || tun.Peers[1].PersistentKeepalive != 0 {
					t.Errorf("keepalives = %v, %v", tun.Peers[0].PersistentKeepalive, tun.Peers[1].PersistentKeepalive)
				}
				if tun.Peers[1].PresharedKeyFile != "" || tun.Peers[0].Endpoint != "[2001:db8::1]:51820" {
					t.Errorf("peers = %+v", tun.Peers)
				}
			},
		},
		{
			name: "tunnel without backend",
			yaml: withTunnel("listenPort: 51820"),
			check: func(t *testing.T, p *Policy) {
				if p.Tunnels[0].Backend != BackendAuto || p.Tunnels[0].ListenPort != 51820 || p.Tunnels[0].MTU != 0 {
					t.Errorf("tunnel = %+v", p.Tunnels[0])
				}
			},
		},
		{
			name: "limit without burst",
			yaml: withRule("limit: {rate: 5/second}", "connLimit: {max: 4294967295}"),
			check: func(t *testing.T, p *Policy) {
				if diff := cmp.Diff(&Limit{Rate: 5, Per: "second"}, p.Rules[0].Limit); diff != "" {
					t.Errorf("Limit (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(&ConnLimit{Max: 4294967295}, p.Rules[0].ConnLimit); diff != "" {
					t.Errorf("ConnLimit (-want +got):\n%s", diff)
				}
			},
		},
		{
			// An empty except is harmless: the peer matches its whole cidr.
			// An endpoint outside the allowed IPs, or a name, is fine.
			name: "empty except, endpoint outside the allowed IPs",
			yaml: lines(
				"version: 1",
				"rules:",
				"  - {name: r, direction: input, action: accept, from: [{cidr: 10.0.0.0/8, except: []}]}",
				"tunnels:",
				"  - name: wg0",
				"    privateKeyFile: k",
				"    addresses: [10.0.0.2/1]",
				"    peers:",
				"      - {name: a, publicKey: "+testKey+", endpoint: 10.1.0.1:51820, allowedIPs: [10.0.0.0/24, 128.0.0.0/1]}",
				"      - {name: b, publicKey: "+otherKey+", endpoint: 10.0.0.9:51820, allowedIPs: [10.2.0.0/16]}",
			),
			check: func(t *testing.T, p *Policy) {
				if from := p.Rules[0].From; len(from) != 1 || len(from[0].Except) != 0 {
					t.Errorf("From = %+v", from)
				}
				if n := len(p.Tunnels[0].Peers); n != 2 {
					t.Errorf("got %d peers, want 2", n)
				}
			},
		},
		{
			name: "modes",
			yaml: lines(
				"version: 1",
				"rules:",
				"  - {name: watched-drop, direction: input, action: drop, mode: audit}",
				"  - {name: watched-reject, direction: output, action: reject, mode: audit, limit: {rate: 1/second}}",
				"  - {name: enforced-accept, direction: input, action: accept, mode: enforce}",
				"  - {name: enforced-drop, direction: input, action: drop, mode: enforce}",
				"  - {name: unmarked, direction: input, action: drop}",
			),
			check: func(t *testing.T, p *Policy) {
				want := map[string]Mode{
					"watched-drop": Audit, "watched-reject": Audit,
					"enforced-accept": Enforce, "enforced-drop": Enforce, "unmarked": Enforce,
				}
				for _, r := range p.Rules {
					if r.Mode != want[r.Name] {
						t.Errorf("rule %s: Mode = %q, want %q", r.Name, r.Mode, want[r.Name])
					}
				}
				if err := Validate(p); err != nil {
					t.Errorf("Validate: %v", err)
				}
				// A Policy built in code, or saved before modes existed,
				// leaves Mode empty: enforce.
				p.Rules[3].Mode = ""
				if err := Validate(p); err != nil {
					t.Errorf("Validate with an empty mode: %v", err)
				}
			},
		},
		{
			name: "interface names",
			yaml: withRule("from: [{interface: eth0}, {interface: \"veth*\"}, {interface: eth0.100}, {interface: abcdefghijklmno}]"),
			check: func(t *testing.T, p *Policy) {
				if n := len(p.Rules[0].From); n != 4 {
					t.Errorf("got %d peers, want 4", n)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("/policies/policy.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tc.check(t, p)
		})
	}
}

// TestAggregation checks that one run reports every error of a file, in
// order, not just the first.
func TestAggregation(t *testing.T) {
	doc := lines(
		"version: 2",                // 1
		"defaults: {input: reject}", // 2
		"sets:",                     // 3
		"  a: [10.0.0.1/8]",         // 4
		"rules:",                    // 5
		"  - name: Bad",             // 6
		"    direction: sideways",   // 7
		"    action: accept",        // 8
		"    ports: [{port: 22}, {protocol: tcp, port: 70000}]",        // 9
		"    from: [{set: nope}]",                                      // 10
		"  - {name: ok, direction: input, action: accept, unknown: 1}", // 11
		"tunnels:", // 12
		"  - {name: wg0, privateKeyFile: k, addresses: [10.0.0.1/24], peers: [{name: p, publicKey: nope, allowedIPs: [10.0.0.0/24]}]}", // 13
	)
	_, err := Parse("p.yaml", []byte(doc))
	list := errorList(t, err)
	type where struct {
		Line, Col int
		Path      string
	}
	var got []where
	for _, e := range list {
		got = append(got, where{e.Pos.Line, e.Pos.Col, e.Path})
	}
	want := []where{
		{1, 10, "version"},
		{2, 19, "defaults.input"},
		{4, 7, "sets.a[0]"},
		{6, 11, "rules[0].name"},
		{7, 16, "rules[0].direction"},
		{9, 13, "rules[0].ports[0].protocol"},
		{9, 47, "rules[0].ports[1].port"},
		{10, 18, "rules[0].from[0].set"},
		{11, 50, "rules[1].unknown"},
		{13, 91, "tunnels[0].peers[0].publicKey"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s\nall:\n%v", diff, err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("Error() has %d lines, want %d", n, len(want))
	}
}

func TestDropIns(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"policy.yaml": lines(
			"version: 1",
			"sets: {mgmt: [10.10.0.0/16]}",
			"rules:",
			"  - {name: main-1, direction: input, action: accept, from: [{set: extra}]}",
			"  - {name: main-2, direction: input, action: drop}",
		),
		// Sorted by name: 10-web before 20-wg, whatever order they are written in.
		"policy.d/20-wg.yaml": lines(
			"tunnels:",
			"  - {name: wg0, privateKeyFile: wg0.key, addresses: [10.0.0.1/24]}",
			"rules:",
			"  - {name: wg-in, direction: input, action: accept, from: [{interface: wg0}, {set: mgmt}]}",
		),
		"policy.d/10-web.yaml": lines(
			"version: 1",
			"sets: {extra: {file: extra.txt}}",
			"rules:",
			"  - {name: web, direction: input, action: accept, ports: [{protocol: tcp, port: 443}]}",
		),
		"policy.d/extra.txt":       "192.0.2.0/24\n",
		"policy.d/30-empty.yaml":   "# nothing here yet\n",
		"policy.d/.tmp-x.yaml":     "garbage: [",
		"policy.d/README.md":       "not yaml",
		"policy.d/40-old.yaml.bak": "garbage: [",
	})
	p, err := Load(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var rules []string
	for _, r := range p.Rules {
		rules = append(rules, r.Name)
	}
	if diff := cmp.Diff([]string{"main-1", "main-2", "web", "wg-in"}, rules); diff != "" {
		t.Errorf("rule order (-want +got):\n%s", diff)
	}
	var sets []string
	for _, s := range p.Sets {
		sets = append(sets, s.Name)
	}
	if diff := cmp.Diff([]string{"mgmt", "extra"}, sets); diff != "" {
		t.Errorf("set order (-want +got):\n%s", diff)
	}
	wantFiles := []string{
		filepath.Join(dir, "policy.yaml"),
		filepath.Join(dir, "policy.d/10-web.yaml"),
		filepath.Join(dir, "policy.d/20-wg.yaml"),
		filepath.Join(dir, "policy.d/30-empty.yaml"),
		filepath.Join(dir, "policy.d/extra.txt"),
	}
	if diff := cmp.Diff(wantFiles, p.Files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	// Paths in a drop-in are relative to the drop-in.
	if want := filepath.Join(dir, "policy.d/wg0.key"); p.Tunnels[0].PrivateKeyFile != want {
		t.Errorf("PrivateKeyFile = %q, want %q", p.Tunnels[0].PrivateKeyFile, want)
	}
	if p.Set("extra").File != filepath.Join(dir, "policy.d/extra.txt") {
		t.Errorf("extra set file = %q", p.Set("extra").File)
	}
}

func TestDropInsMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"policy.yaml": "version: 1\n"})
	if _, err := Load(filepath.Join(dir, "policy.yaml")); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func TestDropInRejections(t *testing.T) {
	main := lines(
		"version: 1",
		"sets: {mgmt: []}",
		"rules:",
		"  - {name: ssh, direction: input, action: accept}",
		"tunnels:",
		"  - {name: wg0, privateKeyFile: k, addresses: [10.0.0.1/24], listenPort: 51820}",
	)
	tests := []struct {
		name   string
		dropIn string
		line   int
		col    int
		path   string
		msg    string // "MAIN" stands for the main file's path
	}{
		{"defaults", "defaults: {input: accept}\n", 1, 1, "defaults", "only the main policy file may set defaults"},
		{"failsafe", "failsafe: []\n", 1, 1, "failsafe", "only the main policy file may set failsafe"},
		{"version 2", "version: 2\n", 1, 10, "version", "the only valid version is 1"},
		{"unknown field", "rulez: []\n", 1, 1, "rulez", `unknown field "rulez"; valid fields are version, sets, rules, tunnels`},
		{"rule name of main", "rules: [{name: ssh, direction: input, action: drop}]\n", 1, 16, "rules[0].name", `duplicate rule name "ssh"; it is first defined at MAIN:4`},
		{"set name of main", "sets: {mgmt: [10.0.0.0/8]}\n", 1, 8, "sets.mgmt", `duplicate set name "mgmt"; it is first defined at MAIN:2`},
		{"tunnel name of main", "tunnels: [{name: wg0, privateKeyFile: k, addresses: [10.1.0.1/24]}]\n", 1, 18, "tunnels[0].name", `duplicate tunnel name "wg0"; it is first defined at MAIN:6`},
		{"listen port of main", "tunnels: [{name: wg1, privateKeyFile: k, addresses: [10.1.0.1/24], listenPort: 51820}]\n", 1, 80, "tunnels[0].listenPort", "listen port 51820 is already used by the tunnel at MAIN:6"},
		{"undefined set", "rules: [{name: x, direction: input, action: drop, from: [{set: other}]}]\n", 1, 64, "rules[0].from[0].set", `undefined set "other"; defined sets are mgmt`},
		{"two documents", "rules: []\n---\nrules: []\n", 2, 1, "", "a second YAML document"},
		{"empty from", "rules:\n  - name: x\n    direction: input\n    action: accept\n    from: []\n", 5, 11, "rules[0].from", "empty list; remove the field to match any source"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"policy.yaml": main, "policy.d/50-x.yaml": tc.dropIn})
			mainFile := filepath.Join(dir, "policy.yaml")
			_, err := Load(mainFile)
			if err == nil {
				t.Fatal("Load accepted the policy")
			}
			checkHasError(t, err, filepath.Join(dir, "policy.d/50-x.yaml"), rejection{
				line: tc.line, col: tc.col, path: tc.path, msg: strings.ReplaceAll(tc.msg, "MAIN", mainFile),
			})
		})
	}
}

// TestDropInErrorOrder checks that errors of several files come in merge
// order: main file, drop-ins by name, set files.
func TestDropInErrorOrder(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"policy.yaml":        "version: 1\nsets: {a: {file: a.txt}}\nrules: [{name: r, direction: input, action: accept}]\nbogus: 1\n",
		"a.txt":              "bad\n",
		"policy.d/10-a.yaml": "rules: [{name: r, direction: input, action: accept}]\n",
		"policy.d/20-b.yaml": "version: 3\n",
	})
	_, err := Load(filepath.Join(dir, "policy.yaml"))
	list := errorList(t, err)
	var got []string
	for _, e := range list {
		rel, _ := filepath.Rel(dir, e.Pos.File)
		got = append(got, rel+":"+e.Path)
	}
	want := []string{"policy.yaml:bogus", "policy.d/10-a.yaml:rules[0].name", "policy.d/20-b.yaml:version", "a.txt:sets.a"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error order (-want +got):\n%s\n%v", diff, err)
	}
}

func TestSetFiles(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "lists", "abs.txt")
	writeFiles(t, dir, map[string]string{
		"rel.txt":       "# comment line\r\n\r\n10.0.0.0/8\r\n  192.0.2.1   # trailing comment\r\n2001:db8::/32\n10.0.0.0/8\n192.0.2.1/32\n  \t  \n#",
		"lists/abs.txt": "198.51.100.0/24",
		"empty.txt":     "",
	})
	doc := lines(
		"version: 1",
		"sets:",
		"  rel: {file: rel.txt}",
		"  abs: {file: "+abs+"}",
		"  again: {file: ./rel.txt}",
		"  empty: {file: empty.txt}",
	)
	p, err := Parse(filepath.Join(dir, "policy.yaml"), []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(prefixes(t, "10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"), p.Set("rel").Prefixes, cmpPrefix); diff != "" {
		t.Errorf("rel (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(prefixes(t, "198.51.100.0/24"), p.Set("abs").Prefixes, cmpPrefix); diff != "" {
		t.Errorf("abs (-want +got):\n%s", diff)
	}
	if p.Set("abs").File != abs || p.Set("again").File != filepath.Join(dir, "rel.txt") {
		t.Errorf("files = %q, %q", p.Set("abs").File, p.Set("again").File)
	}
	if len(p.Set("empty").Prefixes) != 0 {
		t.Errorf("empty = %v", p.Set("empty").Prefixes)
	}
	want := []string{filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "rel.txt"), abs, filepath.Join(dir, "empty.txt")}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
}

// TestSetFileErrors checks that every bad line of a set file is reported at
// its own line and column, in the set file.
func TestSetFileErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"bad.txt": "10.0.0.0/8\n10.0.0.1/8 # host bits\n\n\tnot-an-ip\n::ffff:192.0.2.1\n",
	})
	_, err := Parse(filepath.Join(dir, "policy.yaml"), []byte("version: 1\nsets: {bad: {file: bad.txt}}\n"))
	list := errorList(t, err)
	type where struct {
		File      string
		Line, Col int
		Path      string
	}
	var got []where
	for _, e := range list {
		got = append(got, where{filepath.Base(e.Pos.File), e.Pos.Line, e.Pos.Col, e.Path})
	}
	want := []where{{"bad.txt", 2, 1, "sets.bad"}, {"bad.txt", 4, 2, "sets.bad"}, {"bad.txt", 5, 1, "sets.bad"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s\n%v", diff, err)
	}
	for _, sub := range []string{"did you mean 10.0.0.0/8?", `"not-an-ip" is not a valid CIDR or address`, "IPv4-mapped"} {
		if !strings.Contains(err.Error(), sub) {
			t.Errorf("errors lack %q:\n%v", sub, err)
		}
	}
}

// sparseFile creates a file of size bytes that takes no disk space.
func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSizeLimits checks that oversized files are refused before they are
// read: each would take far longer than the deadline to parse.
func TestSizeLimits(t *testing.T) {
	const deadline = 2 * time.Second
	dir := t.TempDir()
	main := filepath.Join(dir, "policy.yaml")
	sparseFile(t, main, maxPolicyFileSize+1)
	start := time.Now()
	_, err := Load(main)
	if took := time.Since(start); took > deadline {
		t.Errorf("refusing a large policy took %v", took)
	}
	checkHasError(t, err, main, rejection{msg: "larger than the limit of 16 MiB"})

	dropIn := filepath.Join(dir, "policy.d", "big.yaml")
	writeFiles(t, dir, map[string]string{"policy.yaml": "version: 1\n", "policy.d/big.yaml": ""})
	sparseFile(t, dropIn, maxPolicyFileSize+1)
	_, err = Load(main)
	checkHasError(t, err, dropIn, rejection{msg: "cannot read drop-in: the file is larger than the limit of 16 MiB"})

	sparseFile(t, filepath.Join(dir, "big.txt"), maxSetFileSize+1)
	start = time.Now()
	_, err = Parse(main, []byte("version: 1\nsets: {big: {file: big.txt}}\n"))
	if took := time.Since(start); took > deadline {
		t.Errorf("refusing a large set file took %v", took)
	}
	checkHasError(t, err, main, rejection{line: 2, col: 20, path: "sets.big.file", msg: "cannot read set file " + filepath.Join(dir, "big.txt") + ": the file is larger than the limit of 64 MiB"})

	_, err = Parse(main, make([]byte, maxPolicyFileSize+1))
	checkHasError(t, err, main, rejection{line: 1, col: 1, msg: "larger than the limit of 16 MiB"})
}

// TestBillionLaughs checks that an alias bomb is refused at once, not
// expanded.
func TestBillionLaughs(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\n")
	b.WriteString("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	prev := "a"
	for _, name := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		b.WriteString(name + ": &" + name + " [")
		for i := range 9 {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("*" + prev)
		}
		b.WriteString("]\n")
		prev = name
	}
	b.WriteString("rules: *i\n")
	start := time.Now()
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if took := time.Since(start); took > time.Second {
		t.Errorf("refusing an alias bomb took %v", took)
	}
	checkHasError(t, err, "bomb.yaml", rejection{line: 2, col: 4, path: "a", msg: "anchors and aliases are not supported"})
}

func TestMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = false for %v", err)
	}
	list := errorList(t, err)
	if want := path + ": cannot read policy: no such file or directory"; len(list) != 1 || list.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestErrorText(t *testing.T) {
	list := ErrorList{
		{Pos: Pos{File: "p.yaml", Line: 3, Col: 7}, Path: "rules[0].name", Msg: "bad; good"},
		{Pos: Pos{File: "p.yaml", Line: 1, Col: 1}, Msg: "invalid YAML: x"},
		{Pos: Pos{File: "p.yaml"}, Msg: "cannot read policy: gone"},
		{Path: "rules[2].ports[0].endPort", Msg: "endPort 21 is less than port 22; endPort must be at least port"},
		{Msg: "no policy"},
	}
	want := "p.yaml:3:7: rules[0].name: bad; good\np.yaml:1:1: invalid YAML: x\np.yaml: cannot read policy: gone\n" +
		"rules[2].ports[0].endPort: endPort 21 is less than port 22; endPort must be at least port\nno policy"
	if got := list.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if n := len(list.Unwrap()); n != 5 {
		t.Errorf("Unwrap returned %d errors", n)
	}
}

// TestKeysNeverEchoed checks that a rejected key does not appear in the error.
func TestKeysNeverEchoed(t *testing.T) {
	for _, key := range []string{
		"c2VjcmV0LWtleS1tYXRlcmlhbA==",
		testKey[:43] + "A",
		testKey + "AAAA",
		"not base64 at all but rather long and secret",
	} {
		_, err := Parse("p.yaml", []byte(withTunnel("peers: [{name: gw, publicKey: \""+key+"\", allowedIPs: [10.0.0.0/24]}]")))
		if err == nil {
			t.Fatalf("key %q accepted", key)
		}
		if strings.Contains(err.Error(), key) {
			t.Errorf("error echoes the key: %v", err)
		}
		if !strings.Contains(err.Error(), "not a valid base64 WireGuard key of 32 bytes") {
			t.Errorf("error = %v", err)
		}
	}
}

// TestTooManyErrors checks that a file of countless errors costs memory for
// maxErrors of them only, and says that more were left out.
func TestTooManyErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"bad.txt": strings.Repeat("x\n", 3*maxErrors)})
	for name, doc := range map[string]string{
		"policy":   "version: 1\nrules: [" + strings.Repeat("1, ", 3*maxErrors) + "1]\n",
		"set file": "version: 1\nsets: {bad: {file: bad.txt}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "policy.yaml"), []byte(doc))
			list := errorList(t, err)
			if len(list) != maxErrors+1 {
				t.Fatalf("got %d errors, want %d", len(list), maxErrors+1)
			}
			last := list[len(list)-1]
			if want := "too many errors; only the first 1000 are shown"; last.Msg != want || last.Pos.Line < 1 {
				t.Errorf("last error = %v, want %q at a position", last, want)
			}
		})
	}
}
