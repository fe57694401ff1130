package wg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/edgefw/edgefw/policy"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// RejectAfterTime is how long WireGuard keeps using a session after its
// handshake (whitepaper §6.1, "Reject-After-Time", 180 s). A peer whose last
// handshake is older carries no traffic until it handshakes again, so it
// counts as down, and Refresh sets its declared endpoint again at once.
const RejectAfterTime = 180 * time.Second

// DefaultMTU is the MTU of a tunnel that declares none: 1500 minus the
// largest WireGuard overhead (IPv6 40 + UDP 8 + WireGuard 32 bytes), the
// value wg-quick and the kernel module use.
const DefaultMTU = 1420

var (
	// ErrClosed is returned by the Manager's methods after Close.
	ErrClosed = errors.New("wireguard manager is closed")
	// ErrForeignInterface is returned (wrapped) when a declared tunnel's name
	// is taken by an interface that edgefw did not create and that is not a
	// WireGuard interface it may adopt. Such an interface is never changed.
	ErrForeignInterface = errors.New("interface exists and is not managed by edgefw")
)

// Option configures a Manager.
type Option func(*Manager)

// WithClient replaces the WireGuard control client (default: wgctrl.New()).
// A client given here is not closed by Manager.Close.
func WithClient(c Client) Option { return func(m *Manager) { m.client = c } }

// WithLinks replaces the rtnetlink implementation (default: netlink in the
// calling thread's network namespace).
func WithLinks(l Links) Option { return func(m *Manager) { m.links = l } }

// WithResolver replaces the resolver of endpoint host names (default:
// net.DefaultResolver).
func WithResolver(r Resolver) Option { return func(m *Manager) { m.resolver = r } }

// WithKernelModule replaces the check for the WireGuard kernel module that
// backend "auto" relies on. The default looks for /sys/module/wireguard and
// for wireguard.ko in the running kernel's module lists.
func WithKernelModule(available func() bool) Option {
	return func(m *Manager) { m.kernelModule = available }
}

// WithClock replaces time.Now, which decides whether a peer's handshake is
// recent (Status, Refresh).
func WithClock(now func() time.Time) Option { return func(m *Manager) { m.now = now } }

// WithManagedInterfaces names interfaces that an earlier run of edgefw
// managed, for instance the tunnels of the last policy applied, kept in the
// state directory. The first Apply removes those that are no longer declared,
// if they are WireGuard interfaces; without this, a kernel WireGuard interface
// dropped from the policy while the daemon was stopped would stay forever.
// Interfaces neither declared nor named here are never touched.
func WithManagedInterfaces(names ...string) Option {
	return func(m *Manager) {
		for _, n := range names {
			if m.tunnels[n] == nil {
				m.tunnels[n] = &tunnelState{name: n, owned: true}
			}
		}
	}
}

// WithDeviceLogger receives the log of the embedded wireguard-go devices
// of userspace tunnels (handshakes and keepalives at debug, send failures at
// warn), which they write from their own goroutines, with the tunnel's
// "interface". By default it is discarded. The Manager itself does not log:
// Apply and Refresh return a Report.
func WithDeviceLogger(log *slog.Logger) Option { return func(m *Manager) { m.deviceLog = log } }

// withUserspace replaces the embedded wireguard-go starter (tests).
func withUserspace(u userspace) Option { return func(m *Manager) { m.userspace = u } }

// Manager reconciles declared tunnels with the host. It is safe for
// concurrent use: changes are made one call at a time, and DNS lookups run
// outside its lock, so Status never waits for a slow name server.
type Manager struct {
	deviceLog    *slog.Logger
	client       Client
	ownsClient   bool
	links        Links
	resolver     Resolver
	userspace    userspace
	kernelModule func() bool
	now          func() time.Time

	mu      sync.Mutex
	closed  bool
	tunnels map[string]*tunnelState // every interface this manager manages
	order   []string                // declared tunnel names, in policy order
	dns     map[string]resolution   // endpoint host names of declared peers
	// kernelAvailable caches kernelModule's answer (nil: not asked yet).
	kernelAvailable *bool
}

