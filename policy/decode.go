package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Field names of each mapping, in the order the messages list them.
var (
	topFields       = []string{"version", "defaults", "failsafe", "sets", "rules", "tunnels"}
	dropInFields    = []string{"version", "sets", "rules", "tunnels"}
	defaultsFields  = []string{"input", "forward", "output"}
	setFileFields   = []string{"file"}
	ruleFields      = []string{"name", "direction", "from", "to", "ports", "action", "log", "family", "limit", "connLimit"}
	peerFields      = []string{"cidr", "except", "set", "interface"}
	portFields      = []string{"protocol", "port", "endPort"}
	limitFields     = []string{"rate", "burst", "perSource"}
	connLimitFields = []string{"max", "perSource"}
)

// dropInOnlyMain explains why a drop-in may not hold these top-level fields:
// the host-wide verdicts and the anti-lockout ports have one owner.
var dropInOnlyMain = map[string]string{
	"defaults": "only the main policy file may set defaults; move this to the main policy file",
	"failsafe": "only the main policy file may set failsafe; move this to the main policy file",
}

// top decodes the root mapping of a main file or drop-in.
func (d *decoder) top(root *yaml.Node, main bool) {
	fields, misplaced := topFields, map[string]string(nil)
	if !main {
		fields, misplaced = dropInFields, dropInOnlyMain
	}
	m := d.mapping(root, "", fields, misplaced)
	if main {
		var defaults, failsafe *yaml.Node
		if m != nil {
			defaults, failsafe = m.get("defaults"), m.get("failsafe")
		}
		d.l.policy.Defaults = d.defaults(defaults)
		d.l.policy.Failsafe = d.failsafe(failsafe)
	}
	if m == nil {
		return
	}
	if main {
		if v := d.require(m, "version", "start the file with version: 1"); v != nil {
			d.version(v)
		}
	} else if v := m.get("version"); v != nil {
		d.version(v)
	}
	if v := m.get("sets"); v != nil {
		d.sets(v)
	}
	if v := m.get("rules"); v != nil {
		d.rules(v)
	}
	if v := m.get("tunnels"); v != nil {
		d.tunnels(v)
	}
}

func (d *decoder) version(n *yaml.Node) {
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		d.errorf(n, "version", "must be the integer 1, not %s", describe(n))
		return
	}
	if v != 1 {
		d.errorf(n, "version", "version %s is not supported; the only valid version is 1", n.Value)
	}
}

// defaults decodes the default verdicts; n may be nil (absent).
func (d *decoder) defaults(n *yaml.Node) Defaults {
	def := Defaults{Input: Drop, Forward: Accept, Output: Accept}
	if n == nil {
		return def
	}
	m := d.mapping(n, "defaults", defaultsFields, nil)
	if m == nil {
		return def
	}
	for _, f := range []struct {
		name string
		dst  *Action
	}{{"input", &def.Input}, {"forward", &def.Forward}, {"output", &def.Output}} {
		if v := m.get(f.name); v != nil {
			if s, ok := d.enum(v, "defaults."+f.name, "default verdict", string(Accept), string(Drop)); ok {
				*f.dst = Action(s)
			}
		}
	}
	return def
}

// failsafe decodes the anti-lockout ports; n may be nil (absent: tcp/22).
func (d *decoder) failsafe(n *yaml.Node) []PortRange {
	if n == nil {
		return []PortRange{{Protocol: TCP, Port: 22, EndPort: 22}}
	}
	items, _ := d.list(n, "failsafe", "ports like {protocol: tcp, port: 22}")
	ports := []PortRange{}
	for i, item := range items {
		if p, _, ok := d.portEntry(item, indexPath("failsafe", i), true); ok {
			ports = append(ports, p)
		}
	}
	return ports
}

