package policy

import (
	"fmt"
	"net/netip"
	"path/filepath"
)

// Validate checks a Policy that Load or Parse did not return, one built in
// code or decoded from JSON (the daemon's saved state, the request of an
// older edgefwctl), with the checks Load makes on what it reads, so that
// every way into the kernel passes the same checks. Load and Parse share
// them with Validate (check.go); what only YAML can get wrong (types,
// unknown fields, empty lists) has no counterpart in a Policy. Validate
// also holds a Policy to what Load guarantees by construction: version 1,
// the three defaults set, key files named by absolute paths. The zero
// values of Family (Any), Backend (auto) and Mode (enforce) are valid.
//
// It returns nil or an ErrorList in the order of the policy's fields, the
// undefined sets last. Each Error's Path names the field (the index of a
// rule or tunnel counts within its file, as Load's errors do, so in a
// policy built in code it is the index in the Policy). Its Pos is that of
// the nearest set, rule, tunnel, tunnel peer or key file that carries one:
// a policy read from files keeps them, one built in code has none, and its
// errors read "rules[2].ports[0].endPort: message".
//
// Validate does not change p: a valid policy is applied as it is.
func Validate(p *Policy) error {
	if p == nil {
		return ErrorList{{Msg: "no policy"}}
	}
	v := &validator{l: newLoader(nil), rules: map[string]int{}, tunnels: map[string]int{}}
	v.policy(p)
	v.l.undefinedSets(p.Sets, v.l.report)
	if len(v.l.errs) == 0 {
		return nil
	}
	return v.l.errorList()
}

// validator walks a Policy and reports to its loader, whose scope and
// error list the decoder uses too.
type validator struct {
	l *loader
	// rules and tunnels count the rules and tunnels seen in each file.
	rules, tunnels map[string]int
}

// check reports err, if it is not nil, at the site and says whether it was
// nil.
func (v *validator) check(at site, err error) bool {
	if err == nil {
		return true
	}
	v.l.report(at, err)
	return false
}

// fields returns a report for a check of the value at the site: a problem
// with a field is reported at the field's path, at the value's position.
func (v *validator) fields(at site) report {
	return func(field string, err error) { v.check(at.field(field), err) }
}

// nextIn returns the index of the next rule or tunnel of file, counting in
// counts. A policy built in code is one file without a name.
func nextIn(counts map[string]int, file string) int {
	i := counts[file]
	counts[file]++
	return i
}

// posOr returns pos if it is a position in a file, else outer.
func posOr(pos, outer Pos) Pos {
	if pos.Line > 0 {
		return pos
	}
	return outer
}

func (v *validator) policy(p *Policy) {
	v.check(site{path: "version"}, checkVersion(int64(p.Version)))
	for _, dir := range Directions {
		v.check(site{path: "defaults." + string(dir)}, checkOneOf(string(p.Defaults.For(dir)), "default verdict", verdicts))
	}
	for i, pr := range p.Failsafe {
		v.portRange(pr, site{path: indexPath("failsafe", i)}, true)
	}
	for _, s := range p.Sets {
		v.set(s)
	}
	for _, r := range p.Rules {
		v.rule(r)
	}
	for _, t := range p.Tunnels {
		v.tunnel(t)
	}
}

func (v *validator) set(s Set) {
	at := site{pos: s.Pos, path: joinPath("sets", s.Name)}
	v.check(at, checkName(s.Name, maxNameLen))
	if !v.check(at, define(v.l.sets, "set", s.Name, at)) {
		return
	}
	for j, p := range s.Prefixes {
		v.check(at.index(j), checkNetwork(p))
	}
}

func (v *validator) rule(r Rule) {
	at := site{pos: r.Pos, path: indexPath("rules", nextIn(v.rules, r.Pos.File))}
	if v.check(at.field("name"), checkName(r.Name, maxNameLen)) {
		v.check(at.field("name"), define(v.l.rules, "rule", r.Name, at.field("name")))
	}
	v.check(at.field("direction"), checkOneOf(string(r.Direction), "direction", directions))
	v.check(at.field("action"), checkOneOf(string(r.Action), "action", actions))
	if r.Mode != "" {
		v.check(at.field("mode"), checkMode(string(r.Mode), r.Action))
	}
	// The family has no position of its own: messages name it by its path.
	var familyAt site
	if r.Family != Any {
		familyAt = site{path: at.field("family").path}
		v.check(at.field("family"), checkOneOf(string(r.Family), "family", families))
	}
	groups := [3]famGroup{
		v.peers(r.From, at.field("from"), "from", r.Direction),
		v.peers(r.To, at.field("to"), "to", r.Direction),
		{name: "ports", at: at.field("ports")},
	}
	for i, pr := range r.Ports {
		groups[2].entries = append(groups[2].entries, v.portRange(pr, at.field("ports").index(i), false))
	}
	if l := r.Limit; l != nil {
		v.check(at.field("limit.rate"), checkRate(l.Rate, l.Per, fmt.Sprintf("%d/%s", l.Rate, l.Per)))
	}
	if c := r.ConnLimit; c != nil {
		v.check(at.field("connLimit.max"), connMaxRange.check(int64(c.Max)))
	}
	ruleFamily(r.Family, familyAt, groups, v.l.report)
}

// peers checks a rule's from or to list (side) in a rule of direction dir.
func (v *validator) peers(peers []Peer, at site, side string, dir Direction) famGroup {
	g := famGroup{name: side, at: at}
	for i, p := range peers {
		g.entries = append(g.entries, v.peer(p, at.index(i), side, dir))
	}
	return g
}

