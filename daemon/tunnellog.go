package daemon

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/edgefw/edgefw/wg"
)

// logTunnelReport logs what an apply or refresh of the tunnels did, one
// line per change, under component=wg. The messages, levels and keys are
// the ones edgefwd has always written (operators' journal queries and the
// integration tests look for them), so add to them but do not rename.
func logTunnelReport(ctx context.Context, log *slog.Logger, rep wg.Report) {
	log = log.With("component", "wg")
	for _, c := range rep.Changes {
		level, msg, attrs := tunnelChangeRecord(c)
		log.Log(ctx, level, msg, attrs...)
	}
}

// tunnelChangeRecord is the log line of one tunnel change: its level,
// message and attributes, "interface" first.
func tunnelChangeRecord(c wg.Change) (slog.Level, string, []any) {
	attrs := []any{"interface", c.Interface}
	// Lines about endpoint names name the peer and its declared endpoint.
	resolution := []any{"interface", c.Interface, "peer", c.Peer, "endpoint", c.DeclaredEndpoint}
	switch c.Kind {
	case wg.InterfaceCreated:
		return slog.LevelInfo, "created WireGuard interface", append(attrs, "backend", c.Backend, "declared_backend", c.DeclaredBackend)
	case wg.InterfaceAdopted:
		return slog.LevelInfo, "adopted existing WireGuard interface", append(attrs, "backend", c.Backend)
	case wg.InterfaceRemoved:
		return slog.LevelInfo, "removed tunnel", append(attrs, "backend", c.Backend)
	case wg.InterfaceKept:
		return slog.LevelWarn, "not deleting interface: it is no longer a WireGuard interface", append(attrs, "type", c.LinkType)
	case wg.InterfaceVanished:
		return slog.LevelWarn, "userspace WireGuard interface disappeared, recreating it", attrs
	case wg.BackendSwitched:
		return slog.LevelInfo, "switching tunnel backend", append(attrs, "from", c.PreviousBackend, "to", c.Backend)
	case wg.KernelUnavailable:
		return slog.LevelWarn, "kernel WireGuard unavailable, using userspace", append(attrs, "error", c.Err)
	case wg.MTUSet:
		return slog.LevelInfo, "set MTU", append(attrs, "mtu", c.MTU)
	case wg.AddressAdded:
		return slog.LevelInfo, "added address", append(attrs, "address", c.Address)
	case wg.AddressRemoved:
		return slog.LevelInfo, "removed address", append(attrs, "address", c.Address)
	case wg.InterfaceUp:
		return slog.LevelInfo, "set interface up", attrs
	case wg.RouteAdded:
		return slog.LevelInfo, "added route", append(attrs, "route", c.Route)
	case wg.RouteRemoved:
		return slog.LevelInfo, "removed route", append(attrs, "route", c.Route)
	case wg.PrivateKeySet:
		return slog.LevelInfo, "set private key", attrs
	case wg.ListenPortSet:
		return slog.LevelInfo, "set listen port", append(attrs, "listen_port", c.ListenPort)
	case wg.DeviceUpToDate:
		return slog.LevelDebug, "WireGuard device up to date", append(attrs, "peers", c.PeerCount)
	case wg.PeerAdded:
		return slog.LevelInfo, "added peer", append(attrs, "peer", c.Peer, "endpoint", addrPortText(c.Endpoint))
	case wg.PeerUpdated:
		attrs = append(attrs, "peer", c.Peer)
		if c.Endpoint.IsValid() {
			attrs = append(attrs, "endpoint", c.Endpoint.String())
		}
		return slog.LevelInfo, "updated peer", append(attrs, "changed", c.Fields)
	case wg.PeerRemoved:
		return slog.LevelInfo, "removed peer", append(attrs, "peer", c.Peer)
	case wg.EndpointUnresolved:
		return slog.LevelWarn, "cannot resolve peer endpoint; the peer keeps its last address (if any), retrying at every refresh",
			append(resolution, "address", addrText(c.Resolved), "error", c.Err)
	case wg.EndpointStillUnresolved:
		return slog.LevelDebug, "still cannot resolve peer endpoint", append(resolution, "address", addrText(c.Resolved), "error", c.Err)
	case wg.EndpointResolved:
		return slog.LevelInfo, "peer endpoint resolves again", append(resolution, "address", c.Resolved)
	case wg.EndpointMoved:
		return slog.LevelInfo, "peer endpoint address changed", append(resolution, "from", c.PreviousResolved, "to", c.Resolved)
	}
	return slog.LevelInfo, "tunnel changed", append(attrs, "kind", string(c.Kind), "peer", c.Peer)
}

// addrText is a's text, "" when there is none.
func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// addrPortText is ap's text, "" when there is none.
func addrPortText(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}
