package wg

import (
	"net/netip"

	"github.com/edgefw/edgefw/policy"
)

// Report is what one Apply or Refresh did to the host and what it found on
// the way, for the caller to log: the Manager itself does not log.
type Report struct {
	// Changes in the order they happened. Failures are not here but in the
	// error Apply or Refresh returns.
	Changes []Change
}

func (r *Report) add(c Change) { r.Changes = append(r.Changes, c) }

// ChangeKind says what a Change is about, and so which of its fields are
// set. Kinds whose comment starts with "Found" changed nothing on the host.
type ChangeKind string

// The kinds of Change. Every Change names its Interface.
const (
	// InterfaceCreated: Backend, DeclaredBackend.
	InterfaceCreated ChangeKind = "interface-created"
	// InterfaceAdopted: a WireGuard interface of an earlier run is managed
	// again, as it is. Backend.
	InterfaceAdopted ChangeKind = "interface-adopted"
	// InterfaceRemoved: a tunnel no longer declared was torn down.
	// Backend (auto when it never ran in this process).
	InterfaceRemoved ChangeKind = "interface-removed"
	// InterfaceKept: found that the interface of a tunnel to tear down is
	// no longer a WireGuard interface, so it was left alone. LinkType.
	InterfaceKept ChangeKind = "interface-kept"
	// InterfaceVanished: found that the link of a userspace device is gone
	// (deleted behind edgefw's back); the interface is created again.
	InterfaceVanished ChangeKind = "interface-vanished"
	// BackendSwitched: the interface is torn down to be created again with
	// another backend. PreviousBackend, Backend.
	BackendSwitched ChangeKind = "backend-switched"
	// KernelUnavailable: found that the kernel refuses a WireGuard link
	// although the module is listed; auto falls back to userspace. Err.
	KernelUnavailable ChangeKind = "kernel-unavailable"
	// MTUSet: MTU.
	MTUSet ChangeKind = "mtu-set"
	// AddressAdded, AddressRemoved: Address.
	AddressAdded   ChangeKind = "address-added"
	AddressRemoved ChangeKind = "address-removed"
	// InterfaceUp: the link was set administratively up.
	InterfaceUp ChangeKind = "interface-up"
	// RouteAdded, RouteRemoved: Route.
	RouteAdded   ChangeKind = "route-added"
	RouteRemoved ChangeKind = "route-removed"
	// PrivateKeySet: the interface's private key was written (the key
	// itself is never reported).
	PrivateKeySet ChangeKind = "private-key-set"
	// ListenPortSet: ListenPort.
	ListenPortSet ChangeKind = "listen-port-set"
	// DeviceUpToDate: found the WireGuard device as declared; nothing was
	// sent to it. PeerCount.
	DeviceUpToDate ChangeKind = "device-up-to-date"
	// PeerAdded: Peer, Endpoint (invalid when the peer has none yet).
	PeerAdded ChangeKind = "peer-added"
	// PeerUpdated: Peer, Fields, and Endpoint when it is among them.
	PeerUpdated ChangeKind = "peer-updated"
	// PeerRemoved: Peer.
	PeerRemoved ChangeKind = "peer-removed"
	// EndpointUnresolved: found that a peer's endpoint host name stopped
	// resolving (or never did); the peer keeps its last address, if any,
	// and every Refresh tries again. Peer, DeclaredEndpoint, Resolved (the
	// address kept, invalid if none), Err.
	EndpointUnresolved ChangeKind = "endpoint-unresolved"
	// EndpointStillUnresolved: as EndpointUnresolved, at every later try
	// that fails too.
	EndpointStillUnresolved ChangeKind = "endpoint-still-unresolved"
	// EndpointResolved: found that a host name that failed resolves again.
	// Peer, DeclaredEndpoint, Resolved.
	EndpointResolved ChangeKind = "endpoint-resolved"
	// EndpointMoved: found that a host name resolves to another address;
	// the device follows it with a PeerUpdated. Peer, DeclaredEndpoint,
	// PreviousResolved, Resolved.
	EndpointMoved ChangeKind = "endpoint-moved"
)

// Peer fields that a PeerUpdated change lists in Fields, as wg(8) names
// them.
const (
	FieldPresharedKey        = "preshared-key"
	FieldEndpoint            = "endpoint"
	FieldPersistentKeepalive = "persistent-keepalive"
	FieldAllowedIPs          = "allowed-ips"
)

// Change is one thing an Apply or Refresh did or found. Kind says which of
// the other fields are set; the rest are zero. It carries no key material.
type Change struct {
	Kind ChangeKind
	// Interface is the tunnel's interface name.
	Interface string
	// Peer is the declared peer name, "(undeclared)" for a peer running on
	// the interface that the policy never declared.
	Peer string

	// Backend is the interface's backend: created, adopted, removed or
	// switched to.
	Backend policy.Backend
	// PreviousBackend is the backend switched from.
	PreviousBackend policy.Backend
	// DeclaredBackend is what the policy asked for (auto, kernel,
	// userspace) when Backend was chosen.
	DeclaredBackend policy.Backend
	// LinkType is the rtnetlink kind of a link left alone.
	LinkType string

	MTU        int
	ListenPort int
	// Address is an interface address, with its host bits.
	Address netip.Prefix
	// Route is the destination of a route through the interface.
	Route netip.Prefix

	// Endpoint is the endpoint written to the device for a peer.
	Endpoint netip.AddrPort
	// Fields lists the peer settings an update changed (Field… constants).
	Fields []string
	// PeerCount is how many peers the device runs.
	PeerCount int

	// DeclaredEndpoint is the peer's endpoint as declared, HOST:PORT.
	DeclaredEndpoint string
	// Resolved is the address the endpoint's host name resolves to now, or
	// the one kept while it does not resolve.
	Resolved netip.Addr
	// PreviousResolved is the address the host name resolved to before.
	PreviousResolved netip.Addr

	// Err is what went wrong in a change that is not a failure (the
	// Manager worked around it).
	Err error
}
