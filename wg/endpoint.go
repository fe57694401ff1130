package wg

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/edgefw/edgefw/policy"
)

// Resolver looks up the addresses of a host name. *net.Resolver (and so
// net.DefaultResolver) satisfies it; tests supply their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// resolveTimeout bounds one DNS lookup, so that a dead name server delays
// one peer's endpoint and never a whole Apply for long.
const resolveTimeout = 5 * time.Second

// resolveParallelism bounds concurrent lookups, so that many peers with host
// names are resolved quickly without flooding the resolver.
const resolveParallelism = 16

// endpoint is a declared peer endpoint, HOST:PORT, split.
type endpoint struct {
	// host is the DNS name to resolve; empty when addr is an IP literal.
	host string
	addr netip.Addr
	port uint16
}

// parseEndpoint splits a declared endpoint. IP literals (IPv6 in brackets)
// are used as they are; anything else is a host name to resolve.
func parseEndpoint(s string) (endpoint, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("endpoint %q: %w", s, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return endpoint{}, fmt.Errorf("endpoint %q: port must be 1-65535", s)
	}
	if host == "" {
		return endpoint{}, fmt.Errorf("endpoint %q: missing host", s)
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return endpoint{addr: addr.Unmap(), port: uint16(port)}, nil
	}
	return endpoint{host: host, port: uint16(port)}, nil
}

// pickAddress chooses the endpoint address among a name's addresses. The
// current one is kept while the name still resolves to it, so that round-robin
// DNS answers in changing order do not move a working peer; otherwise the
// resolver's first answer (RFC 6724 order) wins.
func pickAddress(addrs []netip.Addr, current netip.Addr) (netip.Addr, bool) {
	if len(addrs) == 0 {
		return netip.Addr{}, false
	}
	if current.IsValid() && slices.ContainsFunc(addrs, func(a netip.Addr) bool { return a.Unmap() == current }) {
		return current, true
	}
	return addrs[0].Unmap(), true
}

// resolution is what the Manager knows about an endpoint host name.
type resolution struct {
	// addr is the last address the name resolved to; it is kept through
	// failed lookups, since the peer is most likely still there.
	addr netip.Addr
	// err is the last lookup's failure, nil if it succeeded.
	err error
}

// peerRef names a peer whose endpoint uses a host name, for its Report.
type peerRef struct {
	iface, peer, endpoint string
}

// endpointHosts returns the host names among the declared endpoints, each
// with the peers using it. Endpoints that do not parse are left to the
// reconciliation, which reports them.
func endpointHosts(tunnels []policy.Tunnel) map[string][]peerRef {
	hosts := make(map[string][]peerRef)
	for _, t := range tunnels {
		for _, p := range t.Peers {
			if p.Endpoint == "" {
				continue
			}
			if ep, err := parseEndpoint(p.Endpoint); err == nil && ep.host != "" {
				hosts[ep.host] = append(hosts[ep.host], peerRef{iface: t.Name, peer: p.Name, endpoint: p.Endpoint})
			}
		}
	}
	return hosts
}

// lookupHosts resolves host names in parallel, each lookup bounded by
// resolveTimeout. hosts maps each name to its current address (or the zero
// Addr), which is kept while the name still has it and on failure. It
// touches no Manager state, so callers run it without holding the lock.
func (m *Manager) lookupHosts(ctx context.Context, hosts map[string]netip.Addr) map[string]resolution {
	out := make(map[string]resolution, len(hosts))
	var mu sync.Mutex
	sem := make(chan struct{}, resolveParallelism)
	var wg sync.WaitGroup
	for host, current := range hosts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
			addrs, err := m.resolver.LookupNetIP(lctx, "ip", host)
			cancel()
			addr, ok := pickAddress(addrs, current)
			if err == nil && !ok {
				err = errors.New("no addresses")
			}
			r := resolution{addr: addr}
			if err != nil {
				r = resolution{addr: current, err: err}
			}
			mu.Lock()
			out[host] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// storeResolutions records lookup results and reports, for every peer
// using a name, a lookup that starts failing (EndpointUnresolved; repeats:
// EndpointStillUnresolved), one that recovers, and an address that
// changed. Callers hold m.mu.
func (m *Manager) storeResolutions(results map[string]resolution, users map[string][]peerRef, rep *Report) {
	for _, host := range slices.Sorted(maps.Keys(results)) {
		r := results[host]
		old, known := m.dns[host]
		m.dns[host] = r
		for _, u := range users[host] {
			c := Change{Interface: u.iface, Peer: u.peer, DeclaredEndpoint: u.endpoint, Resolved: r.addr}
			switch {
			case r.err != nil && (!known || old.err == nil):
				c.Kind, c.Err = EndpointUnresolved, r.err
			case r.err != nil:
				c.Kind, c.Err = EndpointStillUnresolved, r.err
			case known && old.err != nil:
				c.Kind = EndpointResolved
			case old.addr.IsValid() && old.addr != r.addr:
				c.Kind, c.PreviousResolved = EndpointMoved, old.addr
			default:
				continue
			}
			rep.add(c)
		}
	}
}
