package kube

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/edgefw/edgefw/policy"
)

// verdict is what the API server and the policy package make of a
// HostFirewallPolicy's spec.policy.
type verdict int

const (
	// valid: both accept it.
	valid verdict = iota
	// invalid: both refuse it, naming the same field.
	invalid
	// agentOnly: the API server accepts it and the policy package refuses
	// it, because the check needs the host's context (its sets, the names
	// and ports its files use) or is beyond what the schema and CEL say;
	// the node's edgefwd rejects the object alone and reports it.
	agentOnly
	// clusterOnly: the API server refuses what a policy file may say,
	// because a cluster object must not say it (name a host's file).
	clusterOnly
)

func (v verdict) String() string {
	return [...]string{"valid", "invalid", "agentOnly", "clusterOnly"}[v]
}

// wgKey is a valid WireGuard public key, and wgKey2 another.
const (
	wgKey  = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
	wgKey2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
)

// schemaCases are spec.policy documents (a policy v1 drop-in) and what
// both sides must make of them. field is the path, within spec.policy and
// within the drop-in, of the field an API server error names; the policy
// package's error names it or a field inside it.
var schemaCases = []struct {
	name  string
	doc   string
	want  verdict
	field string
	// apiField is the path the API server names, where it writes it
	// differently (a map key as sets[NAME] rather than sets.NAME).
	apiField string
}{
	{name: "spec example", want: valid, doc: `
sets:
  mgmt-nets: [10.10.0.0/16, "fd00:10::/48"]
rules:
  - name: ssh-from-mgmt
    direction: input
    from: [{set: mgmt-nets}]
    ports: [{protocol: tcp, port: 22}]
    action: accept
  - name: kube-api
    direction: input
    ports: [{protocol: tcp, port: 6443}]
    limit: {rate: 100/minute, burst: 20, perSource: true}
    connLimit: {max: 10, perSource: true}
    action: accept
  - name: nodeports
    direction: input
    from: [{cidr: 0.0.0.0/0, except: [192.0.2.0/24]}, {interface: wg0}]
    ports: [{protocol: tcp, port: 30000, endPort: 32767}]
    action: accept
  - name: backend-egress
    direction: output
    to: [{cidr: 10.20.0.0/16}]
    ports: [{protocol: tcp, port: 3000}]
    action: accept
  - name: audit-telnet
    direction: input
    ports: [{protocol: tcp, port: 23}, {protocol: icmp}]
    action: drop
    mode: audit
    log: true
tunnels:
  - name: wg0
    privateKeyFile: /etc/edgefw/keys/wg0.key
    listenPort: 51820
    addresses: [10.0.0.2/24]
    mtu: 1420
    peers:
      - name: cluster-gw
        publicKey: ` + wgKey + `
        presharedKeyFile: /etc/edgefw/keys/wg0-cluster.psk
        endpoint: gw.cluster.example:51820
        allowedIPs: [10.0.0.0/24, 10.96.0.0/12]
        persistentKeepalive: 25s
`},
	{name: "version 1, bare address, ipv6 except, icmpv6, family", want: valid, doc: `
version: 1
rules:
  - {name: one-host, direction: input, from: [{cidr: 192.0.2.1}], action: drop}
  - name: v6
    direction: forward
    family: ipv6
    from: [{cidr: "2001:db8::/32", except: ["2001:db8:1::/48", "2001:db8::1"]}]
    ports: [{protocol: icmpv6}]
    action: reject
  - {name: veths, direction: forward, from: [{interface: "veth*"}], to: [{interface: eth0}], action: accept}
`},
	{name: "every value of every enumeration", want: valid, doc: `
rules:
  - name: protocols
    direction: input
    ports: [{protocol: tcp}, {protocol: udp, port: 53}, {protocol: sctp, port: 9, endPort: 10}, {protocol: icmp}]
    action: accept
  - {name: v6, direction: output, family: ipv6, ports: [{protocol: icmpv6}], action: reject, mode: enforce}
  - {name: v4, direction: forward, family: ipv4, action: drop, mode: audit, log: false}
tunnels:
  - {name: wg-a, backend: auto, privateKeyFile: /k/a, addresses: [10.0.0.1/24]}
  - {name: wg-k, backend: kernel, privateKeyFile: /k/k, addresses: [10.0.1.1/24]}
  - {name: wg-u, backend: userspace, privateKeyFile: /k/u, addresses: [10.0.2.1/24]}
`},
	{name: "keepalive as a number and as seconds", want: valid, doc: `
tunnels:
  - name: wg1
    privateKeyFile: /k/wg1.key
    addresses: ["fd00::2/64"]
    mtu: 1280
    peers:
      - {name: a, publicKey: ` + wgKey + `, allowedIPs: ["fd00:1::/64"], persistentKeepalive: 25}
      - {name: b, publicKey: "` + wgKey2 + `", allowedIPs: ["fd00:2::/64"], persistentKeepalive: 65535s}
`},

	// Ports.
	{name: "endPort below port", want: invalid, field: "rules[0].ports[0].endPort",
		doc: `rules: [{name: r, direction: input, action: accept, ports: [{protocol: tcp, port: 100, endPort: 99}]}]`},
	{name: "endPort without port", want: invalid, field: "rules[0].ports[0].endPort",
		doc: `rules: [{name: r, direction: input, action: accept, ports: [{protocol: tcp, endPort: 99}]}]`},
	{name: "port 0", want: invalid, field: "rules[0].ports[0].port",
		doc: `rules: [{name: r, direction: input, action: accept, ports: [{protocol: tcp, port: 0}]}]`},
	{name: "port above 65535", want: invalid, field: "rules[0].ports[0].port",
		doc: `rules: [{name: r, direction: input, action: accept, ports: [{protocol: udp, port: 65536}]}]`},
	{name: "port without protocol", want: invalid, field: "rules[0].ports[0].protocol",
		doc: `rules: [{name: r, direction: input, action: accept, ports: [{port: 22}]}]`},
	{name: "unknown protocol", want: invalid, field: "rules[0].ports[0].protocol",
		doc: `rules: [{name: r, direction: input, action: accept, ports: [{protocol: http, port: 80}]}]`},
	{name: "icmp with a port", want: invalid, field: "rules[0].ports[0]",
		doc: `rules: [{name: r, direction: input, action: accept, ports: [{protocol: icmp, port: 8}]}]`},
	{name: "port as a string", want: invalid, field: "rules[0].ports[0].port",
		doc: `rules: [{name: r, direction: input, action: accept, ports: [{protocol: tcp, port: "22"}]}]`},
	{name: "empty ports", want: invalid, field: "rules[0].ports",
		doc: `rules: [{name: r, direction: input, action: accept, ports: []}]`},

	// Names, enums, modes.
	{name: "uppercase name", want: invalid, field: "rules[0].name",
		doc: `rules: [{name: SSH, direction: input, action: accept}]`},
	{name: "name of 49 characters", want: invalid, field: "rules[0].name",
		doc: `rules: [{name: a123456789012345678901234567890123456789012345678, direction: input, action: accept}]`},
	{name: "reserved name", want: invalid, field: "rules[0].name",
		doc: `rules: [{name: edgefw-mine, direction: input, action: accept}]`},
	{name: "duplicate rule names", want: invalid, field: "rules",
		doc: `rules: [{name: r, direction: input, action: accept}, {name: r, direction: output, action: drop}]`},
	{name: "missing name", want: invalid, field: "rules[0].name",
		doc: `rules: [{direction: input, action: accept}]`},
	{name: "unknown direction", want: invalid, field: "rules[0].direction",
		doc: `rules: [{name: r, direction: inbound, action: accept}]`},
	{name: "missing action", want: invalid, field: "rules[0].action",
		doc: `rules: [{name: r, direction: input}]`},
	{name: "unknown action", want: invalid, field: "rules[0].action",
		doc: `rules: [{name: r, direction: input, action: allow}]`},
	{name: "audit an accept rule", want: invalid, field: "rules[0].mode",
		doc: `rules: [{name: r, direction: input, action: accept, mode: audit}]`},
	{name: "unknown mode", want: invalid, field: "rules[0].mode",
		doc: `rules: [{name: r, direction: input, action: drop, mode: warn}]`},
	{name: "unknown family", want: invalid, field: "rules[0].family",
		doc: `rules: [{name: r, direction: input, action: drop, family: inet}]`},
	{name: "unknown field", want: invalid, field: "rules[0].prots",
		doc: `rules: [{name: r, direction: input, action: accept, prots: [{protocol: tcp, port: 22}]}]`},
	{name: "version 2", want: invalid, field: "version",
		doc: `{version: 2, rules: [{name: r, direction: input, action: accept}]}`},

	// Peers.
	{name: "prefix length 33", want: invalid, field: "rules[0].from[0].cidr",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{cidr: 10.0.0.0/33}]}]`},
	{name: "host bits set", want: invalid, field: "rules[0].from[0].cidr",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{cidr: 10.0.0.1/8}]}]`},
	{name: "not an address", want: invalid, field: "rules[0].to[0].cidr",
		doc: `rules: [{name: r, direction: output, action: accept, to: [{cidr: example.com}]}]`},
	{name: "IPv4-mapped IPv6", want: invalid, field: "rules[0].from[0].cidr",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{cidr: "::ffff:10.0.0.0/104"}]}]`},
	{name: "peer of two kinds", want: invalid, field: "rules[0].from[0]",
		doc: `{sets: {s: [10.0.0.0/8]}, rules: [{name: r, direction: input, action: accept, from: [{cidr: 10.0.0.0/8, set: s}]}]}`},
	{name: "peer of no kind", want: invalid, field: "rules[0].from[0]",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{}]}]`},
	{name: "except without cidr", want: invalid, field: "rules[0].from[0].except",
		doc: `{sets: {s: [10.0.0.0/8]}, rules: [{name: r, direction: input, action: accept, from: [{set: s, except: [10.1.0.0/16]}]}]}`},
	{name: "except outside the cidr", want: invalid, field: "rules[0].from[0].except",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{cidr: 10.0.0.0/8, except: [192.168.0.0/16]}]}]`},
	{name: "except is the cidr", want: invalid, field: "rules[0].from[0].except",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{cidr: 10.0.0.0/8, except: [10.0.0.0/8]}]}]`},
	{name: "except of the other family", want: invalid, field: "rules[0].from[0].except",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{cidr: 10.0.0.0/8, except: ["fd00::/8"]}]}]`},
	{name: "empty from", want: invalid, field: "rules[0].from",
		doc: `rules: [{name: r, direction: input, action: accept, from: []}]`},
	{name: "input interface of an output rule", want: invalid, field: "rules[0].from",
		doc: `rules: [{name: r, direction: output, action: accept, from: [{interface: eth0}]}]`},
	{name: "interface with a slash", want: invalid, field: "rules[0].from[0].interface",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{interface: "eth0/1"}]}]`},
	{name: "interface too long", want: invalid, field: "rules[0].from[0].interface",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{interface: abcdefghijklmnop}]}]`},
	{name: "interface star", want: invalid, field: "rules[0].from[0].interface",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{interface: "*"}]}]`},
	{name: "undefined set", want: agentOnly, field: "rules[0].from[0].set",
		doc: `rules: [{name: r, direction: input, action: accept, from: [{set: mgmt-nets}]}]`},
	{name: "family contradicts the addresses", want: agentOnly, field: "rules[0].from[0].cidr",
		doc: `rules: [{name: r, direction: input, action: accept, family: ipv6, from: [{cidr: 10.0.0.0/8}]}]`},

	// Limits.
	{name: "rate of 0", want: invalid, field: "rules[0].limit.rate",
		doc: `rules: [{name: r, direction: input, action: accept, limit: {rate: 0/second}}]`},
	{name: "rate per week", want: invalid, field: "rules[0].limit.rate",
		doc: `rules: [{name: r, direction: input, action: accept, limit: {rate: 10/week}}]`},
	{name: "connLimit max 0", want: invalid, field: "rules[0].connLimit.max",
		doc: `rules: [{name: r, direction: input, action: accept, connLimit: {max: 0}}]`},
	{name: "negative burst", want: invalid, field: "rules[0].limit.burst",
		doc: `rules: [{name: r, direction: input, action: accept, limit: {rate: 1/second, burst: -1}}]`},

	// Sets.
	{name: "set name with uppercase", want: invalid, field: "sets",
		doc: `sets: {Mgmt: [10.0.0.0/8]}`},
	{name: "reserved set name", want: invalid, field: "sets",
		doc: `sets: {edgefw-x: [10.0.0.0/8]}`},
	{name: "set member with host bits", want: invalid, field: "sets.mgmt[1]", apiField: "sets[mgmt][1]",
		doc: `sets: {mgmt: [10.0.0.0/8, 192.168.1.1/16]}`},
	{name: "set file", want: clusterOnly, field: "sets.blocklist",
		doc: `sets: {blocklist: {file: blocklist.txt}}`},

	// Tunnels.
	{name: "tunnel name of 16 characters", want: invalid, field: "tunnels[0].name",
		doc: `tunnels: [{name: wireguard-tunnel, privateKeyFile: /k, addresses: [10.0.0.2/24]}]`},
	{name: "tunnel without addresses", want: invalid, field: "tunnels[0].addresses",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k}]`},
	{name: "tunnel address of length 0", want: invalid, field: "tunnels[0].addresses[0]",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/0]}]`},
	{name: "IPv6 tunnel with a small mtu", want: invalid, field: "tunnels[0].mtu",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: ["fd00::2/64"], mtu: 1000}]`},
	{name: "mtu too large", want: invalid, field: "tunnels[0].mtu",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/24], mtu: 9001}]`},
	{name: "relative key file", want: clusterOnly, field: "tunnels[0].privateKeyFile",
		doc: `tunnels: [{name: wg0, privateKeyFile: keys/wg0.key, addresses: [10.0.0.2/24]}]`},
	{name: "invalid public key", want: invalid, field: "tunnels[0].peers[0].publicKey",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/24], peers: [{name: p, publicKey: notakey, allowedIPs: [10.1.0.0/16]}]}]`},
	{name: "same key twice", want: invalid, field: "tunnels[0].peers",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/24], peers: [{name: p, publicKey: ` + wgKey + `, allowedIPs: [10.1.0.0/16]}, {name: q, publicKey: ` + wgKey + `, allowedIPs: [10.2.0.0/16]}]}]`},
	{name: "full-tunnel allowed IP", want: invalid, field: "tunnels[0].peers[0].allowedIPs[0]",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/24], peers: [{name: p, publicKey: ` + wgKey + `, allowedIPs: [0.0.0.0/0]}]}]`},
	{name: "endpoint without port", want: invalid, field: "tunnels[0].peers[0].endpoint",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/24], peers: [{name: p, publicKey: ` + wgKey + `, endpoint: gw.example, allowedIPs: [10.1.0.0/16]}]}]`},
	{name: "keepalive not whole seconds", want: invalid, field: "tunnels[0].peers[0].persistentKeepalive",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/24], peers: [{name: p, publicKey: ` + wgKey + `, allowedIPs: [10.1.0.0/16], persistentKeepalive: 1500ms}]}]`},
	{name: "keepalive too long", want: invalid, field: "tunnels[0].peers[0].persistentKeepalive",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/24], peers: [{name: p, publicKey: ` + wgKey + `, allowedIPs: [10.1.0.0/16], persistentKeepalive: 65536}]}]`},
	{name: "keepalive in minutes", want: clusterOnly, field: "tunnels[0].peers[0].persistentKeepalive",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/24], peers: [{name: p, publicKey: ` + wgKey + `, allowedIPs: [10.1.0.0/16], persistentKeepalive: 1m}]}]`},
	{name: "allowed IP holds the endpoint", want: agentOnly, field: "tunnels[0].peers[0].allowedIPs[0]",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/24], peers: [{name: p, publicKey: ` + wgKey + `, endpoint: "10.1.2.3:51820", allowedIPs: [10.1.0.0/16]}]}]`},
	{name: "endpoint host not a name", want: agentOnly, field: "tunnels[0].peers[0].endpoint",
		doc: `tunnels: [{name: wg0, privateKeyFile: /k, addresses: [10.0.0.2/24], peers: [{name: p, publicKey: ` + wgKey + `, endpoint: "gw_1.example:51820", allowedIPs: [10.1.0.0/16]}]}]`},
}