// tunnelState is what the Manager remembers about one interface.
type tunnelState struct {
	name string
	decl policy.Tunnel
	// owned: this manager created or adopted the interface, or was told it
	// is edgefw's (WithManagedInterfaces), so it may delete it.
	owned bool
	// backend runs the interface; empty until the interface exists.
	backend policy.Backend
	dev     io.Closer // userspace device; nil for kernel
	key     wgtypes.Key
	peers   []*peerState // declared order
	// byKey indexes peers by public key; pass counts loadPeers' calls,
	// which mark the peers they find declared.
	byKey map[wgtypes.Key]*peerState
	pass  uint64
	// names remembers peer names by public key, also of peers no longer
	// declared, so that their removal is logged by name.
	names map[wgtypes.Key]string
	// err is the last Apply or Refresh error of this tunnel; a tunnel with
	// an error gets a full sync at the next Refresh.
	err error
	// sharesAllowedIPs: two peers of decl declare the same prefix, which
	// only one of them runs with (see reconcilePeers).
	sharesAllowedIPs bool
}

// peerState is what the Manager remembers about one declared peer.
type peerState struct {
	decl policy.TunnelPeer
	psk  wgtypes.Key
	// pskErr: the preshared key file could not be read; the running peer is
	// then left exactly as it is.
	pskErr error
	ep     endpoint
	epErr  error
	// lastSet is the endpoint this manager last wrote to the device, or,
	// for a peer it found running, the one assumed written (assumedLastSet).
	lastSet netip.AddrPort
	// pass is the loadPeers call that last found the peer declared.
	pass uint64
	// before is what the peer was declared and configured as before the
	// Apply that reconcilePeers runs; ran says whether it was declared.
	before peerBefore
	ran    bool
}

// target is the endpoint the peer should have, if one is known: its IP
// literal, or the address its host name last resolved to.
func (p *peerState) target(dns map[string]resolution) (netip.AddrPort, bool) {
	switch {
	case p.epErr != nil || p.ep.port == 0:
		return netip.AddrPort{}, false
	case p.ep.host == "":
		return netip.AddrPortFrom(p.ep.addr, p.ep.port), true
	case dns[p.ep.host].addr.IsValid():
		return netip.AddrPortFrom(dns[p.ep.host].addr, p.ep.port), true
	default:
		return netip.AddrPort{}, false
	}
}

// New returns a Manager. Without WithClient it opens a wgctrl client, which
// finds kernel devices over generic netlink (when the module is loaded) and
// userspace devices through /var/run/wireguard.
func New(opts ...Option) (*Manager, error) {
	m := &Manager{
		deviceLog:    slog.New(slog.DiscardHandler),
		links:        &netlinkLinks{},
		resolver:     net.DefaultResolver,
		userspace:    goUserspace{},
		kernelModule: kernelModuleAvailable,
		now:          time.Now,
		tunnels:      make(map[string]*tunnelState),
		dns:          make(map[string]resolution),
	}
	for _, opt := range opts {
		opt(m)
	}
	if m.deviceLog == nil {
		m.deviceLog = slog.New(slog.DiscardHandler)
	}
	if m.client == nil {
		c, err := wgctrl.New()
		if err != nil {
			return nil, fmt.Errorf("open WireGuard control client: %w", err)
		}
		m.client, m.ownsClient = c, true
	}
	return m, nil
}

// Apply makes the host's tunnels match tunnels, the complete declared set:
// it creates missing interfaces, updates keys, MTU, addresses, peers and
// routes where they differ, and removes the interfaces of tunnels this
// manager managed that are no longer declared. It is idempotent: with the
// running configuration it changes nothing.
//
// A failing tunnel or peer does not hold back the others; their errors are
// joined, and the Report lists what was changed all the same. Every
// endpoint host name is looked up again, so that a reload follows a name
// that moved at once instead of at the next Refresh; a name that still has
// its current address keeps it. An endpoint host name that does not resolve
// is not an error: the peer is configured without (or keeps) its endpoint,
// the Report says so (EndpointUnresolved), and Refresh tries again.
func (m *Manager) Apply(ctx context.Context, tunnels []policy.Tunnel) (Report, error) {
	hosts, results := m.resolve(ctx, tunnels)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Report{}, ErrClosed
	}
	var rep Report
	m.storeResolutions(results, hosts, &rep)
	maps.DeleteFunc(m.dns, func(host string, _ resolution) bool { return hosts[host] == nil })
	var errs []error
	declared := make(map[string]bool, len(tunnels))
	var unique []policy.Tunnel
	for _, t := range tunnels {
		if declared[t.Name] {
			errs = append(errs, fmt.Errorf("tunnel %q: declared more than once", t.Name))
			continue
		}
		declared[t.Name] = true
		unique = append(unique, t)
	}
	// Remove first: a listen port or name freed by a removed tunnel may be
	// what a declared one needs.
	for _, name := range slices.Sorted(maps.Keys(m.tunnels)) {
		if !declared[name] {
			if err := m.removeTunnel(name, &rep); err != nil {
				errs = append(errs, fmt.Errorf("remove tunnel %q: %w", name, err))
			}
		}
	}
	m.order = m.order[:0]
	for _, t := range unique {
		m.order = append(m.order, t.Name)
		if err := m.applyTunnel(t, &rep); err != nil {
			errs = append(errs, fmt.Errorf("tunnel %q: %w", t.Name, err))
		}
	}
	return rep, errors.Join(errs...)
}

