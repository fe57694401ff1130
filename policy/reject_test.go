package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKey and otherKey are valid WireGuard public keys.
const (
	testKey  = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
	otherKey = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
)

func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

// withRule is a policy whose one rule, on line 3, has the given extra
// fields from line 6 on, indented to column 5.
func withRule(extra ...string) string {
	return lines(append([]string{
		"version: 1",
		"rules:",
		"  - name: r",
		"    direction: input",
		"    action: accept",
	}, indent("    ", extra)...)...)
}

// withTunnel is a policy whose one tunnel, on line 3, has the given extra
// fields from line 6 on, indented to column 5.
func withTunnel(extra ...string) string {
	return lines(append([]string{
		"version: 1",
		"tunnels:",
		"  - name: wg0",
		"    privateKeyFile: wg0.key",
		"    addresses: [10.0.0.2/24]",
	}, indent("    ", extra)...)...)
}

// withPeer is a policy whose one tunnel has one peer, on line 7, with the
// given extra fields from line 10 on, indented to column 9.
func withPeer(extra ...string) string {
	return withTunnel(append([]string{
		"peers:",
		"  - name: gw",
		"    publicKey: " + testKey,
		"    allowedIPs: [10.0.0.0/24]",
	}, indent("    ", extra)...)...)
}

// withSecondPeer is withPeer with a second peer, written on line 10.
func withSecondPeer(peer string) string {
	return withPeer() + "      - " + peer + "\n"
}

func indent(prefix string, l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = prefix + s
	}
	return out
}

// rejection is one policy that must be refused with exactly one error.
type rejection struct {
	name string
	yaml string
	// files are written beside policy.yaml before parsing.
	files map[string]string
	// file is where the error is, relative to the test directory;
	// empty means policy.yaml.
	file      string
	line, col int
	path      string
	msg       string
	// errors is how many errors the policy has, if not one; the one
	// described above must be among them.
	errors int
}

