package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file holds the rules a policy's values follow, each written once as
// a function over values. The decoder (decode.go, tunnel.go) applies them to
// what it read from YAML and reports at the value's position; Validate
// (validate.go) applies them to a Policy's fields and reports at the field's
// path. What only YAML can get wrong (types, unknown fields, duplicate keys,
// a field written empty) stays in the decoder.

// Valid values of the enumerations, in the order messages list them.
var (
	verdicts          = []string{string(Accept), string(Drop)}
	actions           = []string{string(Accept), string(Drop), string(Reject)}
	modes             = []string{string(Enforce), string(Audit)}
	directions        = []string{string(Input), string(Output), string(Forward)}
	families          = []string{string(IPv4), string(IPv6)}
	backends          = []string{string(BackendAuto), string(BackendKernel), string(BackendUserspace)}
	protocols         = []string{string(TCP), string(UDP), string(SCTP), string(ICMP), string(ICMPv6)}
	failsafeProtocols = protocols[:3]
)

// checkOneOf returns why s, which names a what, is not among valid, or nil.
func checkOneOf(s, what string, valid []string) error {
	if slices.Contains(valid, s) {
		return nil
	}
	return fmt.Errorf("%q is not a valid %s; valid values are %s", s, what, strings.Join(valid, ", "))
}

// checkMode returns why s cannot be the mode of a rule whose action is
// action, or nil. Audit mode shows what a rule would deny before it
// denies it; an accept rule denies nothing, so auditing it would count
// allowed packets as if they were denied (in metrics, drops and reports)
// and switching it to enforce would change what it means.
func checkMode(s string, action Action) error {
	if err := checkOneOf(s, "mode", modes); err != nil {
		return err
	}
	if Mode(s) == Audit && action == Accept {
		return errors.New("mode audit counts and logs what a drop or reject rule would deny, and an accept rule denies nothing; use action: drop or reject, or remove mode")
	}
	return nil
}

// checkVersion returns why v is not a supported policy version, or nil.
func checkVersion(v int64) error {
	if v != 1 {
		return fmt.Errorf("version %d is not supported; the only valid version is 1", v)
	}
	return nil
}

// checkProtocol returns why s is not a protocol a ports entry, or a
// failsafe entry, may name. Failsafe entries open ports, so they take only
// protocols with ports.
func checkProtocol(s string, failsafe bool) error {
	if failsafe {
		return checkOneOf(s, "protocol", failsafeProtocols)
	}
	return checkOneOf(s, "protocol", protocols)
}

// intRange is the valid range of an integer field; what names the field in
// messages, and note, if any, says why the range is what it is.
type intRange struct {
	what   string
	lo, hi int64
	note   string
}

// Integer fields and their ranges.
var (
	portRange      = intRange{what: "port", lo: 1, hi: maxUint16}
	burstRange     = intRange{what: "burst", lo: 0, hi: maxUint32}
	connMaxRange   = intRange{what: "max", lo: 1, hi: maxUint32}
	keepaliveRange = intRange{what: "persistentKeepalive", lo: 0, hi: maxUint16}
)

// mtuRange is the range of a tunnel's mtu; hasV6 says whether the tunnel
// has an IPv6 address.
func mtuRange(hasV6 bool) intRange {
	if hasV6 {
		return intRange{what: "mtu", lo: minMTUv6, hi: maxMTU, note: "; the tunnel has an IPv6 address, and IPv6 needs at least 1280"}
	}
	return intRange{what: "mtu", lo: minMTUv4, hi: maxMTU}
}

// check returns why v is out of the range, or nil.
func (r intRange) check(v int64) error {
	if v < r.lo || v > r.hi {
		return r.outOfRange(strconv.FormatInt(v, 10))
	}
	return nil
}

// outOfRange is the error for a value, as written, outside the range.
func (r intRange) outOfRange(written string) error {
	return fmt.Errorf("%s %s is out of range; valid values are %d to %d%s", r.what, written, r.lo, r.hi, r.note)
}

// checkPrefix returns why p cannot be a CIDR of a policy, or nil. Unless
// hostBits, p must be the network address, because a prefix with host bits
// set usually hides a typo and nftables would mask it silently. IPv4-mapped
// IPv6 addresses never match on the wire (the kernel sees IPv4 packets as
// IPv4), so they are refused in favour of the IPv4 form.
func checkPrefix(p netip.Prefix, hostBits bool) error {
	switch {
	case !p.IsValid():
		return errors.New("not a valid CIDR; write an address and a prefix length, like 10.0.0.0/8 or 2001:db8::/32")
	case p.Addr().Is4In6():
		v4 := netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		return fmt.Errorf("%s is an IPv4-mapped IPv6 address, which never matches; write it as IPv4, like %s", p, v4.Masked())
	case !hostBits && p.Masked() != p:
		return fmt.Errorf("%s has host bits set; did you mean %s?", p, p.Masked())
	}
	return nil
}