// testPolicySchema holds the CRD's schema and the policy package to the
// same table: each document is created (dry run, strict field validation
// as kubectl asks for) as a HostFirewallPolicy's spec.policy, and loaded as
// a drop-in of a host policy.
func testPolicySchema(t *testing.T, admin dynamic.Interface) {
	for _, tc := range schemaCases {
		t.Run(tc.name, func(t *testing.T) {
			checkPolicyVerdict(t, tc.doc, tc.want, tc.field)
			apiErr := createPolicy(t, admin, "schema-case", tc.doc, true)
			apiRefuses := tc.want == invalid || tc.want == clusterOnly
			switch {
			case (apiErr != nil) != apiRefuses:
				t.Errorf("API server: got %v, want refused %v", apiErr, apiRefuses)
			case apiErr != nil && !strings.Contains(apiErr.Error(), "spec.policy."+cmp.Or(tc.apiField, tc.field)):
				t.Errorf("API server error does not name spec.policy.%s: %v", cmp.Or(tc.apiField, tc.field), apiErr)
			}
			if t.Failed() {
				t.Logf("%s document:\n%s", tc.want, tc.doc)
			} else if apiErr != nil {
				t.Logf("API server: %v", apiErr)
			}
		})
	}
}

// TestSchemaCasesPolicy holds the policy package alone to the table, so
// that a change of its checks shows here even where the API server cannot
// run.
func TestSchemaCasesPolicy(t *testing.T) {
	for _, tc := range schemaCases {
		t.Run(tc.name, func(t *testing.T) { checkPolicyVerdict(t, tc.doc, tc.want, tc.field) })
	}
}