// sets decodes the sets mapping: NAME: [CIDR, ...] or NAME: {file: PATH}.
func (d *decoder) sets(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "sets", "must be a mapping of set names to lists of CIDRs or {file: PATH}, not %s", describe(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "sets", "a set name must be a name, not %s", describe(k))
			continue
		}
		name, path := k.Value, joinPath("sets", k.Value)
		if err := checkName(name, maxNameLen); err != nil {
			d.errorf(k, path, "%v", err)
		}
		// A duplicate's members are not checked: the set is refused anyway.
		if !d.l.define(d.l.setDefs, "set", name, d.pos(k), path) {
			continue
		}
		set := Set{Name: name, Pos: d.pos(k)}
		switch v.Kind {
		case yaml.SequenceNode:
			seen := map[netip.Prefix]bool{}
			for j, e := range v.Content {
				if p, ok := d.prefix(e, indexPath(path, j), false); ok {
					set.Prefixes = appendUnique(set.Prefixes, seen, p)
				}
			}
		case yaml.MappingNode:
			m := d.mapping(v, path, setFileFields, nil)
			if m == nil {
				break
			}
			if f := d.require(m, "file", "write {file: PATH}, PATH relative to this file"); f != nil {
				d.readSetFile(&set, f, joinPath(path, "file"))
			}
		default:
			d.errorf(v, path, "must be a list of CIDRs like [10.0.0.0/8] or {file: PATH}, not %s", describe(v))
		}
		d.l.policy.Sets = append(d.l.policy.Sets, set)
	}
}

// prefix decodes a CIDR string; see parsePrefix.
func (d *decoder) prefix(n *yaml.Node, path string, hostBits bool) (netip.Prefix, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := parsePrefix(s, hostBits)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return netip.Prefix{}, false
	}
	return p, true
}

func (d *decoder) rules(n *yaml.Node) {
	items, _ := d.list(n, "rules", "rules")
	for i, item := range items {
		if r, ok := d.rule(item, indexPath("rules", i)); ok {
			d.l.policy.Rules = append(d.l.policy.Rules, r)
		}
	}
}

// rule decodes one rule.
func (d *decoder) rule(n *yaml.Node, path string) (Rule, bool) {
	m := d.mapping(n, path, ruleFields, nil)
	if m == nil {
		return Rule{}, false
	}
	r := Rule{Pos: d.pos(n)}
	if v := d.require(m, "name", "name the rule like ssh-from-mgmt; the name is also its counter's name"); v != nil {
		r.Name = d.name(v, joinPath(path, "name"), maxNameLen)
		if r.Name != "" {
			d.l.define(d.l.ruleDefs, "rule", r.Name, d.pos(v), joinPath(path, "name"))
		}
	}
	if v := d.require(m, "direction", "valid values are input, output, forward"); v != nil {
		s, _ := d.enum(v, joinPath(path, "direction"), "direction", string(Input), string(Output), string(Forward))
		r.Direction = Direction(s)
	}
	if v := d.require(m, "action", "valid values are accept, drop, reject"); v != nil {
		s, _ := d.enum(v, joinPath(path, "action"), "action", string(Accept), string(Drop), string(Reject))
		r.Action = Action(s)
	}

	var groups [3]famGroup
	if v := d.matchList(m, "from", path, "any source", "peer, like [{cidr: 10.0.0.0/8}]"); v != nil {
		r.From, groups[0] = d.peers(v, joinPath(path, "from"), "from", r.Direction)
	}
	if v := d.matchList(m, "to", path, "any destination", "peer, like [{cidr: 10.0.0.0/8}]"); v != nil {
		r.To, groups[1] = d.peers(v, joinPath(path, "to"), "to", r.Direction)
	}
	if v := d.matchList(m, "ports", path, "any protocol and port", "entry, like [{protocol: tcp, port: 22}]"); v != nil {
		p := joinPath(path, "ports")
		items, _ := d.list(v, p, "ports like {protocol: tcp, port: 22}")
		groups[2] = famGroup{name: "ports", node: v, path: p}
		for i, item := range items {
			pr, fam, ok := d.portEntry(item, indexPath(p, i), false)
			if ok {
				r.Ports = append(r.Ports, pr)
			}
			groups[2].entries = append(groups[2].entries, fam)
		}
	}
	if v := m.get("log"); v != nil {
		r.Log, _ = d.boolean(v, joinPath(path, "log"))
	}
	var family *yaml.Node
	if v := m.get("family"); v != nil {
		s, ok := d.enum(v, joinPath(path, "family"), "family", string(IPv4), string(IPv6))
		if ok {
			r.Family, family = Family(s), v
		}
	}
	if v := m.get("limit"); v != nil {
		r.Limit = d.limit(v, joinPath(path, "limit"))
	}
	if v := m.get("connLimit"); v != nil {
		r.ConnLimit = d.connLimit(v, joinPath(path, "connLimit"))
	}
	r.Family = d.family(r.Family, family, groups)
	return r, true
}

