package wg

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/edgefw/edgefw/policy"
	"golang.org/x/sys/unix"
)

// This file keeps a tunnel's interface as declared: its backend, the link,
// its MTU, addresses and up state, and the routes of its peers' allowed IPs.

// chooseBackend decides how the tunnel's interface is implemented. "auto"
// keeps whatever already runs, since switching would drop every session.
func (m *Manager) chooseBackend(st *tunnelState) policy.Backend {
	switch st.decl.Backend {
	case policy.BackendKernel, policy.BackendUserspace:
		return st.decl.Backend
	}
	if st.backend != "" {
		return st.backend
	}
	return m.autoBackend()
}

// AutoBackend is the backend that a tunnel declaring "auto" gets when its
// interface is created: kernel when the WireGuard module is loaded, built
// in or installed (see WithKernelModule), userspace otherwise. The module
// is looked for once per Manager, so what this reports and what Apply
// chooses agree. Apply still falls back to userspace when the module is
// listed but the kernel refuses to create the link.
func (m *Manager) AutoBackend() policy.Backend {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.autoBackend()
}

// autoBackend is AutoBackend; callers hold m.mu.
func (m *Manager) autoBackend() policy.Backend {
	if m.kernelAvailable == nil {
		ok := m.kernelModule()
		m.kernelAvailable = &ok
	}
	if *m.kernelAvailable {
		return policy.BackendKernel
	}
	return policy.BackendUserspace
}

// ensureInterface makes the tunnel's WireGuard interface exist with the
// chosen backend.
func (m *Manager) ensureInterface(st *tunnelState, rep *Report) error {
	want := m.chooseBackend(st)
	if st.backend != "" && st.backend != want {
		rep.add(Change{Kind: BackendSwitched, Interface: st.name, PreviousBackend: st.backend, Backend: want})
		if err := m.teardown(st, rep); err != nil {
			return fmt.Errorf("switch backend from %s to %s: %w", st.backend, want, err)
		}
	}
	info, err := m.links.Link(st.name)
	exists := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if want == policy.BackendKernel {
		switch {
		case exists && info.Type != linkTypeWireGuard:
			return fmt.Errorf("%w: %s is a %q link", ErrForeignInterface, st.name, info.Type)
		case exists:
			if st.backend == "" {
				rep.add(Change{Kind: InterfaceAdopted, Interface: st.name, Backend: want})
			}
		default:
			err := m.links.AddWireGuard(st.name)
			if err != nil && st.decl.Backend != policy.BackendKernel {
				// "auto": the module was reported but cannot be used (not
				// loadable, or blocked); the userspace implementation works
				// everywhere.
				rep.add(Change{Kind: KernelUnavailable, Interface: st.name, Err: err})
				want = policy.BackendUserspace
				break
			}
			if err != nil {
				return fmt.Errorf("create kernel WireGuard interface: %w", err)
			}
			rep.add(Change{Kind: InterfaceCreated, Interface: st.name, Backend: want, DeclaredBackend: backendName(st.decl.Backend)})
		}
	}
	if want == policy.BackendUserspace {
		if st.dev != nil && !exists {
			// Someone deleted our TUN link; the device behind it is dead.
			rep.add(Change{Kind: InterfaceVanished, Interface: st.name})
			_ = st.dev.Close()
			st.dev = nil
		}
		if st.dev == nil {
			if exists {
				if info.Type != linkTypeWireGuard || !st.owned {
					return fmt.Errorf("%w: %s is a %q link", ErrForeignInterface, st.name, info.Type)
				}
				// A kernel interface of an earlier edgefw run, now declared
				// userspace: replace it.
				if err := m.links.Delete(st.name); err != nil {
					return err
				}
			}
			dev, err := m.userspace.Start(st.name, mtuOf(st.decl), m.deviceLog.With("interface", st.name))
			if err != nil {
				return fmt.Errorf("start userspace WireGuard: %w", err)
			}
			st.dev = dev
			rep.add(Change{Kind: InterfaceCreated, Interface: st.name, Backend: want, DeclaredBackend: backendName(st.decl.Backend)})
		}
	}
	st.backend = want
	st.owned = true
	return nil
}