// resolve looks up the endpoint names of tunnels. The lock is held only to
// read the current addresses, never during a lookup, so that a slow name
// server never holds up Status. The caller must not hold the lock.
func (m *Manager) resolve(ctx context.Context, tunnels []policy.Tunnel) (map[string][]peerRef, map[string]resolution) {
	hosts := endpointHosts(tunnels)
	m.mu.Lock()
	current := make(map[string]netip.Addr, len(hosts))
	for host := range hosts {
		current[host] = m.dns[host].addr
	}
	m.mu.Unlock()
	return hosts, m.lookupHosts(ctx, current)
}

// Refresh re-resolves the endpoint host names of all declared peers and
// writes an endpoint to the device where wantEndpoint says so: when the
// name's address changed, or at once when the peer's session is dead (last
// handshake older than RejectAfterTime). It also repairs peers changed behind
// edgefw's back, and retries in full every tunnel whose last Apply or Refresh
// failed. The daemon calls it periodically, e.g. every 30 s. Like Apply, it
// reports what it changed and found even when it fails.
func (m *Manager) Refresh(ctx context.Context) (Report, error) {
	m.mu.Lock()
	var declared []policy.Tunnel
	for _, name := range m.order {
		declared = append(declared, m.tunnels[name].decl)
	}
	m.mu.Unlock()
	hosts, results := m.resolve(ctx, declared)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Report{}, ErrClosed
	}
	var rep Report
	m.storeResolutions(results, hosts, &rep)
	var errs []error
	for _, name := range m.order {
		st := m.tunnels[name]
		var err error
		if st.err != nil {
			err = m.applyTunnel(st.decl, &rep)
		} else {
			err = m.syncPeers(st, &rep)
			st.err = err
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("tunnel %q: %w", name, err))
		}
	}
	return rep, errors.Join(errs...)
}

// Close stops the userspace devices this manager started, which removes
// their interfaces (process exit would take them down anyway). Kernel
// interfaces stay: tunnels outlive a daemon restart.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(m.tunnels)) {
		if st := m.tunnels[name]; st.dev != nil {
			if err := st.dev.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close tunnel %q: %w", name, err))
			}
			st.dev = nil
		}
	}
	if nl, ok := m.links.(*netlinkLinks); ok {
		_ = nl.Close()
	}
	if m.ownsClient {
		if err := m.client.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close WireGuard control client: %w", err))
		}
	}
	return errors.Join(errs...)
}

// applyTunnel fully reconciles one declared tunnel and records the outcome.
func (m *Manager) applyTunnel(t policy.Tunnel, rep *Report) error {
	st := m.tunnels[t.Name]
	if st == nil {
		st = &tunnelState{name: t.Name}
		m.tunnels[t.Name] = st
	}
	prev, prevShares := st.decl, st.sharesAllowedIPs
	st.decl, st.sharesAllowedIPs = t, sharesAllowedIPsAfter(prev.Peers, t.Peers, prevShares)
	if st.err == nil && st.backend != "" && !prevShares && !st.sharesAllowedIPs && sameButPeers(prev, t) {
		if done, err := m.reconcilePeers(st, prev, rep); done {
			if slices.EqualFunc(prev.Peers, t.Peers, samePeer) {
				// Unchanged: the links and routes are checked, but the
				// device is not read back (see incremental.go).
				err = errors.Join(err, m.syncLink(st, rep), m.syncRoutes(st, rep))
			}
			st.err = err
			return err
		}
	}
	st.err = m.reconcileTunnel(st, rep)
	return st.err
}

func (m *Manager) reconcileTunnel(st *tunnelState, rep *Report) error {
	key, err := LoadOrCreatePrivateKey(st.decl.PrivateKeyFile)
	if err != nil {
		// Without its key the interface would come up as someone else.
		return err
	}
	st.key = key
	errs, _ := m.loadPeers(st)
	if err := m.ensureInterface(st, rep); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := m.syncLink(st, rep); err != nil {
		errs = append(errs, err)
	}
	routes := alongside(func(rep *Report) error { return m.syncRoutes(st, rep) })
	if err := m.syncPeers(st, rep); err != nil {
		errs = append(errs, err)
	}
	if err := routes(rep); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
