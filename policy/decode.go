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
	ruleFields      = []string{"name", "direction", "from", "to", "ports", "action", "mode", "log", "family", "limit", "connLimit"}
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
	d.check(n, "version", checkVersion(v))
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
			if s, ok := d.enum(v, "defaults."+f.name, "default verdict", verdicts); ok {
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
		d.check(k, path, checkName(name, maxNameLen))
		// A duplicate's members are not checked: the set is refused anyway.
		if !d.check(k, path, define(d.l.sets, "set", name, d.site(k, path))) {
			continue
		}
		set := Set{Name: name, Pos: d.pos(k)}
		switch v.Kind {
		case yaml.SequenceNode:
			seen := newPrefixSeen(len(v.Content))
			for j, e := range v.Content {
				if p, ok := d.prefix(e, indexPath(path, j), checkNetwork); ok {
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

// prefix decodes a CIDR string and holds it to check, the rule for the
// field it is in (checkNetwork, checkTunnelAddress, ...).
func (d *decoder) prefix(n *yaml.Node, path string, check func(netip.Prefix) error) (netip.Prefix, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := parseCIDR(s)
	if err == nil {
		err = check(p)
	}
	if !d.check(n, path, err) {
		return netip.Prefix{}, false
	}
	return p, true
}

func (d *decoder) rules(n *yaml.Node) {
	items, _ := d.list(n, "rules", "rules")
	// A rule is some 200 bytes: growing the list by appending copied
	// them over and over (a third of decoding 10,000 rules).
	d.l.policy.Rules = slices.Grow(d.l.policy.Rules, len(items))
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
		p := joinPath(path, "name")
		if r.Name = d.name(v, p, maxNameLen); r.Name != "" {
			d.check(v, p, define(d.l.rules, "rule", r.Name, d.site(v, p)))
		}
	}
	if v := d.require(m, "direction", "valid values are input, output, forward"); v != nil {
		s, _ := d.enum(v, joinPath(path, "direction"), "direction", directions)
		r.Direction = Direction(s)
	}
	if v := d.require(m, "action", "valid values are accept, drop, reject"); v != nil {
		s, _ := d.enum(v, joinPath(path, "action"), "action", actions)
		r.Action = Action(s)
	}
	r.Mode = Enforce
	if v := m.get("mode"); v != nil {
		p := joinPath(path, "mode")
		if s, ok := d.str(v, p); ok && d.check(v, p, checkMode(s, r.Action)) {
			r.Mode = Mode(s)
		}
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
		groups[2] = famGroup{name: "ports", at: d.site(v, p)}
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
	var familyAt site
	if v := m.get("family"); v != nil {
		p := joinPath(path, "family")
		if s, ok := d.enum(v, p, "family", families); ok {
			r.Family, familyAt = Family(s), d.site(v, p)
		}
	}
	if v := m.get("limit"); v != nil {
		r.Limit = d.limit(v, joinPath(path, "limit"))
	}
	if v := m.get("connLimit"); v != nil {
		r.ConnLimit = d.connLimit(v, joinPath(path, "connLimit"))
	}
	r.Family = ruleFamily(r.Family, familyAt, groups, d.l.report)
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
	k, v := m.lookup(field)
	if v == nil {
		return nil
	}
	path := joinPath(rulePath, field)
	switch {
	case isNull(v):
		d.errorf(k, path, "no value; remove the field to match %s, or list at least one %s", all, entry)
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
	if !ok || !d.check(n, path, checkName(s, maxLen)) {
		return ""
	}
	return s
}

// peers decodes a rule's from or to list (side) in a rule of direction dir.
func (d *decoder) peers(n *yaml.Node, path, side string, dir Direction) ([]Peer, famGroup) {
	g := famGroup{name: side, at: d.site(n, path)}
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
	fam := famEntry{fam: famBoth, at: d.site(n, path)}
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
	exceptKey, _ := m.lookup("except")
	bad := d.fields(n, path, map[string]*yaml.Node{"except": exceptKey})
	if !checkPeerKinds(kinds, m.get("except") != nil, bad) {
		return Peer{}, fam, false
	}

	var p Peer
	v := m.get(kinds[0])
	vp := joinPath(path, kinds[0])
	switch kinds[0] {
	case "cidr":
		cidr, ok := d.prefix(v, vp, checkNetwork)
		if !ok {
			return Peer{}, fam, false
		}
		p.CIDR = cidr
		fam = famEntry{fam: prefixFam(cidr), at: d.site(v, vp), what: "cidr " + cidr.String()}
		if e := m.get("except"); e != nil {
			p.Except = d.excepts(e, joinPath(path, "except"), cidr)
		}
	case "set":
		name, ok := d.str(v, vp)
		if !ok {
			return Peer{}, fam, false
		}
		p.Set = name
		d.l.setRefs = append(d.l.setRefs, setRef{name: name, at: d.site(v, vp)})
	case "interface":
		name, ok := d.str(v, vp)
		if !ok || !d.check(v, vp, checkPeerInterface(name, side, dir)) {
			return Peer{}, fam, false
		}
		p.Interface = name
	}
	return p, fam, true
}

// excepts decodes the except list of a cidr peer.
func (d *decoder) excepts(n *yaml.Node, path string, cidr netip.Prefix) []netip.Prefix {
	items, _ := d.list(n, path, "CIDRs inside the peer's cidr")
	inside := func(p netip.Prefix) error { return checkExcept(p, cidr) }
	var out []netip.Prefix
	for i, item := range items {
		if p, ok := d.prefix(item, indexPath(path, i), inside); ok {
			out = append(out, p)
		}
	}
	return out
}

// portEntry decodes one ports or failsafe entry.
func (d *decoder) portEntry(n *yaml.Node, path string, failsafe bool) (PortRange, famEntry, bool) {
	fam := famEntry{fam: famBoth, at: d.site(n, path)}
	m := d.mapping(n, path, portFields, nil)
	if m == nil {
		return PortRange{}, fam, false
	}
	valid := protocols
	if failsafe {
		valid = failsafeProtocols
	}
	v := d.require(m, "protocol", "every ports entry needs a protocol; valid values are "+strings.Join(valid, ", "))
	if v == nil {
		return PortRange{}, fam, false
	}
	pp := joinPath(path, "protocol")
	proto, ok := d.str(v, pp)
	if !ok || !d.check(v, pp, checkProtocol(proto, failsafe)) {
		return PortRange{}, fam, false
	}
	portNode, endNode := m.get("port"), m.get("endPort")
	e := portEntry{proto: Protocol(proto), hasPort: portNode != nil, hasEnd: endNode != nil}
	if e.proto.HasPorts() {
		if e.hasPort {
			if e.port, ok = d.port(portNode, joinPath(path, "port")); !ok {
				return PortRange{}, fam, false
			}
		}
		if e.hasEnd {
			if e.end, ok = d.port(endNode, joinPath(path, "endPort")); !ok {
				return PortRange{}, fam, false
			}
		}
	} else {
		fam = famEntry{fam: protocolFam(e.proto), at: d.site(v, pp), what: proto}
	}
	if !e.check(failsafe, d.fields(n, path, map[string]*yaml.Node{"port": portNode, "endPort": endNode})) {
		return PortRange{}, fam, false
	}
	return e.portRange(), fam, true
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
	v, ok := d.integer(n, path, portRange)
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
		b, _ := d.integer(v, joinPath(path, "burst"), burstRange)
		l.Burst = uint32(b)
	}
	if v := m.get("perSource"); v != nil {
		l.PerSource, _ = d.boolean(v, joinPath(path, "perSource"))
	}
	return &l
}

// rate decodes COUNT/UNIT.
func (d *decoder) rate(n *yaml.Node, path string) (uint64, string, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return 0, "", false
	}
	count, unit, _ := strings.Cut(s, "/")
	rate, err := strconv.ParseUint(count, 10, 64)
	if err != nil {
		err = badRate(s)
	} else {
		err = checkRate(rate, unit, s)
	}
	if !d.check(n, path, err) {
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
		v, _ := d.integer(v, joinPath(path, "max"), connMaxRange)
		c.Max = uint32(v)
	}
	if v := m.get("perSource"); v != nil {
		c.PerSource, _ = d.boolean(v, joinPath(path, "perSource"))
	}
	return &c
}