// checkNetwork returns why p cannot be a network of a set, a peer's cidr
// or an allowed IP, or nil.
func checkNetwork(p netip.Prefix) error { return checkPrefix(p, false) }

// checkExcept returns why e cannot be in the except list of a peer whose
// cidr is cidr, or nil: it must be a smaller network inside the cidr.
func checkExcept(e, cidr netip.Prefix) error {
	if err := checkNetwork(e); err != nil {
		return err
	}
	switch {
	case e.Addr().Is4() != cidr.Addr().Is4():
		return fmt.Errorf("%s is %s but cidr %s is %s; an except must lie inside the cidr", e, familyName(e.Addr()), cidr, familyName(cidr.Addr()))
	case e == cidr:
		return fmt.Errorf("%s is the cidr itself, so the peer would match nothing; an except must be a smaller network inside the cidr", e)
	case e.Bits() < cidr.Bits() || !cidr.Contains(e.Addr()):
		return fmt.Errorf("%s is not inside cidr %s; an except must be a smaller network inside the cidr", e, cidr)
	}
	return nil
}

// exactlyOnePeer is the rule of SPEC.md for a rule's from and to entries.
const exactlyOnePeer = "a peer is exactly one of cidr (with optional except), set or interface"

// checkPeerKinds checks that a peer of a rule's from or to list is of
// exactly one kind (kinds lists the ones it has: cidr, set, interface) and
// has an except list only if it is a cidr.
func checkPeerKinds(kinds []string, hasExcept bool, bad report) bool {
	switch {
	case len(kinds) == 0:
		bad("", fmt.Errorf("%s; this one has none", exactlyOnePeer))
	case len(kinds) > 1:
		bad("", fmt.Errorf("%s; this one has %s, so split it into one peer for each", exactlyOnePeer, strings.Join(kinds, " and ")))
	case kinds[0] != "cidr" && hasExcept:
		bad("except", errors.New("except is only valid with cidr; remove it or use {cidr: ..., except: [...]}"))
	default:
		return true
	}
	return false
}

// checkPeerInterface returns why a rule of direction dir cannot match the
// interface name on its side ("from" or "to"), or nil. Output packets have
// no input interface and input packets no output interface yet (routing
// has not happened), so such a match is empty.
func checkPeerInterface(name, side string, dir Direction) error {
	if err := checkInterface(name); err != nil {
		return err
	}
	switch {
	case side == "from" && dir == Output:
		return fmt.Errorf("an output rule's packets have no input interface; match the output interface with to: [{interface: %s}]", name)
	case side == "to" && dir == Input:
		return fmt.Errorf("an input rule's packets have no output interface; match the input interface with from: [{interface: %s}]", name)
	}
	return nil
}

// portEntry is a ports or failsafe entry with a valid protocol, as its
// fields are given: hasPort and hasEnd say whether port and endPort are.
type portEntry struct {
	proto           Protocol
	port, end       uint16
	hasPort, hasEnd bool
}

// check checks the fields of the entry together. Failsafe entries must name
// a port: "every tcp port" would leave input wide open before any rule.
func (e portEntry) check(failsafe bool, bad report) bool {
	if !e.proto.HasPorts() {
		ok := true
		for _, f := range []struct {
			name  string
			given bool
		}{{"port", e.hasPort}, {"endPort", e.hasEnd}} {
			if f.given {
				bad(f.name, fmt.Errorf("%s has no ports; remove %s, or use tcp, udp or sctp", e.proto, f.name))
				ok = false
			}
		}
		return ok
	}
	switch {
	case !e.hasPort && failsafe:
		bad("port", errors.New("required field is missing; a failsafe entry opens one port or range, like {protocol: tcp, port: 22}"))
	case !e.hasPort && e.hasEnd:
		bad("endPort", errors.New("endPort needs port; write a range as port: FIRST, endPort: LAST"))
	case e.hasEnd && e.end < e.port:
		bad("endPort", fmt.Errorf("endPort %d is less than port %d; endPort must be at least port", e.end, e.port))
	default:
		return true
	}
	return false
}