// matchList returns the value of a rule's from, to or ports field, or nil
// if the field is absent or refused. Only an absent field matches all: a
// field written as [] or with no value is refused, because it is what is
// left when the last entry is deleted or commented out, and reading it as
// "match all" would silently turn, say, an accept from the management
// network into an accept from anywhere. all says what the absent field
// matches and entry what to list instead.
func (d *decoder) matchList(m *mapping, field, rulePath, all, entry string) *yaml.Node {
	v, ok := m.values[field]
	if !ok {
		return nil
	}
	path := joinPath(rulePath, field)
	switch {
	case isNull(v):
		d.errorf(m.keys[field], path, "no value; remove the field to match %s, or list at least one %s", all, entry)
		return nil
	case v.Kind == yaml.SequenceNode && len(v.Content) == 0:
		d.errorf(v, path, "empty list; remove the field to match %s, or list at least one %s", all, entry)
		return nil
	}
	return v
}

// name decodes a rule, set, tunnel or peer name, or returns "".
func (d *decoder) name(n *yaml.Node, path string, maxLen int) string {
	s, ok := d.str(n, path)
	if !ok {
		return ""
	}
	if err := checkName(s, maxLen); err != nil {
		d.errorf(n, path, "%v", err)
		return ""
	}
	return s
}

// peers decodes a rule's from or to list (side) in a rule of direction dir.
func (d *decoder) peers(n *yaml.Node, path, side string, dir Direction) ([]Peer, famGroup) {
	g := famGroup{name: side, node: n, path: path}
	items, _ := d.list(n, path, "peers like {cidr: 10.0.0.0/8}, {set: NAME} or {interface: eth0}")
	var peers []Peer
	for i, item := range items {
		p, fam, ok := d.peer(item, indexPath(path, i), side, dir)
		if ok {
			peers = append(peers, p)
		}
		g.entries = append(g.entries, fam)
	}
	return peers, g
}

// peer decodes one entry of a from or to list.
func (d *decoder) peer(n *yaml.Node, path, side string, dir Direction) (Peer, famEntry, bool) {
	fam := famEntry{fam: famBoth, node: n, path: path}
	m := d.mapping(n, path, peerFields, nil)
	if m == nil {
		return Peer{}, fam, false
	}
	var kinds []string
	for _, k := range []string{"cidr", "set", "interface"} {
		if m.get(k) != nil {
			kinds = append(kinds, k)
		}
	}
	const exactlyOne = "a peer is exactly one of cidr (with optional except), set or interface"
	switch len(kinds) {
	case 0:
		d.errorf(n, path, "%s; this one has none", exactlyOne)
		return Peer{}, fam, false
	case 1:
	default:
		d.errorf(n, path, "%s; this one has %s, so split it into one peer for each", exactlyOne, strings.Join(kinds, " and "))
		return Peer{}, fam, false
	}
	if kinds[0] != "cidr" && m.get("except") != nil {
		d.errorf(m.keys["except"], joinPath(path, "except"), "except is only valid with cidr; remove it or use {cidr: ..., except: [...]}")
		return Peer{}, fam, false
	}

	var p Peer
	switch v := m.get(kinds[0]); kinds[0] {
	case "cidr":
		cidr, ok := d.prefix(v, joinPath(path, "cidr"), false)
		if !ok {
			return Peer{}, fam, false
		}
		p.CIDR = cidr
		fam = famEntry{fam: prefixFam(cidr), node: v, path: joinPath(path, "cidr"), what: "cidr " + cidr.String()}
		if e := m.get("except"); e != nil {
			p.Except = d.excepts(e, joinPath(path, "except"), cidr)
		}
	case "set":
		name, ok := d.str(v, joinPath(path, "set"))
		if !ok {
			return Peer{}, fam, false
		}
		p.Set = name
		d.l.setRefs = append(d.l.setRefs, setRef{name: name, pos: d.pos(v), path: joinPath(path, "set")})
	case "interface":
		name, ok := d.str(v, joinPath(path, "interface"))
		if !ok {
			return Peer{}, fam, false
		}
		if err := checkInterface(name); err != nil {
			d.errorf(v, joinPath(path, "interface"), "%v", err)
			return Peer{}, fam, false
		}
		// Output packets have no input interface and input packets no output
		// interface yet (routing has not happened), so such a match is empty.
		switch {
		case side == "from" && dir == Output:
			d.errorf(v, joinPath(path, "interface"), "an output rule's packets have no input interface; match the output interface with to: [{interface: %s}]", name)
			return Peer{}, fam, false
		case side == "to" && dir == Input:
			d.errorf(v, joinPath(path, "interface"), "an input rule's packets have no output interface; match the input interface with from: [{interface: %s}]", name)
			return Peer{}, fam, false
		}
		p.Interface = name
	}
	return p, fam, true
}