// checkPolicyVerdict checks what the policy package makes of doc as a
// drop-in: refused (naming field) or accepted, as want says.
func checkPolicyVerdict(t *testing.T, doc string, want verdict, field string) {
	t.Helper()
	err := loadDropIn(t, doc)
	refuses := want == invalid || want == agentOnly
	switch {
	case (err != nil) != refuses:
		t.Errorf("policy package: got %v, want refused %v (%s)", err, refuses, want)
	case err != nil && !namesField(err, field):
		t.Errorf("policy error does not name %s: %v", field, err)
	}
}

// loadDropIn loads doc as the one drop-in of a host policy.
func loadDropIn(t *testing.T, doc string) error {
	t.Helper()
	fsys := fstest.MapFS{
		"etc/edgefw/policy.yaml":           {Data: []byte("version: 1\n")},
		"etc/edgefw/policy.d/cluster.yaml": {Data: []byte(doc)},
		// For the set file case, which only a host's file may use.
		"etc/edgefw/policy.d/blocklist.txt": {Data: []byte("192.0.2.0/24\n")},
	}
	_, err := policy.LoadFS(fsys, "/etc/edgefw/policy.yaml")
	return err
}

// namesField reports whether one of err's policy errors is at field or
// inside it.
func namesField(err error, field string) bool {
	var list policy.ErrorList
	if !errors.As(err, &list) {
		return false
	}
	for _, e := range list {
		if e.Path == field || strings.HasPrefix(e.Path, field+".") || strings.HasPrefix(e.Path, field+"[") {
			return true
		}
	}
	return false
}

// createPolicy creates a HostFirewallPolicy selecting every node whose
// spec.policy is doc, with strict field validation, as a dry run or for
// real.
func createPolicy(t *testing.T, client dynamic.Interface, name, doc string, dryRun bool) error {
	t.Helper()
	var pol map[string]any
	if err := yaml.Unmarshal([]byte(doc), &pol); err != nil {
		t.Fatalf("test document: %v", err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version,
		"kind":       "HostFirewallPolicy",
		"metadata":   map[string]any{"name": name},
		"spec":       map[string]any{"nodeSelector": map[string]any{}, "policy": pol},
	}}
	opts := metav1.CreateOptions{FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err := client.Resource(PolicyResource).Create(context.Background(), obj, opts)
	return err
}