// rejectionCases are the policies the decoder must refuse. TestValidate
// holds Validate to the same paths and messages where a Policy can hold
// the same mistake.
func rejectionCases() []rejection {
	long := strings.Repeat("a", 49)
	return []rejection{
		// The document as a whole.
		{name: "empty file", yaml: "", line: 1, col: 1, msg: "empty policy; version: 1 is required"},
		{name: "only comments", yaml: "# nothing\n", line: 1, col: 1, msg: "empty policy"},
		{name: "only a document marker", yaml: "---\n", line: 1, col: 1, msg: "empty policy"},
		{name: "not a mapping", yaml: "- version: 1\n", line: 1, col: 1, msg: "must be a mapping with fields version, defaults"},
		{name: "syntax error", yaml: "version: 1\nrules: [\n", line: 2, col: 1, msg: "invalid YAML"},
		{name: "tab indentation", yaml: "version: 1\nrules:\n\t- name: x\n", line: 3, col: 1, msg: "invalid YAML"},
		{name: "invalid UTF-8", yaml: "version: 1\nrules: [\"a\xffb\"]\n", line: 2, col: 11, msg: "invalid YAML"},
		{name: "two documents", yaml: "version: 1\n---\nversion: 1\n", line: 2, col: 1, msg: "a second YAML document"},
		{name: "anchor", yaml: "version: 1\nsets:\n  a: &nets [10.0.0.0/8]\n  b: *nets\n", line: 3, col: 6, path: "sets.a", msg: "anchors and aliases are not supported"},
		{name: "merge key", yaml: "version: 1\ndefaults: {<<: {input: drop}}\n", line: 2, col: 12, path: "defaults.<<", msg: `unknown field "<<"; valid fields are input, forward, output`},
		{name: "nesting too deep", yaml: "version: 1\nx: " + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "\n", line: 2, col: 67, path: "x" + strings.Repeat("[0]", 63), msg: "nested more than 64 levels deep"},

		// version and top-level fields.
		{name: "version missing", yaml: "rules: []\n", line: 1, col: 1, path: "version", msg: "required field is missing; start the file with version: 1"},
		{name: "version 2", yaml: "version: 2\n", line: 1, col: 10, path: "version", msg: "version 2 is not supported; the only valid version is 1"},
		{name: "version as string", yaml: "version: \"1\"\n", line: 1, col: 10, path: "version", msg: "must be the integer 1, not a string"},
		{name: "unknown top-level field", yaml: "version: 1\nrule: []\n", line: 2, col: 1, path: "rule", msg: `unknown field "rule"; valid fields are version, defaults, failsafe, sets, rules, tunnels`},
		{name: "duplicate top-level key", yaml: "version: 1\nrules: []\nrules: []\n", line: 3, col: 1, path: "rules", msg: `duplicate key "rules"; it is first set at line 2`},

		// defaults and failsafe.
		{name: "default reject", yaml: "version: 1\ndefaults: {input: reject}\n", line: 2, col: 19, path: "defaults.input", msg: `"reject" is not a valid default verdict; valid values are accept, drop`},
		{name: "defaults unknown field", yaml: "version: 1\ndefaults: {inbound: drop}\n", line: 2, col: 12, path: "defaults.inbound", msg: "valid fields are input, forward, output"},
		{name: "defaults not a mapping", yaml: "version: 1\ndefaults: drop\n", line: 2, col: 11, path: "defaults", msg: "must be a mapping with fields input, forward, output, not a string"},
		{name: "failsafe icmp", yaml: "version: 1\nfailsafe: [{protocol: icmp}]\n", line: 2, col: 23, path: "failsafe[0].protocol", msg: `"icmp" is not a valid protocol; valid values are tcp, udp, sctp`},
		{name: "failsafe without port", yaml: "version: 1\nfailsafe: [{protocol: tcp}]\n", line: 2, col: 12, path: "failsafe[0].port", msg: "a failsafe entry opens one port or range"},
		{name: "failsafe not a list", yaml: "version: 1\nfailsafe: {protocol: tcp, port: 22}\n", line: 2, col: 11, path: "failsafe", msg: "must be a list of ports like {protocol: tcp, port: 22}, not a mapping"},

		// sets.
		{name: "set bad CIDR", yaml: "version: 1\nsets:\n  a: [10.0.0.256/24]\n", line: 3, col: 7, path: "sets.a[0]", msg: `"10.0.0.256/24" is not a valid CIDR`},
		{name: "set prefix too long", yaml: "version: 1\nsets:\n  a: [10.0.0.0/33]\n", line: 3, col: 7, path: "sets.a[0]", msg: "invalid prefix length; it must be 0 to 32 for IPv4"},
		{name: "set host bits", yaml: "version: 1\nsets:\n  a: [10.0.0.0/8, 10.0.0.1/24]\n", line: 3, col: 19, path: "sets.a[1]", msg: "10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?"},
		{name: "set IPv4-mapped", yaml: "version: 1\nsets:\n  a: [\"::ffff:10.0.0.0/104\"]\n", line: 3, col: 7, path: "sets.a[0]", msg: "IPv4-mapped IPv6 address, which never matches; write it as IPv4, like 10.0.0.0/8"},
		{name: "set zone", yaml: "version: 1\nsets:\n  a: [\"fe80::1%eth0\"]\n", line: 3, col: 7, path: "sets.a[0]", msg: "is not a valid CIDR or address"},
		{name: "set entry not a string", yaml: "version: 1\nsets:\n  a: [10]\n", line: 3, col: 7, path: "sets.a[0]", msg: "must be a string, not an integer"},
		{name: "set name invalid", yaml: "version: 1\nsets:\n  Mgmt: []\n", line: 3, col: 3, path: "sets.Mgmt", msg: `"Mgmt" is not a valid name; use lowercase letters, digits and -, starting with a letter`},
		{name: "set name reserved", yaml: "version: 1\nsets:\n  edgefw-x: []\n", line: 3, col: 3, path: "sets.edgefw-x", msg: `names beginning with "edgefw-" are reserved`},
		{name: "set name too long", yaml: "version: 1\nsets:\n  " + long + ": []\n", line: 3, col: 3, path: "sets." + long, msg: "is 49 characters long; at most 48 are allowed"},
		{name: "set neither list nor file", yaml: "version: 1\nsets:\n  a: 10.0.0.0/8\n", line: 3, col: 6, path: "sets.a", msg: "must be a list of CIDRs like [10.0.0.0/8] or {file: PATH}, not a string"},
		{name: "set file unknown field", yaml: "version: 1\nsets:\n  a: {path: x.txt}\n", line: 3, col: 7, path: "sets.a.path", msg: `unknown field "path"; valid fields are file`, errors: 2},
		{name: "set file missing field", yaml: "version: 1\nsets:\n  a: {}\n", line: 3, col: 6, path: "sets.a.file", msg: "required field is missing; write {file: PATH}"},
		{name: "set file not found", yaml: "version: 1\nsets:\n  a: {file: nope.txt}\n", line: 3, col: 13, path: "sets.a.file", msg: "nope.txt: no such file or directory"},
		{name: "set file is a directory", yaml: "version: 1\nsets:\n  a: {file: .}\n", line: 3, col: 13, path: "sets.a.file", msg: "not a regular file"},
		{
			name:  "set file bad line",
			yaml:  "version: 1\nsets:\n  a: {file: a.txt}\n",
			files: map[string]string{"a.txt": "# header\n10.0.0.0/8\n\n  10.1.0.1/16   # typo\n"},
			file:  "a.txt", line: 4, col: 3, path: "sets.a", msg: "10.1.0.1/16 has host bits set; did you mean 10.1.0.0/16?",
		},
		{
			name:  "set file two per line",
			yaml:  "version: 1\nsets:\n  a: {file: a.txt}\n",
			files: map[string]string{"a.txt": "10.0.0.0/8 10.1.0.0/16\n"},
			file:  "a.txt", line: 1, col: 12, path: "sets.a", msg: `"10.1.0.0/16" follows "10.0.0.0/8" on the same line; write one CIDR a line`,
		},
		{name: "duplicate set", yaml: "version: 1\nsets:\n  a: []\n  a: []\n", line: 4, col: 3, path: "sets.a", msg: `duplicate set name "a"; it is first defined at policy.yaml:3`},
		{name: "sets not a mapping", yaml: "version: 1\nsets: [10.0.0.0/8]\n", line: 2, col: 7, path: "sets", msg: "must be a mapping of set names"},

		// rules.
		{name: "rules not a list", yaml: "version: 1\nrules: {name: r}\n", line: 2, col: 8, path: "rules", msg: "must be a list of rules, not a mapping"},
		{name: "rule not a mapping", yaml: "version: 1\nrules: [r]\n", line: 2, col: 9, path: "rules[0]", msg: "must be a mapping with fields name, direction, from, to, ports, action, mode, log, family, limit, connLimit, not a string"},
		{name: "rule unknown field", yaml: withRule("port: 22"), line: 6, col: 5, path: "rules[0].port", msg: `unknown field "port"; valid fields are name, direction, from, to, ports, action, mode, log, family, limit, connLimit`},
		{name: "rule duplicate key", yaml: withRule("action: drop"), line: 6, col: 5, path: "rules[0].action", msg: `duplicate key "action"; it is first set at line 5`},
		{name: "rule name missing", yaml: "version: 1\nrules:\n  - direction: input\n    action: drop\n", line: 3, col: 5, path: "rules[0].name", msg: "required field is missing; name the rule"},
		{name: "rule name empty", yaml: "version: 1\nrules:\n  - name:\n    direction: input\n    action: drop\n", line: 3, col: 5, path: "rules[0].name", msg: "required field is missing"},
		{name: "rule name uppercase", yaml: "version: 1\nrules:\n  - {name: SSH, direction: input, action: accept}\n", line: 3, col: 12, path: "rules[0].name", msg: `"SSH" is not a valid name`},
		{name: "rule name with underscore", yaml: "version: 1\nrules:\n  - {name: ssh_in, direction: input, action: accept}\n", line: 3, col: 12, path: "rules[0].name", msg: `"ssh_in" is not a valid name`},
		{name: "rule name starts with digit", yaml: "version: 1\nrules:\n  - {name: 1ssh, direction: input, action: accept}\n", line: 3, col: 12, path: "rules[0].name", msg: `"1ssh" is not a valid name`},
		{name: "rule name reserved", yaml: "version: 1\nrules:\n  - {name: edgefw-ssh, direction: input, action: accept}\n", line: 3, col: 12, path: "rules[0].name", msg: "reserved for implicit rules"},
		{name: "rule name too long", yaml: "version: 1\nrules:\n  - {name: " + long + ", direction: input, action: accept}\n", line: 3, col: 12, path: "rules[0].name", msg: "at most 48 are allowed"},
		{name: "rule name not a string", yaml: "version: 1\nrules:\n  - {name: 7, direction: input, action: accept}\n", line: 3, col: 12, path: "rules[0].name", msg: "must be a string, not an integer"},
		{
			name: "duplicate rule name",
			yaml: "version: 1\nrules:\n  - {name: r, direction: input, action: accept}\n  - {name: r, direction: input, action: drop}\n",
			line: 4, col: 12, path: "rules[1].name", msg: `duplicate rule name "r"; it is first defined at policy.yaml:3`,
		},
		{name: "direction missing", yaml: "version: 1\nrules:\n  - {name: r, action: accept}\n", line: 3, col: 5, path: "rules[0].direction", msg: "required field is missing; valid values are input, output, forward"},
		{name: "direction invalid", yaml: "version: 1\nrules:\n  - {name: r, direction: in, action: accept}\n", line: 3, col: 26, path: "rules[0].direction", msg: `"in" is not a valid direction; valid values are input, output, forward`},
		{name: "action missing", yaml: "version: 1\nrules:\n  - {name: r, direction: input}\n", line: 3, col: 5, path: "rules[0].action", msg: "required field is missing; valid values are accept, drop, reject"},
		{name: "action invalid", yaml: "version: 1\nrules:\n  - {name: r, direction: input, action: allow}\n", line: 3, col: 41, path: "rules[0].action", msg: `"allow" is not a valid action; valid values are accept, drop, reject`},
		{name: "mode invalid", yaml: withRule("mode: dry-run"), line: 6, col: 11, path: "rules[0].mode", msg: `"dry-run" is not a valid mode; valid values are enforce, audit`},
		{name: "mode capitalised", yaml: withRule("mode: Audit"), line: 6, col: 11, path: "rules[0].mode", msg: `"Audit" is not a valid mode; valid values are enforce, audit`},
		{name: "mode not a string", yaml: withRule("mode: true"), line: 6, col: 11, path: "rules[0].mode", msg: "must be a string, not a boolean"},
		{name: "mode audit on accept", yaml: withRule("mode: audit"), line: 6, col: 11, path: "rules[0].mode", msg: "mode audit counts and logs what a drop or reject rule would deny, and an accept rule denies nothing; use action: drop or reject, or remove mode"},
		{name: "log not a boolean", yaml: withRule("log: yes"), line: 6, col: 10, path: "rules[0].log", msg: "must be true or false, not a string"},
		{name: "family invalid", yaml: withRule("family: inet"), line: 6, col: 13, path: "rules[0].family", msg: `"inet" is not a valid family; valid values are ipv4, ipv6`},

		// from and to.
		{name: "from not a list", yaml: withRule("from: {cidr: 10.0.0.0/8}"), line: 6, col: 11, path: "rules[0].from", msg: "must be a list of peers"},
		{name: "peer with no kind", yaml: withRule("from: [{}]"), line: 6, col: 12, path: "rules[0].from[0]", msg: "a peer is exactly one of cidr (with optional except), set or interface; this one has none"},
		{name: "peer with two kinds", yaml: withRule("from: [{cidr: 10.0.0.0/8, set: a}]"), line: 6, col: 12, path: "rules[0].from[0]", msg: "this one has cidr and set, so split it"},
		{name: "peer unknown field", yaml: withRule("from: [{net: 10.0.0.0/8}]"), line: 6, col: 13, path: "rules[0].from[0].net", msg: `unknown field "net"; valid fields are cidr, except, set, interface`, errors: 2},
		{name: "except without cidr", yaml: lines("version: 1", "sets: {a: []}", "rules:", "  - {name: r, direction: input, action: accept, from: [{set: a, except: [10.0.0.0/8]}]}"), line: 4, col: 65, path: "rules[0].from[0].except", msg: "except is only valid with cidr"},
		{name: "except outside cidr", yaml: withRule("from: [{cidr: 10.0.0.0/8, except: [192.0.2.0/24]}]"), line: 6, col: 40, path: "rules[0].from[0].except[0]", msg: "192.0.2.0/24 is not inside cidr 10.0.0.0/8"},
		{name: "except wider than cidr", yaml: withRule("from: [{cidr: 10.0.0.0/16, except: [10.0.0.0/8]}]"), line: 6, col: 41, path: "rules[0].from[0].except[0]", msg: "10.0.0.0/8 is not inside cidr 10.0.0.0/16"},
		{name: "except equals cidr", yaml: withRule("from: [{cidr: 10.0.0.0/8, except: [10.0.0.0/8]}]"), line: 6, col: 40, path: "rules[0].from[0].except[0]", msg: "is the cidr itself, so the peer would match nothing"},
		{name: "except other family", yaml: withRule("from: [{cidr: 10.0.0.0/8, except: [\"fd00::/8\"]}]"), line: 6, col: 40, path: "rules[0].from[0].except[0]", msg: "fd00::/8 is IPv6 but cidr 10.0.0.0/8 is IPv4"},
		{name: "except host bits", yaml: withRule("from: [{cidr: 10.0.0.0/8, except: [10.0.0.1/24]}]"), line: 6, col: 40, path: "rules[0].from[0].except[0]", msg: "did you mean 10.0.0.0/24?"},
		{name: "peer cidr host bits", yaml: withRule("from: [{cidr: 10.0.0.1/8}]"), line: 6, col: 19, path: "rules[0].from[0].cidr", msg: "10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"},
		{name: "peer cidr invalid", yaml: withRule("from: [{cidr: 10.0.0/8}]"), line: 6, col: 19, path: "rules[0].from[0].cidr", msg: `"10.0.0/8" is not a valid CIDR`},
		{name: "undefined set", yaml: lines("version: 1", "sets: {mgmt: []}", "rules:", "  - {name: r, direction: input, action: accept, from: [{set: admins}]}"), line: 4, col: 62, path: "rules[0].from[0].set", msg: `undefined set "admins"; defined sets are mgmt`},
		{name: "undefined set, none defined", yaml: withRule("to: [{set: admins}]"), line: 6, col: 16, path: "rules[0].to[0].set", msg: `undefined set "admins"; no sets are defined`},
		{name: "interface with slash", yaml: withRule("from: [{interface: eth0/1}]"), line: 6, col: 24, path: "rules[0].from[0].interface", msg: `interface "eth0/1" contains '/'`},
		{name: "interface with colon", yaml: withRule("from: [{interface: \"eth0:1\"}]"), line: 6, col: 24, path: "rules[0].from[0].interface", msg: `contains ':'`},
		{name: "interface too long", yaml: withRule("from: [{interface: abcdefghijklmnop}]"), line: 6, col: 24, path: "rules[0].from[0].interface", msg: "longer than 15 characters"},
		{name: "interface wildcard inside", yaml: withRule("from: [{interface: e*h0}]"), line: 6, col: 24, path: "rules[0].from[0].interface", msg: `contains '*'`},
		{name: "interface wildcard alone", yaml: withRule("from: [{interface: \"*\"}]"), line: 6, col: 24, path: "rules[0].from[0].interface", msg: "would match every interface"},
		{
			name: "input interface in output rule",
			yaml: "version: 1\nrules:\n  - {name: r, direction: output, action: accept, from: [{interface: eth0}]}\n",
			line: 3, col: 69, path: "rules[0].from[0].interface", msg: "an output rule's packets have no input interface; match the output interface with to: [{interface: eth0}]",
		},
		{name: "output interface in input rule", yaml: withRule("to: [{interface: eth0}]"), line: 6, col: 22, path: "rules[0].to[0].interface", msg: "an input rule's packets have no output interface"},

		// Empty from, to and ports: only an absent field matches all, so
		// that deleting a list's last entry cannot open a rule to anyone.
		{name: "from empty list", yaml: withRule("from: []"), line: 6, col: 11, path: "rules[0].from", msg: "empty list; remove the field to match any source, or list at least one peer"},
		{name: "from with no value", yaml: withRule("from:"), line: 6, col: 5, path: "rules[0].from", msg: "no value; remove the field to match any source, or list at least one peer"},
		{name: "from null", yaml: withRule("from: ~"), line: 6, col: 5, path: "rules[0].from", msg: "no value; remove the field to match any source"},
		{name: "from with its entry commented out", yaml: withRule("from:", "  # - {cidr: 10.10.0.0/16}", "ports: [{protocol: tcp, port: 22}]"), line: 6, col: 5, path: "rules[0].from", msg: "no value; remove the field to match any source"},
		{name: "to empty list", yaml: withRule("to: []"), line: 6, col: 9, path: "rules[0].to", msg: "empty list; remove the field to match any destination, or list at least one peer"},
		{name: "to null", yaml: withRule("to: null"), line: 6, col: 5, path: "rules[0].to", msg: "no value; remove the field to match any destination"},
		{name: "ports empty list", yaml: withRule("ports: []"), line: 6, col: 12, path: "rules[0].ports", msg: "empty list; remove the field to match any protocol and port, or list at least one entry"},
		{name: "ports with no value", yaml: withRule("ports:"), line: 6, col: 5, path: "rules[0].ports", msg: "no value; remove the field to match any protocol and port"},
		{name: "from empty in a flow mapping", yaml: "version: 1\nrules:\n  - {name: r, direction: input, action: accept, from: []}\n", line: 3, col: 55, path: "rules[0].from", msg: "empty list; remove the field to match any source"},

		// ports.
		{name: "ports without protocol", yaml: withRule("ports: [{port: 22}]"), line: 6, col: 13, path: "rules[0].ports[0].protocol", msg: "required field is missing; every ports entry needs a protocol; valid values are tcp, udp, sctp, icmp, icmpv6"},
		{name: "unknown protocol", yaml: withRule("ports: [{protocol: http, port: 80}]"), line: 6, col: 24, path: "rules[0].ports[0].protocol", msg: `"http" is not a valid protocol; valid values are tcp, udp, sctp, icmp, icmpv6`},
		{name: "port 0", yaml: withRule("ports: [{protocol: tcp, port: 0}]"), line: 6, col: 35, path: "rules[0].ports[0].port", msg: "port 0 is out of range; valid values are 1 to 65535"},
		{name: "port too large", yaml: withRule("ports: [{protocol: tcp, port: 65536}]"), line: 6, col: 35, path: "rules[0].ports[0].port", msg: "port 65536 is out of range; valid values are 1 to 65535"},
		{name: "port negative", yaml: withRule("ports: [{protocol: tcp, port: -1}]"), line: 6, col: 35, path: "rules[0].ports[0].port", msg: "out of range"},
		{name: "port huge", yaml: withRule("ports: [{protocol: tcp, port: 99999999999999999999}]"), line: 6, col: 35, path: "rules[0].ports[0].port", msg: "must be an integer from 1 to 65535, not a number with a fraction"},
		{name: "port as string", yaml: withRule("ports: [{protocol: tcp, port: \"22\"}]"), line: 6, col: 35, path: "rules[0].ports[0].port", msg: "must be an integer from 1 to 65535, not a string; write the number without quotes"},
		{name: "port range as string", yaml: withRule("ports: [{protocol: tcp, port: 30000-32767}]"), line: 6, col: 35, path: "rules[0].ports[0].port", msg: "write a range as port: 30000, endPort: 32767"},
		{name: "endPort below port", yaml: withRule("ports: [{protocol: tcp, port: 22, endPort: 21}]"), line: 6, col: 48, path: "rules[0].ports[0].endPort", msg: "endPort 21 is less than port 22; endPort must be at least port"},
		{name: "endPort too large", yaml: withRule("ports: [{protocol: udp, port: 1, endPort: 65536}]"), line: 6, col: 47, path: "rules[0].ports[0].endPort", msg: "port 65536 is out of range"},
		{name: "endPort without port", yaml: withRule("ports: [{protocol: tcp, endPort: 22}]"), line: 6, col: 38, path: "rules[0].ports[0].endPort", msg: "endPort needs port"},
		{name: "icmp with port", yaml: withRule("ports: [{protocol: icmp, port: 8}]"), line: 6, col: 36, path: "rules[0].ports[0].port", msg: "icmp has no ports; remove port"},
		{name: "icmpv6 with endPort", yaml: withRule("ports: [{protocol: icmpv6, endPort: 8}]"), line: 6, col: 41, path: "rules[0].ports[0].endPort", msg: "icmpv6 has no ports"},
		{name: "ports entry unknown field", yaml: withRule("ports: [{protocol: tcp, ports: 22}]"), line: 6, col: 29, path: "rules[0].ports[0].ports", msg: `unknown field "ports"; valid fields are protocol, port, endPort`},

		// Families.
		{name: "family contradicts cidr", yaml: withRule("family: ipv6", "from: [{cidr: 10.0.0.0/8}]"), line: 7, col: 19, path: "rules[0].from[0].cidr", msg: "cidr 10.0.0.0/8 matches only IPv4 packets, which contradicts family: ipv6 at line 6"},
		{name: "family contradicts icmp", yaml: withRule("family: ipv6", "ports: [{protocol: icmp}]"), line: 7, col: 24, path: "rules[0].ports[0].protocol", msg: "icmp matches only IPv4 packets, which contradicts family: ipv6"},
		{name: "family contradicts icmpv6", yaml: withRule("family: ipv4", "ports: [{protocol: icmpv6}]"), line: 7, col: 24, path: "rules[0].ports[0].protocol", msg: "icmpv6 matches only IPv6 packets, which contradicts family: ipv4"},
		{name: "from IPv4, to IPv6", yaml: lines("version: 1", "rules:", "  - {name: r, direction: forward, action: accept, from: [{cidr: 10.0.0.0/8}], to: [{cidr: \"fd00::/8\"}]}"), line: 3, col: 83, path: "rules[0].to", msg: "to matches only IPv6 packets, which contradicts from, which matches only IPv4 packets; no packet can match both"},
		{name: "IPv6 address, icmp only", yaml: withRule("from: [{cidr: \"fd00::/8\"}]", "ports: [{protocol: icmp}]"), line: 7, col: 12, path: "rules[0].ports", msg: "ports matches only IPv4 packets, which contradicts from"},
		{name: "IPv6 from entry in a rule to IPv4", yaml: lines("version: 1", "rules:", "  - {name: r, direction: forward, action: accept, from: [{cidr: 10.0.0.0/8}, {cidr: \"fd00::/8\"}], to: [{cidr: 192.0.2.0/24}]}"), line: 3, col: 85, path: "rules[0].from[1].cidr", msg: "cidr fd00::/8 matches only IPv6 packets, which contradicts to, which matches only IPv4 packets; this entry can never match"},
		{name: "icmpv6 entry in an IPv4 rule", yaml: withRule("from: [{cidr: 10.0.0.0/8}]", "ports: [{protocol: tcp}, {protocol: icmpv6}]"), line: 7, col: 41, path: "rules[0].ports[1].protocol", msg: "icmpv6 matches only IPv6 packets, which contradicts from, which matches only IPv4 packets; this entry can never match"},

		// limit and connLimit.
		{name: "limit rate unit", yaml: withRule("limit: {rate: 100/min}"), line: 6, col: 19, path: "rules[0].limit.rate", msg: `"100/min" is not a valid rate; write COUNT/UNIT with UNIT one of second, minute, hour, day`},
		{name: "limit rate zero", yaml: withRule("limit: {rate: 0/second}"), line: 6, col: 19, path: "rules[0].limit.rate", msg: "the count must be at least 1"},
		{name: "limit rate negative", yaml: withRule("limit: {rate: -5/second}"), line: 6, col: 19, path: "rules[0].limit.rate", msg: "is not a valid rate"},
		{name: "limit rate as integer", yaml: withRule("limit: {rate: 100}"), line: 6, col: 19, path: "rules[0].limit.rate", msg: "must be a string, not an integer"},
		{name: "limit rate missing", yaml: withRule("limit: {burst: 5}"), line: 6, col: 12, path: "rules[0].limit.rate", msg: "required field is missing; write a rate like 100/minute"},
		{name: "limit burst negative", yaml: withRule("limit: {rate: 1/second, burst: -1}"), line: 6, col: 36, path: "rules[0].limit.burst", msg: "burst -1 is out of range; valid values are 0 to 4294967295"},
		{name: "limit perSource not bool", yaml: withRule("limit: {rate: 1/second, perSource: 1}"), line: 6, col: 40, path: "rules[0].limit.perSource", msg: "must be true or false, not an integer"},
		{name: "connLimit max zero", yaml: withRule("connLimit: {max: 0}"), line: 6, col: 22, path: "rules[0].connLimit.max", msg: "max 0 is out of range; valid values are 1 to"},
		{name: "connLimit max missing", yaml: withRule("connLimit: {perSource: true}"), line: 6, col: 16, path: "rules[0].connLimit.max", msg: "required field is missing"},
		{name: "connLimit unknown field", yaml: withRule("connLimit: {max: 1, burst: 2}"), line: 6, col: 25, path: "rules[0].connLimit.burst", msg: "valid fields are max, perSource"},

		// tunnels.
		{name: "tunnels not a list", yaml: "version: 1\ntunnels: {name: wg0}\n", line: 2, col: 10, path: "tunnels", msg: "must be a list of tunnels"},
		{name: "tunnel unknown field", yaml: withTunnel("port: 51820"), line: 6, col: 5, path: "tunnels[0].port", msg: "valid fields are name, backend, privateKeyFile, listenPort, addresses, mtu, peers"},
		{name: "tunnel name missing", yaml: "version: 1\ntunnels:\n  - {privateKeyFile: k, addresses: [10.0.0.1/24]}\n", line: 3, col: 5, path: "tunnels[0].name", msg: "a tunnel's name is its interface name"},
		{name: "tunnel name too long", yaml: "version: 1\ntunnels:\n  - {name: wg-to-the-cluster, privateKeyFile: k, addresses: [10.0.0.1/24]}\n", line: 3, col: 12, path: "tunnels[0].name", msg: "is 17 characters long; at most 15 are allowed"},
		{name: "tunnel name invalid", yaml: "version: 1\ntunnels:\n  - {name: WG0, privateKeyFile: k, addresses: [10.0.0.1/24]}\n", line: 3, col: 12, path: "tunnels[0].name", msg: `"WG0" is not a valid name`},
		{
			name: "duplicate tunnel name",
			yaml: "version: 1\ntunnels:\n  - {name: wg0, privateKeyFile: k, addresses: [10.0.0.1/24]}\n  - {name: wg0, privateKeyFile: k, addresses: [10.0.1.1/24]}\n",
			line: 4, col: 12, path: "tunnels[1].name", msg: `duplicate tunnel name "wg0"; it is first defined at policy.yaml:3`,
		},
		{name: "backend invalid", yaml: withTunnel("backend: wireguard-go"), line: 6, col: 14, path: "tunnels[0].backend", msg: `"wireguard-go" is not a valid backend; valid values are auto, kernel, userspace`},
		{name: "privateKeyFile missing", yaml: "version: 1\ntunnels:\n  - {name: wg0, addresses: [10.0.0.1/24]}\n", line: 3, col: 5, path: "tunnels[0].privateKeyFile", msg: "required field is missing"},
		{name: "privateKeyFile empty string", yaml: "version: 1\ntunnels:\n  - {name: wg0, privateKeyFile: \"\", addresses: [10.0.0.1/24]}\n", line: 3, col: 33, path: "tunnels[0].privateKeyFile", msg: "must name a key file"},
		{name: "listenPort out of range", yaml: withTunnel("listenPort: 70000"), line: 6, col: 17, path: "tunnels[0].listenPort", msg: "port 70000 is out of range; valid values are 1 to 65535"},
		{
			name: "shared listenPort",
			yaml: "version: 1\ntunnels:\n  - {name: wg0, privateKeyFile: k, addresses: [10.0.0.1/24], listenPort: 51820}\n  - {name: wg1, privateKeyFile: k, addresses: [10.0.1.1/24], listenPort: 51820}\n",
			line: 4, col: 74, path: "tunnels[1].listenPort", msg: "listen port 51820 is already used by the tunnel at policy.yaml:3",
		},
		{name: "addresses missing", yaml: "version: 1\ntunnels:\n  - {name: wg0, privateKeyFile: k}\n", line: 3, col: 5, path: "tunnels[0].addresses", msg: "required field is missing; list the interface's own addresses"},
		{name: "addresses empty", yaml: "version: 1\ntunnels:\n  - {name: wg0, privateKeyFile: k, addresses: []}\n", line: 3, col: 47, path: "tunnels[0].addresses", msg: "a tunnel needs at least one address"},
		{name: "address invalid", yaml: "version: 1\ntunnels:\n  - {name: wg0, privateKeyFile: k, addresses: [10.0.0.2/40]}\n", line: 3, col: 48, path: "tunnels[0].addresses[0]", msg: "invalid prefix length"},
		{name: "address /0", yaml: "version: 1\ntunnels:\n  - {name: wg0, privateKeyFile: k, addresses: [10.0.0.2/0]}\n", line: 3, col: 48, path: "tunnels[0].addresses[0]", msg: "10.0.0.2/0 has prefix length 0, so the kernel would route every IPv4 address through the tunnel, taking over the host's default route; an interface address needs a prefix length of at least 1, usually the tunnel subnet's, like 10.0.0.2/24"},
		{name: "IPv6 address /0", yaml: "version: 1\ntunnels:\n  - {name: wg0, privateKeyFile: k, addresses: [10.0.0.2/24, \"fd00::2/0\"]}\n", line: 3, col: 61, path: "tunnels[0].addresses[1]", msg: "fd00::2/0 has prefix length 0, so the kernel would route every IPv6 address through the tunnel, taking over the host's default route; an interface address needs a prefix length of at least 1, usually the tunnel subnet's, like fd00::2/64"},
		{name: "mtu below IPv4 minimum", yaml: withTunnel("mtu: 500"), line: 6, col: 10, path: "tunnels[0].mtu", msg: "mtu 500 is out of range; valid values are 576 to 9000"},
		{name: "mtu below IPv6 minimum", yaml: "version: 1\ntunnels:\n  - {name: wg0, privateKeyFile: k, addresses: [10.0.0.1/24, \"fd00::1/64\"], mtu: 1000}\n", line: 3, col: 81, path: "tunnels[0].mtu", msg: "mtu 1000 is out of range; valid values are 1280 to 9000; the tunnel has an IPv6 address"},
		{name: "mtu too large", yaml: withTunnel("mtu: 9001"), line: 6, col: 10, path: "tunnels[0].mtu", msg: "valid values are 576 to 9000"},
		{name: "mtu as string", yaml: withTunnel("mtu: \"1420\""), line: 6, col: 10, path: "tunnels[0].mtu", msg: "must be an integer from 576 to 9000, not a string"},

		// Tunnel peers.
		{name: "tunnel peer unknown field", yaml: withPeer("endPoint: gw:1"), line: 10, col: 9, path: "tunnels[0].peers[0].endPoint", msg: "valid fields are name, publicKey, presharedKeyFile, endpoint, allowedIPs, persistentKeepalive"},
		{name: "public key missing", yaml: withTunnel("peers: [{name: gw, allowedIPs: [10.0.0.0/24]}]"), line: 6, col: 13, path: "tunnels[0].peers[0].publicKey", msg: "required field is missing"},
		{name: "public key invalid", yaml: withTunnel("peers: [{name: gw, publicKey: c2VjcmV0LWtleS1tYXRlcmlhbA==, allowedIPs: [10.0.0.0/24]}]"), line: 6, col: 35, path: "tunnels[0].peers[0].publicKey", msg: "not a valid base64 WireGuard key of 32 bytes"},
		{name: "public key with bad padding", yaml: withTunnel("peers: [{name: gw, publicKey: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dh=, allowedIPs: [10.0.0.0/24]}]"), line: 6, col: 35, path: "tunnels[0].peers[0].publicKey", msg: "not a valid base64 WireGuard key"},
		{
			name: "duplicate public key",
			yaml: withSecondPeer("{name: gw2, publicKey: " + testKey + ", allowedIPs: [10.0.1.0/24]}"),
			line: 10, col: 32, path: "tunnels[0].peers[1].publicKey", msg: "the same public key is used by the peer at policy.yaml:8",
		},
		{
			name: "duplicate peer name",
			yaml: withSecondPeer("{name: gw, publicKey: " + otherKey + ", allowedIPs: [10.0.1.0/24]}"),
			line: 10, col: 16, path: "tunnels[0].peers[1].name", msg: `duplicate peer name "gw"; it is first defined at policy.yaml:7`,
		},
		{
			name: "allowed IP of two peers",
			yaml: withSecondPeer("{name: gw2, publicKey: " + otherKey + ", allowedIPs: [10.0.0.0/24]}"),
			line: 10, col: 91, path: "tunnels[0].peers[1].allowedIPs[0]", msg: "10.0.0.0/24 is already an allowed IP at policy.yaml:9; WireGuard routes it to one peer only",
		},
		{name: "peer name invalid", yaml: withTunnel("peers: [{name: GW, publicKey: " + testKey + ", allowedIPs: [10.0.0.0/24]}]"), line: 6, col: 20, path: "tunnels[0].peers[0].name", msg: `"GW" is not a valid name`},
		{name: "endpoint without port", yaml: withPeer("endpoint: gw.example.com"), line: 10, col: 19, path: "tunnels[0].peers[0].endpoint", msg: `"gw.example.com" is not a valid endpoint; write HOST:PORT or [IPV6]:PORT`},
		{name: "endpoint port zero", yaml: withPeer("endpoint: gw.example.com:0"), line: 10, col: 19, path: "tunnels[0].peers[0].endpoint", msg: `endpoint port "0" is not valid; it must be 1 to 65535`},
		{name: "endpoint port too large", yaml: withPeer("endpoint: 192.0.2.1:65536"), line: 10, col: 19, path: "tunnels[0].peers[0].endpoint", msg: `endpoint port "65536" is not valid`},
		{name: "endpoint bad host", yaml: withPeer("endpoint: gw_1.example:51820"), line: 10, col: 19, path: "tunnels[0].peers[0].endpoint", msg: `endpoint host "gw_1.example" is neither an IP address nor a DNS name`},
		{name: "endpoint bad IPv4", yaml: withPeer("endpoint: 192.0.2.256:51820"), line: 10, col: 19, path: "tunnels[0].peers[0].endpoint", msg: "is neither an IP address nor a DNS name"},
		{name: "endpoint IPv6 without brackets", yaml: withPeer("endpoint: \"2001:db8::1:51820\""), line: 10, col: 19, path: "tunnels[0].peers[0].endpoint", msg: "[IPV6]:PORT"},
		{name: "allowedIPs host bits", yaml: withTunnel("peers: [{name: gw, publicKey: " + testKey + ", allowedIPs: [10.0.0.1/24]}]"), line: 6, col: 94, path: "tunnels[0].peers[0].allowedIPs[0]", msg: "did you mean 10.0.0.0/24?"},
		{name: "allowedIPs empty", yaml: withTunnel("peers: [{name: gw, publicKey: " + testKey + ", allowedIPs: []}]"), line: 6, col: 93, path: "tunnels[0].peers[0].allowedIPs", msg: "a peer needs at least one allowed IP"},
		{name: "allowedIPs missing", yaml: withTunnel("peers: [{name: gw, publicKey: " + testKey + "}]"), line: 6, col: 13, path: "tunnels[0].peers[0].allowedIPs", msg: "required field is missing; list the networks routed to this peer"},
		{name: "allowedIPs default route", yaml: withTunnel("peers: [{name: gw, publicKey: " + testKey + ", allowedIPs: [0.0.0.0/0]}]"), line: 6, col: 94, path: "tunnels[0].peers[0].allowedIPs[0]", msg: "0.0.0.0/0 would route all IPv4 traffic into the tunnel: its route would take over the host's default route, and with it the tunnel's own packets to the peer and remote management; full-tunnel routing (wg-quick's fwmark and policy routing) is not supported, so list the cluster's prefixes instead, like 10.0.0.0/8"},
		{name: "allowedIPs IPv6 default route", yaml: withTunnel("peers: [{name: gw, publicKey: " + testKey + ", allowedIPs: [10.0.0.0/24, \"::/0\"]}]"), line: 6, col: 107, path: "tunnels[0].peers[0].allowedIPs[1]", msg: "::/0 would route all IPv6 traffic into the tunnel: its route would take over the host's default route, and with it the tunnel's own packets to the peer and remote management; full-tunnel routing (wg-quick's fwmark and policy routing) is not supported, so list the cluster's prefixes instead, like fd00::/8"},
		{name: "allowedIPs contain the endpoint", yaml: withPeer("endpoint: 10.0.0.1:51820"), line: 9, col: 22, path: "tunnels[0].peers[0].allowedIPs[0]", msg: "allowedIPs 10.0.0.0/24 contains the endpoint 10.0.0.1; the tunnel's own UDP packets to the peer would be routed into the tunnel"},
		{name: "allowedIPs contain the IPv6 endpoint", yaml: withTunnel("peers: [{name: gw, publicKey: " + testKey + ", endpoint: \"[fd00::1]:51820\", allowedIPs: [\"fd00::/64\"]}]"), line: 6, col: 123, path: "tunnels[0].peers[0].allowedIPs[0]", msg: "allowedIPs fd00::/64 contains the endpoint fd00::1;"},
		{name: "allowedIPs contain the IPv4-mapped endpoint", yaml: withPeer("endpoint: \"[::ffff:10.0.0.1]:51820\""), line: 9, col: 22, path: "tunnels[0].peers[0].allowedIPs[0]", msg: "allowedIPs 10.0.0.0/24 contains the endpoint 10.0.0.1;"},
		{name: "keepalive not a duration", yaml: withPeer("persistentKeepalive: 25x"), line: 10, col: 30, path: "tunnels[0].peers[0].persistentKeepalive", msg: `"25x" is not a duration`},
		{name: "keepalive too long", yaml: withPeer("persistentKeepalive: 24h"), line: 10, col: 30, path: "tunnels[0].peers[0].persistentKeepalive", msg: "24h0m0s is out of range"},
		{name: "keepalive fraction", yaml: withPeer("persistentKeepalive: 1.5s"), line: 10, col: 30, path: "tunnels[0].peers[0].persistentKeepalive", msg: "1.5s is not a whole number of seconds"},
		{name: "keepalive seconds out of range", yaml: withPeer("persistentKeepalive: 70000"), line: 10, col: 30, path: "tunnels[0].peers[0].persistentKeepalive", msg: "persistentKeepalive 70000 is out of range; valid values are 0 to 65535"},
		{name: "keepalive negative", yaml: withPeer("persistentKeepalive: -1s"), line: 10, col: 30, path: "tunnels[0].peers[0].persistentKeepalive", msg: "-1s is out of range"},
		{name: "keepalive boolean", yaml: withPeer("persistentKeepalive: true"), line: 10, col: 30, path: "tunnels[0].peers[0].persistentKeepalive", msg: "must be a duration or a number of seconds, not a boolean"},
	}
}

func TestRejections(t *testing.T) {
	for _, tc := range rejectionCases() {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			file := filepath.Join(dir, "policy.yaml")
			p, err := Parse(file, []byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse accepted the policy: %+v", p)
			}
			wantFile := file
			if tc.file != "" {
				wantFile = filepath.Join(dir, tc.file)
			}
			want := tc
			want.msg = strings.ReplaceAll(tc.msg, "policy.yaml:", file+":")
			checkHasError(t, err, wantFile, want)
		})
	}
}

// checkHasError checks that err is an ErrorList with want.errors errors (one
// if zero), one of them at want's position and path with want's message.
func checkHasError(t *testing.T, err error, file string, want rejection) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is a %T, not an ErrorList: %v", err, err)
	}
	n := max(want.errors, 1)
	if len(list) != n {
		t.Errorf("got %d errors, want %d:\n%v", len(list), n, err)
	}
	for _, e := range list {
		if e.Pos.File == file && e.Pos.Line == want.line && e.Pos.Col == want.col && e.Path == want.path && strings.Contains(e.Msg, want.msg) {
			return
		}
	}
	t.Errorf("no error %s:%d:%d: %s: ...%s...; got:\n%v", file, want.line, want.col, want.path, want.msg, err)
}