// excepts decodes the except list of a cidr peer: each a strict subnet of cidr.
func (d *decoder) excepts(n *yaml.Node, path string, cidr netip.Prefix) []netip.Prefix {
	items, _ := d.list(n, path, "CIDRs inside the peer's cidr")
	var out []netip.Prefix
	for i, item := range items {
		p, ok := d.prefix(item, indexPath(path, i), false)
		if !ok {
			continue
		}
		switch {
		case p.Addr().Is4() != cidr.Addr().Is4():
			d.errorf(item, indexPath(path, i), "%s is %s but cidr %s is %s; an except must lie inside the cidr", p, familyName(p.Addr()), cidr, familyName(cidr.Addr()))
		case p == cidr:
			d.errorf(item, indexPath(path, i), "%s is the cidr itself, so the peer would match nothing; an except must be a smaller network inside the cidr", p)
		case p.Bits() < cidr.Bits() || !cidr.Contains(p.Addr()):
			d.errorf(item, indexPath(path, i), "%s is not inside cidr %s; an except must be a smaller network inside the cidr", p, cidr)
		default:
			out = append(out, p)
		}
	}
	return out
}

// portEntry decodes one ports or failsafe entry. Failsafe entries must name
// a port: "every tcp port" would leave input wide open before any rule.
func (d *decoder) portEntry(n *yaml.Node, path string, failsafe bool) (PortRange, famEntry, bool) {
	fam := famEntry{fam: famBoth, node: n, path: path}
	m := d.mapping(n, path, portFields, nil)
	if m == nil {
		return PortRange{}, fam, false
	}
	protocols := []string{string(TCP), string(UDP), string(SCTP), string(ICMP), string(ICMPv6)}
	if failsafe {
		protocols = protocols[:3]
	}
	v := d.require(m, "protocol", "every ports entry needs a protocol; valid values are "+strings.Join(protocols, ", "))
	if v == nil {
		return PortRange{}, fam, false
	}
	proto, ok := d.enum(v, joinPath(path, "protocol"), "protocol", protocols...)
	if !ok {
		return PortRange{}, fam, false
	}
	pr := PortRange{Protocol: Protocol(proto)}
	portNode, endNode := m.get("port"), m.get("endPort")

	if !pr.Protocol.HasPorts() {
		fam = famEntry{fam: famV4, node: v, path: joinPath(path, "protocol"), what: proto}
		if pr.Protocol == ICMPv6 {
			fam.fam = famV6
		}
		ok := true
		for _, f := range []struct {
			name string
			n    *yaml.Node
		}{{"port", portNode}, {"endPort", endNode}} {
			if f.n != nil {
				d.errorf(f.n, joinPath(path, f.name), "%s has no ports; remove %s, or use tcp, udp or sctp", proto, f.name)
				ok = false
			}
		}
		return pr, fam, ok
	}

	if portNode == nil {
		switch {
		case failsafe:
			d.errorf(n, joinPath(path, "port"), "required field is missing; a failsafe entry opens one port or range, like {protocol: tcp, port: 22}")
			return pr, fam, false
		case endNode != nil:
			d.errorf(endNode, joinPath(path, "endPort"), "endPort needs port; write a range as port: FIRST, endPort: LAST")
			return pr, fam, false
		}
		return pr, fam, true // every port of the protocol
	}
	port, ok := d.port(portNode, joinPath(path, "port"))
	if !ok {
		return pr, fam, false
	}
	pr.Port, pr.EndPort = port, port
	if endNode != nil {
		end, ok := d.port(endNode, joinPath(path, "endPort"))
		if !ok {
			return pr, fam, false
		}
		if end < port {
			d.errorf(endNode, joinPath(path, "endPort"), "endPort %d is less than port %d; endPort must be at least port", end, port)
			return pr, fam, false
		}
		pr.EndPort = end
	}
	return pr, fam, true
}

