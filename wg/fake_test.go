package wg

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// fakeHost plays the kernel for the Manager: it implements Links, Client and
// the userspace starter over one shared model of links and WireGuard devices,
// and rejects what the kernel would reject (duplicate names, addresses and
// routes, routes through a down link, unknown devices, a listen port in use).
// It counts every call that would change the host.
type fakeHost struct {
	mu             sync.Mutex
	kernelModule   bool
	links          map[string]*fakeLink
	devices        map[string]*wgtypes.Device
	configureCalls []fakeConfigureCall
	linkChanges    []string // "add-address wg0 10.0.0.1/24", …
	started        []string // userspace devices started
	deviceReads    int      // Device calls since resetCalls
	// failConfigure, if set, may reject a ConfigureDevice call as a whole.
	failConfigure func(name string, cfg wgtypes.Config) error
}

type fakeLink struct {
	info   LinkInfo
	addrs  []netip.Prefix
	routes []netip.Prefix
}

type fakeConfigureCall struct {
	name string
	cfg  wgtypes.Config
}

func newFakeHost() *fakeHost {
	return &fakeHost{links: map[string]*fakeLink{}, devices: map[string]*wgtypes.Device{}}
}

// resetCalls forgets the calls recorded so far.
func (h *fakeHost) resetCalls() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.configureCalls, h.linkChanges, h.started, h.deviceReads = nil, nil, nil, 0
}

// addForeignLink adds a link the Manager did not create.
func (h *fakeHost) addForeignLink(name, typ string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.links[name] = &fakeLink{info: LinkInfo{Name: name, Type: typ, MTU: 1500, Up: true}}
	if typ == linkTypeWireGuard {
		h.devices[name] = &wgtypes.Device{Name: name, Type: wgtypes.LinuxKernel}
	}
}

func (h *fakeHost) record(format string, args ...any) {
	h.linkChanges = append(h.linkChanges, fmt.Sprintf(format, args...))
}

func errNoLink(name string) error {
	return fmt.Errorf("link %s: %w", name, os.ErrNotExist)
}

func validLinkName(name string) bool {
	// IFNAMSIZ is 16 including the terminating NUL.
	return name != "" && len(name) <= 15
}

// Links.

func (h *fakeHost) Link(name string) (LinkInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.links[name]
	if !ok {
		return LinkInfo{}, errNoLink(name)
	}
	return l.info, nil
}

func (h *fakeHost) AddWireGuard(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.kernelModule:
		return fmt.Errorf("add wireguard link %s: %w", name, syscall.EOPNOTSUPP)
	case !validLinkName(name):
		return fmt.Errorf("add wireguard link %s: %w", name, syscall.EINVAL)
	case h.links[name] != nil:
		return fmt.Errorf("add wireguard link %s: %w", name, syscall.EEXIST)
	}
	h.record("add-wireguard %s", name)
	h.links[name] = &fakeLink{info: LinkInfo{Name: name, Type: linkTypeWireGuard, MTU: DefaultMTU}}
	h.devices[name] = &wgtypes.Device{Name: name, Type: wgtypes.LinuxKernel}
	return nil
}

func (h *fakeHost) SetMTU(name string, mtu int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.links[name]
	if !ok {
		return errNoLink(name)
	}
	if mtu < 68 || mtu > 65535 {
		return fmt.Errorf("set mtu of %s: %w", name, syscall.EINVAL)
	}
	h.record("set-mtu %s %d", name, mtu)
	l.info.MTU = mtu
	return nil
}

func (h *fakeHost) SetUp(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.links[name]
	if !ok {
		return errNoLink(name)
	}
	h.record("set-up %s", name)
	l.info.Up = true
	return nil
}

func (h *fakeHost) Delete(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deleteLocked(name)
}

func (h *fakeHost) deleteLocked(name string) error {
	if _, ok := h.links[name]; !ok {
		return errNoLink(name)
	}
	h.record("delete %s", name)
	delete(h.links, name)
	delete(h.devices, name)
	return nil
}

func (h *fakeHost) Addresses(name string) ([]netip.Prefix, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.links[name]
	if !ok {
		return nil, errNoLink(name)
	}
	return slices.Clone(l.addrs), nil
}