// teardown removes the tunnel's interface: a userspace device is closed
// (which deletes its TUN link); a kernel link is deleted only if it is still
// a WireGuard link, since the name may meanwhile belong to someone else.
func (m *Manager) teardown(st *tunnelState, rep *Report) error {
	defer func() { st.backend = "" }()
	if st.dev != nil {
		err := st.dev.Close()
		st.dev = nil
		if err != nil {
			return fmt.Errorf("stop userspace device: %w", err)
		}
		return nil
	}
	info, err := m.links.Link(st.name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.Type != linkTypeWireGuard {
		rep.add(Change{Kind: InterfaceKept, Interface: st.name, LinkType: info.Type})
		return nil
	}
	return m.links.Delete(st.name)
}

// removeTunnel tears down an interface that is no longer declared, if this
// manager owns it, and forgets it.
func (m *Manager) removeTunnel(name string, rep *Report) error {
	st := m.tunnels[name]
	if st.owned {
		backend := st.backend
		if err := m.teardown(st, rep); err != nil {
			return err // keep the state: the next Apply retries
		}
		rep.add(Change{Kind: InterfaceRemoved, Interface: name, Backend: backendName(backend)})
	}
	delete(m.tunnels, name)
	return nil
}

// syncLink sets the interface's MTU, addresses and up state.
func (m *Manager) syncLink(st *tunnelState, rep *Report) error {
	info, err := m.links.Link(st.name)
	if err != nil {
		return err
	}
	var errs []error
	if mtu := mtuOf(st.decl); info.MTU != mtu {
		if err := m.links.SetMTU(st.name, mtu); err != nil {
			errs = append(errs, err)
		} else {
			rep.add(Change{Kind: MTUSet, Interface: st.name, MTU: mtu})
		}
	}
	have, err := m.links.Addresses(st.name)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	add, del := diffAddresses(st.decl.Addresses, have)
	// Delete first: the same address with another prefix length is a
	// different kernel address and could otherwise clash.
	for _, a := range del {
		if err := m.links.DelAddress(st.name, a); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.add(Change{Kind: AddressRemoved, Interface: st.name, Address: a})
	}
	for _, a := range add {
		if err := m.links.AddAddress(st.name, a); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.add(Change{Kind: AddressAdded, Interface: st.name, Address: a})
	}
	if !info.Up {
		if err := m.links.SetUp(st.name); err != nil {
			errs = append(errs, err)
		} else {
			rep.add(Change{Kind: InterfaceUp, Interface: st.name})
		}
	}
	return errors.Join(errs...)
}

// syncRoutes installs a route for every allowed-IPs prefix outside the
// interface's own networks and removes the routes it installed earlier for
// prefixes no longer declared. A default prefix gets no route and is
// reported as an error of its peer.
func (m *Manager) syncRoutes(st *tunnelState, rep *Report) error {
	var allowed []netip.Prefix
	var errs []error
	for _, p := range st.peers {
		allowed = append(allowed, p.decl.AllowedIPs...)
		for _, err := range defaultRouteErrors(p.decl.AllowedIPs) {
			errs = append(errs, fmt.Errorf("peer %q: %w", p.decl.Name, err))
		}
	}
	want := routesFor(st.decl.Addresses, allowed)
	have, err := m.links.Routes(st.name)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	add, del := diffPrefixes(want, have)
	errs = append(errs, m.applyRouteDiff(st.name, add, del, rep)...)
	return errors.Join(errs...)
}

// applyRouteDiff deletes del and adds add through the tunnel's link,
// reporting each route changed, and returns the errors of those that were
// not.
func (m *Manager) applyRouteDiff(link string, add, del []netip.Prefix, rep *Report) []error {
	var errs []error
	for i, err := range m.links.DelRoutes(link, del) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rep.add(Change{Kind: RouteRemoved, Interface: link, Route: del[i]})
	}
	for i, err := range m.links.AddRoutes(link, add) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rep.add(Change{Kind: RouteAdded, Interface: link, Route: add[i]})
	}
	return errs
}

func mtuOf(t policy.Tunnel) int {
	if t.MTU == 0 {
		return DefaultMTU
	}
	return t.MTU
}

// backendName is b, with "" spelt auto as in the policy.
func backendName(b policy.Backend) policy.Backend {
	if b == "" {
		return policy.BackendAuto
	}
	return b
}

// kernelModuleAvailable reports whether the WireGuard kernel module is
// loaded, built in, or installed for the running kernel (the kernel loads it
// on demand when the first wireguard link is created). Reading files keeps
// the check free of side effects; a module that is listed but cannot load
// makes "auto" fall back to userspace when the link cannot be created.
func kernelModuleAvailable() bool {
	if _, err := os.Stat("/sys/module/wireguard"); err == nil {
		return true
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return false
	}
	release := unix.ByteSliceToString(uts.Release[:])
	for _, list := range []string{"modules.builtin", "modules.dep"} {
		data, err := os.ReadFile(filepath.Join("/lib/modules", release, list))
		if err == nil && bytes.Contains(data, []byte("/wireguard.ko")) {
			return true
		}
	}
	return false
}