// port decodes a port number, 1 to 65535.
func (d *decoder) port(n *yaml.Node, path string) (uint16, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		// "22" and "30000-32767" are common slips; say how to write them.
		hint := "write the number without quotes"
		if first, last, ok := strings.Cut(n.Value, "-"); ok {
			hint = fmt.Sprintf("write a range as port: %s, endPort: %s", strings.TrimSpace(first), strings.TrimSpace(last))
		}
		d.errorf(n, path, "must be an integer from 1 to 65535, not a string; %s", hint)
		return 0, false
	}
	v, ok := d.integer(n, path, "port", 1, maxUint16)
	return uint16(v), ok
}

// limit decodes a rule's packet rate limit.
func (d *decoder) limit(n *yaml.Node, path string) *Limit {
	m := d.mapping(n, path, limitFields, nil)
	if m == nil {
		return nil
	}
	var l Limit
	if v := d.require(m, "rate", "write a rate like 100/minute"); v != nil {
		l.Rate, l.Per, _ = d.rate(v, joinPath(path, "rate"))
	}
	if v := m.get("burst"); v != nil {
		b, _ := d.integer(v, joinPath(path, "burst"), "burst", 0, maxUint32)
		l.Burst = uint32(b)
	}
	if v := m.get("perSource"); v != nil {
		l.PerSource, _ = d.boolean(v, joinPath(path, "perSource"))
	}
	return &l
}

// rateUnits are the units nftables' limit statement accepts.
var rateUnits = []string{"second", "minute", "hour", "day"}

// rate decodes COUNT/UNIT.
func (d *decoder) rate(n *yaml.Node, path string) (uint64, string, bool) {
	const valid = "write COUNT/UNIT with UNIT one of second, minute, hour, day, like 100/minute"
	s, ok := d.str(n, path)
	if !ok {
		return 0, "", false
	}
	count, unit, _ := strings.Cut(s, "/")
	rate, err := strconv.ParseUint(count, 10, 64)
	if err != nil || !slices.Contains(rateUnits, unit) {
		d.errorf(n, path, "%q is not a valid rate; %s", s, valid)
		return 0, "", false
	}
	if rate == 0 {
		d.errorf(n, path, "a rate of 0 would drop every packet; the count must be at least 1, or use action: drop")
		return 0, "", false
	}
	return rate, unit, true
}

// connLimit decodes a rule's concurrent connection limit.
func (d *decoder) connLimit(n *yaml.Node, path string) *ConnLimit {
	m := d.mapping(n, path, connLimitFields, nil)
	if m == nil {
		return nil
	}
	var c ConnLimit
	if v := d.require(m, "max", "write the most concurrent connections allowed, like max: 10"); v != nil {
		v, _ := d.integer(v, joinPath(path, "max"), "max", 1, maxUint32)
		c.Max = uint32(v)
	}
	if v := m.get("perSource"); v != nil {
		c.PerSource, _ = d.boolean(v, joinPath(path, "perSource"))
	}
	return &c
}