func (h *fakeHost) AddAddress(name string, addr netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.links[name]
	if !ok {
		return errNoLink(name)
	}
	if slices.Contains(l.addrs, addr) {
		return fmt.Errorf("add address %s: %w", addr, syscall.EEXIST)
	}
	h.record("add-address %s %s", name, addr)
	l.addrs = append(l.addrs, addr)
	return nil
}

func (h *fakeHost) DelAddress(name string, addr netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.links[name]
	if !ok {
		return errNoLink(name)
	}
	i := slices.Index(l.addrs, addr)
	if i < 0 {
		return fmt.Errorf("delete address %s: %w", addr, syscall.EADDRNOTAVAIL)
	}
	h.record("del-address %s %s", name, addr)
	l.addrs = slices.Delete(l.addrs, i, i+1)
	return nil
}

func (h *fakeHost) Routes(name string) ([]netip.Prefix, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.links[name]
	if !ok {
		return nil, errNoLink(name)
	}
	return slices.Clone(l.routes), nil
}

func (h *fakeHost) AddRoutes(name string, dsts []netip.Prefix) []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	errs := make([]error, len(dsts))
	for i, dst := range dsts {
		errs[i] = h.addRouteLocked(name, dst)
	}
	return errs
}

func (h *fakeHost) addRouteLocked(name string, dst netip.Prefix) error {
	l, ok := h.links[name]
	switch {
	case !ok:
		return errNoLink(name)
	case !l.info.Up:
		// "Error: Nexthop device is not up."
		return fmt.Errorf("add route %s dev %s: %w", dst, name, syscall.ENETDOWN)
	case dst != dst.Masked():
		return fmt.Errorf("add route %s dev %s: %w", dst, name, syscall.EINVAL)
	}
	// One main table: the same destination through another link clashes.
	for _, other := range h.links {
		if slices.Contains(other.routes, dst) {
			return fmt.Errorf("add route %s dev %s: %w", dst, name, syscall.EEXIST)
		}
	}
	h.record("add-route %s %s", name, dst)
	l.routes = append(l.routes, dst)
	return nil
}

func (h *fakeHost) DelRoutes(name string, dsts []netip.Prefix) []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	errs := make([]error, len(dsts))
	for i, dst := range dsts {
		errs[i] = h.delRouteLocked(name, dst)
	}
	return errs
}

func (h *fakeHost) delRouteLocked(name string, dst netip.Prefix) error {
	l, ok := h.links[name]
	if !ok {
		return errNoLink(name)
	}
	i := slices.Index(l.routes, dst)
	if i < 0 {
		return fmt.Errorf("delete route %s dev %s: %w", dst, name, syscall.ESRCH)
	}
	h.record("del-route %s %s", name, dst)
	l.routes = slices.Delete(l.routes, i, i+1)
	return nil
}

// userspace.

func (h *fakeHost) Start(name string, mtu int, _ *slog.Logger) (io.Closer, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !validLinkName(name):
		return nil, fmt.Errorf("create tun %s: %w", name, syscall.EINVAL)
	case h.links[name] != nil:
		return nil, fmt.Errorf("create tun %s: %w", name, syscall.EBUSY)
	}
	h.started = append(h.started, name)
	h.links[name] = &fakeLink{info: LinkInfo{Name: name, Type: linkTypeTUN, MTU: mtu}}
	h.devices[name] = &wgtypes.Device{Name: name, Type: wgtypes.Userspace}
	return &fakeUserspaceDevice{h: h, name: name}, nil
}

type fakeUserspaceDevice struct {
	h      *fakeHost
	name   string
	closed bool
}

func (d *fakeUserspaceDevice) Close() error {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if l := d.h.links[d.name]; l != nil && l.info.Type == linkTypeTUN {
		return d.h.deleteLocked(d.name)
	}
	return nil
}

// Client.

func (h *fakeHost) Devices() ([]*wgtypes.Device, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*wgtypes.Device
	for _, name := range slices.Sorted(maps.Keys(h.devices)) {
		out = append(out, cloneDevice(h.devices[name]))
	}
	return out, nil
}

func (h *fakeHost) Device(name string) (*wgtypes.Device, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deviceReads++
	d, ok := h.devices[name]
	if !ok {
		return nil, os.ErrNotExist
	}
	return cloneDevice(d), nil
}