// portRange is the PortRange of a checked entry: a single port is a range
// of one, and no port every port of the protocol.
func (e portEntry) portRange() PortRange {
	pr := PortRange{Protocol: e.proto, Port: e.port, EndPort: e.port}
	if e.hasEnd {
		pr.EndPort = e.end
	}
	return pr
}

// rateUnits are the units nftables' limit statement accepts.
var rateUnits = []string{"second", "minute", "hour", "day"}

// badRate is the error for a rate, as written, that is not COUNT/UNIT.
func badRate(written string) error {
	return fmt.Errorf("%q is not a valid rate; write COUNT/UNIT with UNIT one of %s, like 100/minute", written, strings.Join(rateUnits, ", "))
}

// checkRate returns why count packets per unit, written as written, is not
// a valid limit rate, or nil.
func checkRate(count uint64, unit, written string) error {
	switch {
	case !slices.Contains(rateUnits, unit):
		return badRate(written)
	case count == 0:
		return errors.New("a rate of 0 would drop every packet; the count must be at least 1, or use action: drop")
	}
	return nil
}

// keepaliveValid says how to write a persistent keepalive.
const keepaliveValid = "write a duration of whole seconds from 0s to 65535s, like 25s, or a number of seconds"

// checkKeepalive returns why v cannot be a peer's persistent keepalive, or
// nil. WireGuard carries it as a 16-bit number of seconds.
func checkKeepalive(v time.Duration) error {
	switch {
	case v < 0 || v > maxKeepalive:
		return fmt.Errorf("%s is out of range; %s", v, keepaliveValid)
	case v%time.Second != 0:
		return fmt.Errorf("%s is not a whole number of seconds; %s", v, keepaliveValid)
	}
	return nil
}

// checkKeyFile returns why name cannot name a key file, or nil.
func checkKeyFile(name string) error {
	if name == "" {
		return errors.New("must name a key file, like /etc/edgefw/keys/wg0.key")
	}
	return nil
}

// checkTunnelAddress returns why a cannot be an address of a tunnel's
// interface, or nil. The kernel adds a connected route for an address's
// prefix, so a prefix length of 0 would take over the default route.
func checkTunnelAddress(a netip.Prefix) error {
	if err := checkPrefix(a, true); err != nil {
		return err
	}
	if a.Bits() == 0 {
		return fmt.Errorf("%s has prefix length 0, so the kernel would route every %s address through the tunnel, taking over the host's default route; an interface address needs a prefix length of at least 1, usually the tunnel subnet's, like %s",
			a, familyName(a.Addr()), netip.PrefixFrom(a.Addr(), exampleBits(a.Addr())))
	}
	return nil
}

// checkAllowedIP returns why p cannot be an allowed IP of a peer whose
// endpoint, written as an address, is endpoint (the zero Addr if it is a
// name or absent), or nil. Each allowed IP becomes a main-table route
// through the tunnel (package wg), without wg-quick's fwmark and policy
// routing that keep the tunnel's own packets out of it.
func checkAllowedIP(p netip.Prefix, endpoint netip.Addr) error {
	if err := checkNetwork(p); err != nil {
		return err
	}
	switch {
	case p.Bits() == 0:
		return fmt.Errorf("%s would route all %s traffic into the tunnel: its route would take over the host's default route, and with it the tunnel's own packets to the peer and remote management; full-tunnel routing (wg-quick's fwmark and policy routing) is not supported, so list the cluster's prefixes instead, like %s",
			p, familyName(p.Addr()), exampleNet(p.Addr()))
	case endpoint.IsValid() && p.Contains(endpoint):
		return fmt.Errorf("allowedIPs %s contains the endpoint %s; the tunnel's own UDP packets to the peer would be routed into the tunnel, so list prefixes that leave out the endpoint's address, or reach the peer at an address outside them", p, endpoint)
	}
	return nil
}

// Lists that must not be empty.
var (
	errNoTunnelAddress = errors.New("a tunnel needs at least one address, like [10.0.0.2/24]")
	errNoAllowedIP     = errors.New("a peer needs at least one allowed IP, like [10.0.0.0/24]")
)

// report tells what is wrong with one field of the value being checked:
// field is the field's name within the value ("endPort"), "" for the value
// as a whole. The decoder reports at the field's YAML node, Validate at its
// path.
type report func(field string, err error)