func (v *validator) peer(p Peer, at site, side string, dir Direction) famEntry {
	fam := famEntry{fam: famBoth, at: at}
	var kinds []string
	for _, k := range []struct {
		name  string
		given bool
	}{{"cidr", p.CIDR.IsValid()}, {"set", p.Set != ""}, {"interface", p.Interface != ""}} {
		if k.given {
			kinds = append(kinds, k.name)
		}
	}
	if !checkPeerKinds(kinds, len(p.Except) > 0, v.fields(at)) {
		return fam
	}
	field := at.field(kinds[0])
	switch kinds[0] {
	case "cidr":
		if !v.check(field, checkNetwork(p.CIDR)) {
			return fam
		}
		fam = famEntry{fam: prefixFam(p.CIDR), at: field, what: "cidr " + p.CIDR.String()}
		for j, e := range p.Except {
			v.check(at.field("except").index(j), checkExcept(e, p.CIDR))
		}
	case "set":
		v.l.setRefs = append(v.l.setRefs, setRef{name: p.Set, at: field})
	case "interface":
		v.check(field, checkPeerInterface(p.Interface, side, dir))
	}
	return fam
}

// portRange checks a ports or failsafe entry.
func (v *validator) portRange(pr PortRange, at site, failsafe bool) famEntry {
	fam := famEntry{fam: famBoth, at: at}
	if !v.check(at.field("protocol"), checkProtocol(string(pr.Protocol), failsafe)) {
		return fam
	}
	if !pr.Protocol.HasPorts() {
		fam = famEntry{fam: protocolFam(pr.Protocol), at: at.field("protocol"), what: string(pr.Protocol)}
	}
	// A PortRange of a protocol with ports gives EndPort whenever it gives
	// Port: EndPort == Port for a single port.
	e := portEntry{proto: pr.Protocol, port: pr.Port, end: pr.EndPort,
		hasPort: pr.Port != 0, hasEnd: pr.EndPort != 0 || (pr.Port != 0 && pr.Protocol.HasPorts())}
	e.check(failsafe, v.fields(at))
	return fam
}

func (v *validator) tunnel(t Tunnel) {
	at := site{pos: t.Pos, path: indexPath("tunnels", nextIn(v.tunnels, t.Pos.File))}
	if v.check(at.field("name"), checkName(t.Name, maxIfNameLen)) {
		v.check(at.field("name"), define(v.l.tunnels, "tunnel", t.Name, at.field("name")))
	}
	if t.Backend != "" {
		v.check(at.field("backend"), checkOneOf(string(t.Backend), "backend", backends))
	}
	v.keyFile(site{pos: posOr(t.PrivateKeyFilePos, t.Pos), path: at.field("privateKeyFile").path}, t.PrivateKeyFile)
	if t.ListenPort != 0 {
		v.check(at.field("listenPort"), v.l.listenOn(t.ListenPort, at.field("listenPort")))
	}
	if len(t.Addresses) == 0 {
		v.check(at.field("addresses"), errNoTunnelAddress)
	}
	hasV6 := false
	for j, a := range t.Addresses {
		if v.check(at.field("addresses").index(j), checkTunnelAddress(a)) {
			hasV6 = hasV6 || a.Addr().Is6()
		}
	}
	if t.MTU != 0 {
		v.check(at.field("mtu"), mtuRange(hasV6).check(int64(t.MTU)))
	}
	ts := newTunnelScope()
	for i, p := range t.Peers {
		v.tunnelPeer(p, ts, site{pos: posOr(p.Pos, t.Pos), path: at.field("peers").index(i).path})
	}
}

func (v *validator) tunnelPeer(p TunnelPeer, ts tunnelScope, at site) {
	if v.check(at.field("name"), checkName(p.Name, maxNameLen)) {
		v.check(at.field("name"), define(ts.peers, "peer", p.Name, at.field("name")))
	}
	v.check(at.field("publicKey"), ts.useKey(p.PublicKey, at.field("publicKey")))
	if p.PresharedKeyFile != "" {
		v.keyFile(site{pos: posOr(p.PresharedKeyFilePos, at.pos), path: at.field("presharedKeyFile").path}, p.PresharedKeyFile)
	}
	var endpointIP netip.Addr
	if p.Endpoint != "" && v.check(at.field("endpoint"), checkEndpoint(p.Endpoint)) {
		endpointIP = endpointAddr(p.Endpoint)
	}
	if len(p.AllowedIPs) == 0 {
		v.check(at.field("allowedIPs"), errNoAllowedIP)
	}
	for j, a := range p.AllowedIPs {
		if ip := at.field("allowedIPs").index(j); v.check(ip, checkAllowedIP(a, endpointIP)) {
			v.check(ip, ts.route(a, ip))
		}
	}
	v.check(at.field("persistentKeepalive"), checkKeepalive(p.PersistentKeepalive))
}

// keyFile checks the path of a key file. Load makes it absolute, relative
// to the file that names it; a Policy that was not read has nothing to
// resolve it against.
func (v *validator) keyFile(at site, name string) {
	if v.check(at, checkKeyFile(name)) && !filepath.IsAbs(name) {
		v.check(at, fmt.Errorf("%q is not an absolute path; name the key file in full, like /etc/edgefw/keys/wg0.key", name))
	}
}