func (h *fakeHost) ConfigureDevice(name string, cfg wgtypes.Config) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.configureCalls = append(h.configureCalls, fakeConfigureCall{name: name, cfg: cloneConfig(cfg)})
	d, ok := h.devices[name]
	if !ok {
		return os.ErrNotExist
	}
	if h.failConfigure != nil {
		if err := h.failConfigure(name, cfg); err != nil {
			return err
		}
	}
	if cfg.ListenPort != nil {
		for other, od := range h.devices {
			if other != name && *cfg.ListenPort != 0 && od.ListenPort == *cfg.ListenPort {
				return syscall.EADDRINUSE
			}
		}
		d.ListenPort = *cfg.ListenPort
	}
	if cfg.PrivateKey != nil {
		d.PrivateKey = *cfg.PrivateKey
		d.PublicKey = cfg.PrivateKey.PublicKey()
	}
	if cfg.ReplacePeers {
		d.Peers = nil
	}
	for _, pc := range cfg.Peers {
		i := slices.IndexFunc(d.Peers, func(p wgtypes.Peer) bool { return p.PublicKey == pc.PublicKey })
		if pc.Remove {
			if i >= 0 {
				d.Peers = slices.Delete(d.Peers, i, i+1)
			}
			continue
		}
		if i < 0 {
			if pc.UpdateOnly {
				continue // the kernel's WGPEER_F_UPDATE_ONLY: skip unknown peers
			}
			d.Peers = append(d.Peers, wgtypes.Peer{PublicKey: pc.PublicKey, ProtocolVersion: 1})
			i = len(d.Peers) - 1
		}
		p := &d.Peers[i]
		if pc.PresharedKey != nil {
			p.PresharedKey = *pc.PresharedKey
		}
		if pc.Endpoint != nil {
			// The kernel reports IPv4 endpoints as 16-byte addresses.
			p.Endpoint = &net.UDPAddr{IP: pc.Endpoint.IP.To16(), Port: pc.Endpoint.Port}
		}
		if pc.PersistentKeepaliveInterval != nil {
			p.PersistentKeepaliveInterval = *pc.PersistentKeepaliveInterval
		}
		if pc.ReplaceAllowedIPs {
			p.AllowedIPs = nil
		}
		for _, n := range pc.AllowedIPs {
			// An allowed IP belongs to one peer: adding it moves it.
			for j := range d.Peers {
				d.Peers[j].AllowedIPs = slices.DeleteFunc(d.Peers[j].AllowedIPs, func(o net.IPNet) bool { return o.String() == n.String() })
			}
			p = &d.Peers[i]
			p.AllowedIPs = append(p.AllowedIPs, n)
		}
	}
	return nil
}

func (h *fakeHost) Close() error { return nil }

// setPeer changes a running peer as traffic would (handshakes, roaming) or
// as an administrator with wg(8) would.
func (h *fakeHost) setPeer(name string, key wgtypes.Key, update func(p *wgtypes.Peer)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.devices[name]
	for i := range d.Peers {
		if d.Peers[i].PublicKey == key {
			update(&d.Peers[i])
		}
	}
}

func (h *fakeHost) calls() []fakeConfigureCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.configureCalls)
}

func (h *fakeHost) changes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.linkChanges)
}

func cloneDevice(d *wgtypes.Device) *wgtypes.Device {
	c := *d
	c.Peers = make([]wgtypes.Peer, len(d.Peers))
	for i, p := range d.Peers {
		p.AllowedIPs = slices.Clone(p.AllowedIPs)
		if p.Endpoint != nil {
			e := *p.Endpoint
			p.Endpoint = &e
		}
		c.Peers[i] = p
	}
	return &c
}

func cloneConfig(cfg wgtypes.Config) wgtypes.Config {
	c := cfg
	c.Peers = make([]wgtypes.PeerConfig, len(cfg.Peers))
	for i, p := range cfg.Peers {
		p.AllowedIPs = slices.Clone(p.AllowedIPs)
		c.Peers[i] = p
	}
	return c
}

// reads returns the number of Device calls since resetCalls.
func (h *fakeHost) reads() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deviceReads
}