// site is where a value is: its position, if it was read from a file, and
// its field path. Messages that point from one value to another name the
// other by its site.
type site struct {
	pos  Pos
	path string
}

// String names the site as FILE:LINE, or by its path without a position.
func (s site) String() string {
	if s.pos.Line > 0 {
		return fmt.Sprintf("%s:%d", s.pos.File, s.pos.Line)
	}
	return s.path
}

// field is the site of a field of the value at s, at s's position.
func (s site) field(name string) site { return site{pos: s.pos, path: joinPath(s.path, name)} }

// index is the site of entry i of the list at s, at s's position.
func (s site) index(i int) site { return site{pos: s.pos, path: indexPath(s.path, i)} }

// firstSeen remembers where each value of one kind was first seen.
type firstSeen[K comparable] map[K]site

// see records that k is at s, unless k was seen before: then it returns
// the first site and true.
func (f firstSeen[K]) see(k K, s site) (site, bool) {
	if first, dup := f[k]; dup {
		return first, true
	}
	f[k] = s
	return site{}, false
}

// scope is what the checks across a policy's elements need: the names
// defined and the listen ports taken so far (in any of the policy's files),
// and the {set: NAME} references, resolved once every set is known.
type scope struct {
	sets, rules, tunnels firstSeen[string]
	listenPorts          firstSeen[uint16]
	setRefs              []setRef
}

// setRef is a {set: NAME} peer.
type setRef struct {
	name string
	at   site
}

func newScope() scope {
	return scope{sets: firstSeen[string]{}, rules: firstSeen[string]{}, tunnels: firstSeen[string]{}, listenPorts: firstSeen[uint16]{}}
}

// define returns why name, of a kind (set, rule, tunnel, peer) defined at
// s, cannot be defined in defs, or nil.
func define(defs firstSeen[string], kind, name string, s site) error {
	if first, dup := defs.see(name, s); dup {
		return fmt.Errorf("duplicate %s name %q; it is first defined at %s, so choose another name", kind, name, first)
	}
	return nil
}

// listenOn returns why a tunnel cannot listen on port, given at s, or nil:
// two tunnels cannot share a UDP port.
func (sc *scope) listenOn(port uint16, s site) error {
	if first, dup := sc.listenPorts.see(port, s); dup {
		return fmt.Errorf("listen port %d is already used by the tunnel at %s; choose another port", port, first)
	}
	return nil
}

// undefinedSets reports every set reference to a set not among sets.
func (sc *scope) undefinedSets(sets []Set, bad func(at site, err error)) {
	valid := ""
	for _, ref := range sc.setRefs {
		if _, ok := sc.sets[ref.name]; ok {
			continue
		}
		if valid == "" {
			valid = definedSets(sets)
		}
		bad(ref.at, fmt.Errorf("undefined set %q; %s", ref.name, valid))
	}
}

// definedSets says which sets a {set: NAME} peer may name.
func definedSets(sets []Set) string {
	const shown = 10
	var names []string
	for _, s := range sets {
		if len(names) == shown {
			return "defined sets include " + strings.Join(names, ", ") + ", …"
		}
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return "no sets are defined; define it under sets:"
	}
	return "defined sets are " + strings.Join(names, ", ")
}

// tunnelScope is what the checks across one tunnel's peers need. WireGuard
// identifies a peer by its public key and routes each allowed IP to exactly
// one peer (a later peer silently takes it over), so both must be unique
// within the tunnel.
type tunnelScope struct {
	peers  firstSeen[string]
	keys   firstSeen[[wireGuardKeyLen]byte]
	routes firstSeen[netip.Prefix]
}

func newTunnelScope() tunnelScope {
	return tunnelScope{peers: firstSeen[string]{}, keys: firstSeen[[wireGuardKeyLen]byte]{}, routes: firstSeen[netip.Prefix]{}}
}

// useKey returns why a peer cannot have the public key given at s, or nil.
func (ts tunnelScope) useKey(key [wireGuardKeyLen]byte, s site) error {
	if first, dup := ts.keys.see(key, s); dup {
		return fmt.Errorf("the same public key is used by the peer at %s; each peer of a tunnel needs its own key", first)
	}
	return nil
}

// route returns why p, given at s, cannot be a peer's allowed IP, or nil.
func (ts tunnelScope) route(p netip.Prefix, s site) error {
	if first, dup := ts.routes.see(p, s); dup {
		return fmt.Errorf("%s is already an allowed IP at %s; WireGuard routes it to one peer only", p, first)
	}
	return nil
}
