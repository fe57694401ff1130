// Package policy parses and validates edgefw host policies (version 1).
//
// It is pure: it reads the policy files it is asked to read and nothing
// else, and imports none of the other edgefw packages. A Policy returned
// without error has passed every check in SPEC.md, so the compiler in
// package nft can trust it; Validate holds a Policy that was not read here
// (built in code, decoded from JSON) to the same checks.
package policy

import (
	"fmt"
	"net/netip"
	"time"
)

// Action is a rule's verdict.
type Action string

// Actions a rule or default policy may take. Defaults take only accept or drop.
const (
	Accept Action = "accept"
	Drop   Action = "drop"
	Reject Action = "reject"
)

// Mode says whether a rule enforces its action or only audits it.
type Mode string

// Modes of a rule. An audit-mode rule counts and logs the packets it would
// drop or reject and lets them go on to the next rule, so that a new rule
// can be watched before it is enforced.
const (
	Enforce Mode = "enforce"
	Audit   Mode = "audit"
)

// Direction names the hook a rule is attached to.
type Direction string

// Directions, one per base chain of the edgefw table.
const (
	Input   Direction = "input"
	Output  Direction = "output"
	Forward Direction = "forward"
)

// Directions lists every direction in the order base chains are rendered.
var Directions = []Direction{Input, Forward, Output}

// Family restricts a rule to one IP version. The zero value means both.
type Family string

// Families. Any means the rule applies to IPv4 and IPv6.
const (
	Any  Family = ""
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// Protocol is a layer 4 protocol a port entry matches.
type Protocol string

// Protocols a ports entry may name.
const (
	TCP    Protocol = "tcp"
	UDP    Protocol = "udp"
	SCTP   Protocol = "sctp"
	ICMP   Protocol = "icmp"
	ICMPv6 Protocol = "icmpv6"
)

// HasPorts reports whether the protocol carries port numbers.
func (p Protocol) HasPorts() bool { return p == TCP || p == UDP || p == SCTP }

// Pos is where a value was written: file, 1-based line and column.
type Pos struct {
	File string
	Line int
	Col  int
}

// String renders the position as FILE:LINE:COL.
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Policy is a validated host policy: the main file merged with its drop-ins.
type Policy struct {
	Version  int
	Defaults Defaults
	// Failsafe ports are accepted in input before any rule (anti-lockout).
	// Absent in the file means tcp/22; an empty list disables it.
	Failsafe []PortRange
	// Sets in definition order (main file first, then drop-ins by name).
	Sets []Set
	// Rules in evaluation order: first match wins.
	Rules []Rule
	// Tunnels in definition order.
	Tunnels []Tunnel
	// Files lists every file the policy was read from, in merge order:
	// the main file, its drop-ins, then set files.
	Files []string
}

// Defaults are the verdicts for packets that no rule matched.
type Defaults struct {
	Input   Action
	Forward Action
	Output  Action
}

// For returns the default verdict of a direction.
func (d Defaults) For(dir Direction) Action {
	switch dir {
	case Output:
		return d.Output
	case Forward:
		return d.Forward
	default:
		return d.Input
	}
}

// Set is a named list of CIDRs that rules refer to with {set: NAME}.
type Set struct {
	Name string
	// File is the absolute path of the list file, or empty for an inline set.
	File string
	// Prefixes are the set's members, masked, in file order, without duplicates.
	Prefixes []netip.Prefix
	Pos      Pos
}

// Rule is one policy rule. From, To and Ports are each OR-ed lists, AND-ed
// together; an empty list matches everything. A list is empty only when its
// field is absent from the file: a field written as [] or with no value is
// refused, so that deleting its last entry cannot widen the rule.
type Rule struct {
	Name      string
	Direction Direction
	From      []Peer
	To        []Peer
	Ports     []PortRange
	Action    Action
	Log       bool
	// Mode is Enforce or Audit; the zero value, which Load never
	// returns, means Enforce. Only drop and reject rules are audited,
	// and an audited rule is logged whatever Log says: what it would
	// deny is what it is watched for.
	Mode Mode
	// Family is the rule's IP version: the one written in the file or,
	// when absent, the one its addresses imply (Any if they imply none).
	Family    Family
	Limit     *Limit
	ConnLimit *ConnLimit
	Pos       Pos
}

// Peer is one entry of a rule's from or to list: exactly one of CIDR
// (with optional Except), Set or Interface is set.
type Peer struct {
	CIDR      netip.Prefix // valid when this peer is a CIDR
	Except    []netip.Prefix
	Set       string
	Interface string
}

// PortRange is one ports entry. For tcp, udp and sctp, Port..EndPort is an
// inclusive range (EndPort == Port for a single port); Port 0 means every
// port of the protocol. For icmp and icmpv6 both are 0.
type PortRange struct {
	Protocol Protocol
	Port     uint16
	EndPort  uint16
}

// AllPorts reports whether the entry matches every port of its protocol.
func (p PortRange) AllPorts() bool { return p.Port == 0 }

// Limit is a packet rate limit; packets over it are dropped and counted apart.
type Limit struct {
	// Rate packets per Per.
	Rate uint64
	// Per is one of second, minute, hour, day.
	Per       string
	Burst     uint32
	PerSource bool
}

// ConnLimit caps concurrent connections; excess connections are dropped.
type ConnLimit struct {
	Max       uint32
	PerSource bool
}

// Backend chooses how a tunnel's WireGuard interface is implemented.
type Backend string

// Backends. Auto uses the kernel module when present, userspace otherwise.
const (
	BackendAuto      Backend = "auto"
	BackendKernel    Backend = "kernel"
	BackendUserspace Backend = "userspace"
)

// Tunnel is a WireGuard interface and its peers. Name is the interface name.
type Tunnel struct {
	Name string
	// Backend is how the interface is implemented; the zero value, which
	// Load never returns, means BackendAuto.
	Backend        Backend
	PrivateKeyFile string // absolute path
	ListenPort     uint16 // 0: chosen by WireGuard, not opened in the firewall
	// Addresses are the interface's own addresses (host bits allowed),
	// none with prefix length 0.
	Addresses []netip.Prefix
	MTU       int // 0: default (1420)
	Peers     []TunnelPeer
	Pos       Pos
	// PrivateKeyFilePos is where PrivateKeyFile is written, for the
	// problems found when the file itself is checked (package wg).
	PrivateKeyFilePos Pos
}

// TunnelPeer is one WireGuard peer of a tunnel.
type TunnelPeer struct {
	Name string
	// PublicKey is the peer's 32-byte Curve25519 public key.
	PublicKey        [32]byte
	PresharedKeyFile string // absolute path, or empty
	// Endpoint is HOST:PORT; HOST may be a DNS name, re-resolved by wg.
	Endpoint string
	// AllowedIPs are routed through the tunnel. None is 0.0.0.0/0 or ::/0,
	// and none contains an Endpoint written as an IP address.
	AllowedIPs          []netip.Prefix
	PersistentKeepalive time.Duration
	Pos                 Pos
	// PresharedKeyFilePos is where PresharedKeyFile is written, if it is.
	PresharedKeyFilePos Pos
}
