package wg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// An Apply that changes no peer still checks a tunnel's routes, so it
// lists them: with 10,000 peers, netlink.RouteListFiltered decoded every
// route of the namespace into a netlink.Route (addresses as net.IP, a
// dozen fields) to keep the tunnel's, about 40% of such an Apply.
// listRoutes reads the same dump and keeps only the destinations of the
// routes edgefw installs.

// routeDumpBuffer holds one read of a dump: the kernel fills it with as
// many whole messages as fit (about 70 bytes a route).
const routeDumpBuffer = 64 << 10

// listRoutes returns the destinations of the main-table routes marked
// RouteProtocol through the link of index ifindex, of both families.
func listRoutes(ifindex int) ([]netip.Prefix, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("bind rtnetlink socket: %w", err)
	}
	var req []byte
	req = binary.NativeEndian.AppendUint32(req, nlmsgHeaderLen+rtmsgLen)
	req = binary.NativeEndian.AppendUint16(req, unix.RTM_GETROUTE)
	req = binary.NativeEndian.AppendUint16(req, unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	req = binary.NativeEndian.AppendUint32(req, 1) // sequence number
	req = binary.NativeEndian.AppendUint32(req, 0)
	req = append(req, make([]byte, rtmsgLen)...) // AF_UNSPEC: both families
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("send route dump request: %w", err)
	}
	buf := make([]byte, routeDumpBuffer)
	var out []netip.Prefix
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read route dump: %w", err)
		}
		var done bool
		if out, done, err = decodeRouteDump(buf[:n], ifindex, out); err != nil || done {
			return out, err
		}
	}
}

// decodeRouteDump appends to out the destinations of the routes in one
// read of a dump that listRoutes keeps, and reports whether the dump
// ended.
func decodeRouteDump(b []byte, ifindex int, out []netip.Prefix) ([]netip.Prefix, bool, error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return out, false, fmt.Errorf("parse route dump: %w", err)
	}
	for i := range msgs {
		m := &msgs[i]
		switch m.Header.Type {
		case unix.NLMSG_DONE:
			return out, true, nil
		case unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if errno := -int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
					return out, true, fmt.Errorf("route dump: %w", syscall.Errno(errno))
				}
			}
			return out, true, nil
		case unix.RTM_NEWROUTE:
			if dst, ok := ownRoute(m, ifindex); ok {
				out = append(out, dst)
			}
		}
	}
	return out, false, nil
}

// ownRoute returns the destination of route message m if it is a
// main-table route of RouteProtocol through ifindex. rtnetlink omits the
// destination of a default route.
func ownRoute(m *syscall.NetlinkMessage, ifindex int) (netip.Prefix, bool) {
	if len(m.Data) < rtmsgLen {
		return netip.Prefix{}, false
	}
	family, bits, table, protocol := m.Data[0], int(m.Data[1]), uint32(m.Data[4]), m.Data[5]
	if protocol != RouteProtocol {
		return netip.Prefix{}, false
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return netip.Prefix{}, false
	}
	var dst netip.Addr
	oif := -1
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			if len(a.Value) == 4 {
				table = binary.NativeEndian.Uint32(a.Value)
			}
		case unix.RTA_OIF:
			if len(a.Value) == 4 {
				oif = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(a.Value)
		}
	}
	if table != unix.RT_TABLE_MAIN || oif != ifindex {
		return netip.Prefix{}, false
	}
	switch {
	case dst.IsValid():
	case family == unix.AF_INET:
		dst = netip.IPv4Unspecified()
	case family == unix.AF_INET6:
		dst = netip.IPv6Unspecified()
	default:
		return netip.Prefix{}, false
	}
	p, err := dst.Prefix(bits)
	return p, err == nil
}
